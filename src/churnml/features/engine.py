"""DuckDB execution of the feature registry: one query per family over Parquet or CSV, every
cutoff of the spine at once, results joined back onto the spine as pandas.

Portability: family SQL uses only ANSI aggregates, CASE, window functions, `max_by` and the
few engine-specific constructs behind `Dialect` (features/dialect.py). The Spark engine
(churnml.spark.features) runs the same text through a `SparkDialect` and a `Context` whose
tables are Spark views.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from churnml.features.dialect import Dialect
from churnml.features.params import FAMILY_NAMES, FeatureParams
from churnml.features.registry import FeatureDef, feature_definitions
from churnml.io import (
    connect,
    quote_identifier,
    scan_sql,
    sql_string,
    table_columns,
    table_path,
)
from churnml.progress import progress

log = logging.getLogger(__name__)

DAY_S = 86400


@dataclass
class Context:
    """What a family's SQL builder needs: tables present, their columns, the cutoff range,
    and how to run a statement on the engine (DuckDB here; churnml.spark.features overrides
    `table_sql`, `rows`, `create_table` and `table_columns` for Spark)."""

    con: duckdb.DuckDBPyConnection | None
    params: FeatureParams
    dataset_dir: Path
    min_cutoff: pd.Timestamp
    max_cutoff: pd.Timestamp
    dialect: Dialect = field(default_factory=Dialect)
    paths: dict[str, Path] = field(default_factory=dict)
    columns: dict[str, set[str]] = field(default_factory=dict)

    def has_table(self, table: str) -> bool:
        return table in self.paths

    def has(self, qualified: str) -> bool:
        table, _, column = qualified.partition(".")
        return column in self.columns.get(table, set())

    @staticmethod
    def needed_columns(table: str, defs: list[FeatureDef], *always: str) -> list[str]:
        """The columns of `table` that these features read, plus `always` (keys, times)."""
        prefix = f"{table}."
        needed = {
            r.removeprefix(prefix) for f in defs for r in f.spec.requires if r.startswith(prefix)
        }
        return sorted(needed | set(always))

    def scan(self, table: str, columns: list[str], where: str | None = None) -> str:
        """A subquery reading only `columns` of `table` through the one reader (`io.scan_sql`:
        contract types, ids as VARCHAR, stamps as naive UTC), filtered on the typed values."""
        cols = [self.quote(c) for c in dict.fromkeys(columns)]
        src = self.table_sql(table)
        return f"(SELECT {', '.join(cols)} FROM {src}" + (f" WHERE {where}" if where else "") + ")"

    # Engine hooks -------------------------------------------------------------------------
    def quote(self, name: str) -> str:
        return quote_identifier(name)

    def table_sql(self, table: str) -> str:
        """What a raw table is read from, with contract types (a subquery or a view name)."""
        return scan_sql(self.paths[table])

    def rows(self, sql: str) -> list[tuple]:
        """Run a small query (a few rows: never a raw table) and return its rows."""
        return self.con.execute(self.dialect.finalize(sql)).fetchall()

    def create_table(self, name: str, sql: str) -> None:
        """Make the result of `sql` available to later statements as `name`."""
        self.con.execute(f"CREATE TEMP TABLE {name} AS {self.dialect.finalize(sql)}")

    def table_columns(self, name: str) -> list[str]:
        return [r[0] for r in self.con.execute(f"DESCRIBE {name}").fetchall()]

    def table_rows(self, name: str) -> int | None:
        """Rows of a created table, for the log (None where counting would cost a job)."""
        return self.con.execute(f"SELECT count(*) FROM {name}").fetchone()[0]

    def time_range(self, column: str, lookback_days: int) -> str:
        """Scan filter keeping rows of [min cutoff - lookback, max cutoff)."""
        d = self.dialect
        lo = d.timestamp(self.min_cutoff - pd.Timedelta(days=lookback_days))
        return f"{column} >= {lo} AND {column} < {d.timestamp(self.max_cutoff)}"

    def window_join(self, alias: str, column: str, lookback_days: int | None) -> str:
        """Join condition tying an event row to each spine key it is before (point in time)."""
        cond = f"{alias}.customer_id = k.customer_id AND {alias}.{column} < k.cutoff"
        if lookback_days is not None:
            cond += f" AND {alias}.{column} >= {self.dialect.minus_days('k.cutoff', lookback_days)}"
        return cond


def measures_sql(defs: list[FeatureDef], measures: dict) -> str:
    """The aggregate list for the measures these features use (each measure once)."""
    used = dict.fromkeys(m for d in defs for m in d.measures)
    return ",\n    ".join(f"{measures[m].sql} AS {m}" for m in used) or "count(*) AS _n"


def _open(params: FeatureParams) -> duckdb.DuckDBPyConnection:
    # Session time zone UTC: results never depend on the server's zone. Its own database: the
    # settings below are database-wide.
    con = connect(own_database=True)
    if params.duckdb_threads:
        con.execute(f"SET threads = {int(params.duckdb_threads)}")
    if params.duckdb_memory_limit:
        con.execute(f"SET memory_limit = {sql_string(params.duckdb_memory_limit)}")
    if params.duckdb_temp_dir:
        con.execute(f"SET temp_directory = {sql_string(params.duckdb_temp_dir)}")
    con.execute("SET preserve_insertion_order = false")
    return con


def _family_modules() -> dict:
    from churnml.features import account, arrears, calls, complaints, transfers

    return {
        "calls": calls,
        "transfers": transfers,
        "complaints": complaints,
        "arrears": arrears,
        "account": account,
    }


def available_definitions(ctx: Context, defs: list[FeatureDef]) -> list[FeatureDef]:
    """Drop features whose raw columns are missing, with one log line per family."""
    kept, dropped = [], []
    for d in defs:
        if all(ctx.has(r) for r in d.spec.requires):
            kept.append(d)
        else:
            dropped.append(d.spec.name)
    if dropped:
        missing = sorted({r for d in defs for r in d.spec.requires if not ctx.has(r)})
        tables = sorted({r.split(".")[0] for r in missing if not ctx.has_table(r.split(".")[0])})
        columns = [r for r in missing if r.split(".")[0] not in tables]
        what = [f"table {t} not found" for t in tables]
        what += [f"column(s) {', '.join(columns)} not found"] if columns else []
        log.info(
            "features %s: %s, dropping %d feature(s): %s",
            defs[0].family,
            "; ".join(what),
            len(dropped),
            ", ".join(dropped),
        )
    return kept


def build_features(
    dataset_dir: str | Path, spine: pd.DataFrame, params: FeatureParams | None = None
) -> pd.DataFrame:
    """Features for every (customer_id, cutoff) row of `spine`, from rows before each cutoff.

    Returns one row per spine row in spine order: `customer_id`, `cutoff`, then the features in
    registry order (those computable from the tables and columns present). Numeric features
    are float64, categorical ones pandas `category`. An optional spine column `weight` says
    how many customers a row stands for (a down-sampled negative kept at rate r stands for
    1 / r): features ranked among the customers of a cutoff, such as the value tier, count it
    that many times, so they match what scoring the whole base gives.
    """
    params = params or FeatureParams()
    dataset_dir = Path(dataset_dir)
    unknown = set(params.families) - set(FAMILY_NAMES)
    if unknown:
        raise ValueError(f"unknown feature families {sorted(unknown)}; known: {FAMILY_NAMES}")
    if not {"customer_id", "cutoff"} <= set(spine.columns):
        raise ValueError("spine needs columns customer_id and cutoff")
    t_start = time.perf_counter()
    keys = pd.DataFrame(
        {
            "_row": np.arange(len(spine), dtype=np.int64),
            "customer_id": spine["customer_id"].astype(object).astype(str).to_numpy(object),
            "cutoff": pd.to_datetime(spine["cutoff"]).to_numpy("datetime64[us]"),
            "weight": spine["weight"].to_numpy(float) if "weight" in spine else 1.0,
        }
    )
    out = spine[["customer_id", "cutoff"]].reset_index(drop=True).copy()
    if len(spine) == 0:
        return out
    con = _open(params)
    try:
        con.register("_spine_df", keys)
        con.execute(
            "CREATE TEMP TABLE spine AS SELECT _row, CAST(customer_id AS VARCHAR) AS customer_id,"
            " CAST(cutoff AS TIMESTAMP) AS cutoff, CAST(weight AS DOUBLE) AS weight"
            " FROM _spine_df"
        )
        # One integer key per distinct (customer, cutoff): families group and join on it.
        con.execute(
            "CREATE TEMP TABLE keys AS SELECT CAST(row_number() OVER () AS INTEGER) AS kid,"
            " customer_id, cutoff, weight FROM (SELECT customer_id, cutoff, max(weight) AS weight"
            " FROM spine GROUP BY customer_id, cutoff)"
        )
        con.execute(
            "CREATE TEMP TABLE spine_kid AS SELECT s._row, s.cutoff, k.kid FROM spine s"
            " JOIN keys k ON k.customer_id = s.customer_id AND k.cutoff = s.cutoff"
        )
        con.unregister("_spine_df")
        ctx = Context(
            con=con,
            params=params,
            dataset_dir=dataset_dir,
            min_cutoff=pd.Timestamp(keys["cutoff"].min()),
            max_cutoff=pd.Timestamp(keys["cutoff"].max()),
        )
        for table in ("customers", "calls", "transfers", "complaints", "bills", "payments"):
            path = table_path(dataset_dir, table)
            if path is not None:
                ctx.paths[table] = path
                ctx.columns[table] = set(table_columns(path))
        modules = _family_modules()
        built: list[tuple[str, list[FeatureDef], list[str]]] = []
        for family, defs, sql, t0 in family_queries(ctx, modules, str(dataset_dir)):
            built.append(build_family(ctx, family, defs, sql, t0))
        t0 = time.perf_counter()
        sql, order, kinds = final_query(ctx, built, modules, ["_row"])
        log.debug("features final query: %s", sql)
        result = _to_frame(con.execute(sql).fetchnumpy(), order, kinds)
        log.info("features joined onto the spine in %.1f s", time.perf_counter() - t0)
    finally:
        con.close()
    result.index = out.index
    out = pd.concat([out, result], axis=1)
    log.info(
        "features: %d rows x %d features in %.1f s",
        len(out),
        out.shape[1] - 2,
        time.perf_counter() - t_start,
    )
    return out


def family_queries(ctx: Context, modules: dict, where: str):
    """(family, its available definitions, its SQL, start time) for each family to build."""
    all_defs = feature_definitions(ctx.params)
    families = [f for f in FAMILY_NAMES if f in ctx.params.families]
    for family in progress(families, "feature families", unit="families"):
        module = modules[family]
        defs = [d for d in all_defs if d.family == family]
        missing = [t for t in module.REQUIRED_TABLES if not ctx.has_table(t)]
        if missing:
            log.info(
                "features %s: skipped, table %s not found in %s",
                family,
                " and ".join(missing),
                where,
            )
            continue
        t0 = time.perf_counter()
        defs = available_definitions(ctx, defs)
        sql = module.build_sql(ctx, defs)
        if sql is None:
            continue
        yield family, defs, sql, t0


def build_family(ctx: Context, family: str, defs: list[FeatureDef], sql: str, t0: float):
    """Create the family's table `f_<family>` (one row per key) and log it."""
    ctx.create_table(f"f_{family}", sql)
    cols = ctx.table_columns(f"f_{family}")
    n = ctx.table_rows(f"f_{family}")
    log.info(
        "features %s: %d features, %s rows, %.1f s",
        family,
        len(defs),
        "?" if n is None else n,
        time.perf_counter() - t0,
    )
    return family, defs, cols


