"""DuckDB execution of the feature registry: one query per family over Parquet or CSV, every
cutoff of the spine at once, results joined back onto the spine as pandas.

Portability: family SQL uses only ANSI aggregates, CASE, window functions, `max_by` and the
few engine-specific functions behind `Dialect` (seconds between timestamps, hour, weekend,
timestamp literals). A Spark runner supplies another `Dialect` and runs the same text.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

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


class Dialect:
    """The engine-specific SQL snippets (DuckDB here; Spark equivalents in comments)."""

    def seconds_between(self, start: str, end: str) -> str:
        # Spark: unix_timestamp(end) - unix_timestamp(start)
        return f"(epoch({end}) - epoch({start}))"

    def hour(self, ts: str) -> str:
        return f"hour({ts})"  # Spark: hour(ts)

    def is_weekend(self, ts: str) -> str:
        return f"(isodow({ts}) >= 6)"  # Spark: dayofweek(ts) IN (1, 7)

    def minus_days(self, ts: str, days: int) -> str:
        return f"({ts} - INTERVAL '{int(days)}' DAY)"  # ANSI, Spark too

    def timestamp(self, value: pd.Timestamp) -> str:
        return f"TIMESTAMP '{pd.Timestamp(value).isoformat(sep=' ')}'"

    def year(self, ts: str) -> str:
        return f"year({ts})"

    def materialized(self) -> str:
        """CTE hint: compute a CTE used several times once (Spark: cache it instead)."""
        return "MATERIALIZED "

    def hash64(self, value: str) -> str:
        """A 64-bit hash: grouping and joining on it beats doing so on strings (collisions
        between two ids have a probability around 1e-19 per pair)."""
        return f"hash({value})"  # Spark: xxhash64(value)


@dataclass
class Context:
    """What a family's SQL builder needs: tables present, their columns, the cutoff range."""

    con: duckdb.DuckDBPyConnection
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
        cols = [quote_identifier(c) for c in dict.fromkeys(columns)]
        src = scan_sql(self.paths[table])
        return f"(SELECT {', '.join(cols)} FROM {src}" + (f" WHERE {where}" if where else "") + ")"

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


FEATURE_DECIMALS = 6


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
        all_defs = feature_definitions(params)
        built: list[tuple[str, list[FeatureDef], list[str]]] = []
        families = [f for f in FAMILY_NAMES if f in params.families]
        for family in progress(families, "feature families", unit="families"):
            module = modules[family]
            defs = [d for d in all_defs if d.family == family]
            missing = [t for t in module.REQUIRED_TABLES if not ctx.has_table(t)]
            if missing:
                log.info(
                    "features %s: skipped, table %s not found in %s",
                    family,
                    " and ".join(missing),
                    dataset_dir,
                )
                continue
            t0 = time.perf_counter()
            defs = available_definitions(ctx, defs)
            sql = module.build_sql(ctx, defs)
            if sql is None:
                continue
            con.execute(f"CREATE TEMP TABLE f_{family} AS {sql}")
            cols = [r[0] for r in con.execute(f"DESCRIBE f_{family}").fetchall()]
            n = con.execute(f"SELECT count(*) FROM f_{family}").fetchone()[0]
            log.info(
                "features %s: %d features, %d rows, %.1f s",
                family,
                len(defs),
                n,
                time.perf_counter() - t0,
            )
            built.append((family, defs, cols))
        t0 = time.perf_counter()
        result = _join_families(ctx, built, modules)
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


def _join_families(ctx: Context, built: list, modules: dict) -> pd.DataFrame:
    """Left-join every family onto the spine, apply the no-event fill and the final-stage
    features, and return the feature columns in registry order (spine order of rows)."""
    joins, inner = [], []
    present: set[str] = set()
    stage2: list[FeatureDef] = []
    for family, defs, cols in built:
        joins.append(f"LEFT JOIN f_{family} USING (kid)")
        colset = set(cols)
        for d in defs:
            if d.needs_features:
                stage2.append(d)
                continue
            if d.spec.name not in colset:
                continue
            if d.fill is None or d.spec.kind == "categorical":
                inner.append(d.spec.name)
            else:
                inner.append(f"coalesce({d.spec.name}, {float(d.fill)}) AS {d.spec.name}")
            present.add(d.spec.name)
        for c in cols:
            if c.startswith("_"):
                inner.append(c)
                present.add(c)
    finals: dict[str, str] = {}
    for d in stage2:
        expr = modules[d.family].final_expr(d, present | set(finals), ctx.params)
        if expr is None:
            continue
        if " OVER " in expr:
            # Ranked over the customers of each cutoff: computed on a narrow table of the
            # distinct (customer, cutoff) keys, not over the wide joined rows.
            needed = [c for c in d.needs_features if c in present]
            cols = ", ".join(
                next(x for x in inner if x == c or x.endswith(f" AS {c}")) for c in needed
            )
            ctx.con.execute(
                f"CREATE TEMP TABLE w_{d.spec.name} AS SELECT kid, {expr} AS {d.spec.name}"
                f" FROM (SELECT k.kid, k.customer_id, k.cutoff, k.weight, {cols}"
                f" FROM keys k {' '.join(joins)})"
            )
            joins.append(f"LEFT JOIN w_{d.spec.name} USING (kid)")
            finals[d.spec.name] = d.spec.name
        else:
            finals[d.spec.name] = expr
    all_defs = feature_definitions(ctx.params)
    order = [d.spec.name for d in all_defs if d.spec.name in present or d.spec.name in finals]
    kinds = {d.spec.name: d.spec.kind for d in all_defs}
    select = ["_row"]
    for name in order:
        expr = finals.get(name, name)
        if kinds[name] == "categorical":
            select.append(f"CAST({expr} AS VARCHAR) AS {name}")
        else:
            # NaN rather than NULL: numpy arrays without masks come straight out.
            select.append(f"coalesce(CAST({expr} AS DOUBLE), CAST('NaN' AS DOUBLE)) AS {name}")
    inner += [f"w_{n}.{n}" for n in finals if f"LEFT JOIN w_{n} USING (kid)" in joins]
    sql = (
        f"WITH j AS (SELECT s._row, s.cutoff"
        f"{''.join(', ' + c for c in inner)} FROM spine_kid s {' '.join(joins)})\n"
        f"SELECT {', '.join(select)} FROM j"
    )
    log.debug("features final query: %s", sql)
    return _to_frame(ctx.con.execute(sql).fetchnumpy(), order, kinds)


def _to_frame(cols: dict, order: list[str], kinds: dict[str, str]) -> pd.DataFrame:
    """The fetched columns (in spine order: DuckDB sorts on `_row` faster than numpy gathers
    wide rows) as a frame: the numeric features go into one float64 block, column by column,
    rounded in place (no wide intermediate frames)."""
    rows = np.argsort(np.asarray(cols.pop("_row")), kind="stable")
    numeric = [name for name in order if kinds[name] != "categorical"]
    block = np.empty((len(rows), len(numeric)), dtype=np.float64, order="F")
    for j, name in enumerate(numeric):
        values = cols.pop(name)
        if isinstance(values, np.ma.MaskedArray):
            values = np.where(np.ma.getmaskarray(values), np.nan, values.data.astype(np.float64))
        np.take(np.asarray(values, dtype=np.float64), rows, out=block[:, j])
        del values
    # DuckDB sums floats in parallel, in an order that varies run to run; rounding the last
    # bits away makes features, and so scores and reasons, identical on every run.
    np.round(block, FEATURE_DECIMALS, out=block)
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