def final_query(
    ctx: Context, built: list, modules: dict, carry: list[str]
) -> tuple[str, list[str], dict[str, str]]:
    """The query left-joining every family onto the spine (`spine_kid`: one row per spine row
    with its key `kid`), with the no-event fill and the final-stage features, feature columns
    in registry order after the spine columns `carry`. Returns it, the feature names and their
    kinds. Ranked final-stage features (the value tier) are created as tables `w_<name>`."""
    d = ctx.dialect
    joins, inner = [], []
    present: set[str] = set()
    stage2: list[FeatureDef] = []
    for family, defs, cols in built:
        joins.append(f"LEFT JOIN f_{family} USING (kid)")
        colset = set(cols)
        for f in defs:
            if f.needs_features:
                stage2.append(f)
                continue
            if f.spec.name not in colset:
                continue
            if f.fill is None or f.spec.kind == "categorical":
                inner.append(f.spec.name)
            else:
                inner.append(f"coalesce({f.spec.name}, {float(f.fill)}) AS {f.spec.name}")
            present.add(f.spec.name)
        for c in cols:
            if c.startswith("_"):
                inner.append(c)
                present.add(c)
    finals: dict[str, str] = {}
    for f in stage2:
        expr = _final_expr(modules[f.family], f, present | set(finals), ctx)
        if expr is None:
            continue
        if " OVER " in expr:
            # Ranked over the customers of each cutoff: computed on a narrow table of the
            # distinct (customer, cutoff) keys, not over the wide joined rows.
            needed = [c for c in f.needs_features if c in present]
            cols = ", ".join(
                next(x for x in inner if x == c or x.endswith(f" AS {c}")) for c in needed
            )
            ctx.create_table(
                f"w_{f.spec.name}",
                f"SELECT kid, {expr} AS {f.spec.name}"
                f" FROM (SELECT k.kid, k.customer_id, k.cutoff, k.weight, {cols}"
                f" FROM keys k {' '.join(joins)})",
            )
            joins.append(f"LEFT JOIN w_{f.spec.name} USING (kid)")
            finals[f.spec.name] = f.spec.name
        else:
            finals[f.spec.name] = expr
    all_defs = feature_definitions(ctx.params)
    order = [f.spec.name for f in all_defs if f.spec.name in present or f.spec.name in finals]
    kinds = {f.spec.name: f.spec.kind for f in all_defs}
    select = list(carry)
    for name in order:
        expr = finals.get(name, name)
        if kinds[name] == "categorical":
            select.append(f"CAST({expr} AS {d.text_type()}) AS {name}")
        else:
            select.append(f"{d.feature_value(expr)} AS {name}")
    inner += [f"w_{n}.{n}" for n in finals if f"LEFT JOIN w_{n} USING (kid)" in joins]
    spine_cols = "".join(f", s.{c}" for c in dict.fromkeys([*carry, "cutoff"]))
    sql = (
        f"WITH j AS (SELECT {spine_cols[2:]}"
        f"{''.join(', ' + c for c in inner)} FROM spine_kid s {' '.join(joins)})\n"
        f"SELECT {', '.join(select)} FROM j"
    )
    return d.finalize(sql), order, kinds


def _final_expr(module, defn: FeatureDef, columns: set[str], ctx: Context) -> str | None:
    return module.final_expr(defn, columns, ctx.params, ctx.dialect)


def _to_frame(cols: dict, order: list[str], kinds: dict[str, str]) -> pd.DataFrame:
    """The fetched columns (in spine order: DuckDB sorts on `_row` faster than numpy gathers
    wide rows) as a frame: the numeric features go into one float64 block, column by column
    (no wide intermediate frames). Values are not rounded: the families sum non-integers
    exactly (`registry.exact_sum`), so every run gives the same bits without it."""
    rows = np.argsort(np.asarray(cols.pop("_row")), kind="stable")
    numeric = [name for name in order if kinds[name] != "categorical"]
    block = np.empty((len(rows), len(numeric)), dtype=np.float64, order="F")
    for j, name in enumerate(numeric):
        values = cols.pop(name)
        if isinstance(values, np.ma.MaskedArray):
            values = np.where(np.ma.getmaskarray(values), np.nan, values.data.astype(np.float64))
        np.take(np.asarray(values, dtype=np.float64), rows, out=block[:, j])
        del values
    df = pd.DataFrame(block, columns=numeric, copy=False)
    for pos, name in enumerate(order):
        if kinds[name] != "categorical":
            continue
        values = cols.pop(name)
        if isinstance(values, np.ma.MaskedArray):
            values = np.where(np.ma.getmaskarray(values), None, values.data.astype(object))
        values = pd.Series(np.asarray(values, dtype=object)[rows], dtype=object, copy=False)
        df.insert(pos, name, pd.Categorical(values))
    return df
