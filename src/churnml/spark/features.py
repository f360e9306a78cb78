"""The feature families on Spark SQL: the same SQL text as DuckDB's engine, through a
`SparkDialect` and a `Context` whose tables are Spark temporary views.

The spine (customer_id, cutoff, optional weight) comes in as a Spark DataFrame or a pandas
frame; the feature table goes out as a lazy Spark DataFrame, one row per spine row, numeric
features as DOUBLE (not rounded, as the DuckDB engine: sums of non-integers are exact on
both, `registry.exact_sum`) and missing values as NULL. No raw table is collected on the
driver: the only results that reach it are the cutoff range and the few operator names of the
calls family.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from churnml.features.dialect import Dialect
from churnml.features.engine import (
    Context,
    _family_modules,
    build_family,
    family_queries,
    final_query,
)
from churnml.features.params import FAMILY_NAMES, FeatureParams
from churnml.spark.tables import q

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

# An unquoted decimal literal (86400.0, 0.005): DECIMAL in Spark SQL, whose division keeps 6
# decimals; DuckDB computes such expressions in DOUBLE. `finalize` makes them DOUBLE literals.
_DECIMAL_LITERAL = re.compile(r"(?<![\w.])(\d+\.\d*)(?![\w.])")
_QUOTED = re.compile(r"('(?:[^']|'')*'|`(?:[^`]|``)*`)")
MAX_KEY_SALTS = 4


class SparkDialect(Dialect):
    """Spark SQL's spelling of the engine-specific constructs (session time zone UTC)."""

    name = "spark"

    def seconds_between(self, start: str, end: str) -> str:
        # As DuckDB's epoch(): microseconds / 1e6 in DOUBLE, for each stamp, then subtracted.
        return f"(unix_micros({end}) / 1000000.0D - unix_micros({start}) / 1000000.0D)"

    def is_weekend(self, ts: str) -> str:
        return f"(dayofweek({ts}) IN (1, 7))"

    def materialized(self) -> str:
        return ""  # Spark reuses identical shuffle stages within a query instead

    def hash64(self, value: str) -> str:
        return f"xxhash64({value})"

    def text_type(self) -> str:
        return "STRING"

    def last_value_ignore_nulls(self, expr: str) -> str:
        return f"last_value({expr}, true)"

    def quantile(self, expr: str, q: float) -> str:
        return f"percentile({expr}, {float(q)!r}D)"

    def feature_value(self, expr: str) -> str:
        return f"CAST({expr} AS DOUBLE)"  # NULL stays NULL (Spark's null mask survives)

    def finalize(self, sql: str) -> str:
        parts = _QUOTED.split(sql)
        for i in range(0, len(parts), 2):  # even parts lie outside quotes
            parts[i] = _DECIMAL_LITERAL.sub(r"\1D", parts[i])
        return "".join(parts)


class SparkContext(Context):
    """A feature context whose raw tables and intermediate tables are Spark views."""

    def __init__(self, spark: SparkSession, views: Mapping[str, str], **kwargs) -> None:
        super().__init__(con=None, dialect=SparkDialect(), **kwargs)
        self.spark = spark
        self.views = dict(views)

    def quote(self, name: str) -> str:
        return q(name)

    def table_sql(self, table: str) -> str:
        return self.views[table]

    def rows(self, sql: str) -> list[tuple]:
        return [tuple(r) for r in self.spark.sql(self.dialect.finalize(sql)).collect()]

    def create_table(self, name: str, sql: str) -> None:
        self.spark.sql(self.dialect.finalize(sql)).createOrReplaceTempView(name)

    def table_columns(self, name: str) -> list[str]:
        return self.spark.table(name).columns

    def table_rows(self, name: str) -> int | None:
        return None  # counting would run the family's whole query once more


def feature_context(
    spark: SparkSession,
    tables: Mapping[str, DataFrame],
    params: FeatureParams,
    min_cutoff: pd.Timestamp,
    max_cutoff: pd.Timestamp,
    where: str = "spark",
) -> SparkContext:
    """A context over typed tables (`churnml.spark.tables.read_dataset`), registered as views
    `raw_<table>` in the session of `spark` (the tables' session)."""
    views, columns = {}, {}
    for table, frame in tables.items():
        frame.createOrReplaceTempView(f"raw_{table}")
        views[table] = f"raw_{table}"
        columns[table] = set(frame.columns)
    return SparkContext(
        spark,
        views,
        params=params,
        dataset_dir=where,
        min_cutoff=pd.Timestamp(min_cutoff),
        max_cutoff=pd.Timestamp(max_cutoff),
        paths=dict.fromkeys(tables, where),
        columns=columns,
    )


def _spine_frame(spark: SparkSession, spine: DataFrame | pd.DataFrame) -> tuple[DataFrame, bool]:
    """The spine as a Spark DataFrame; pandas spines get `_row` (their order) too."""
    if isinstance(spine, pd.DataFrame):
        if not {"customer_id", "cutoff"} <= set(spine.columns):
            raise ValueError("spine needs columns customer_id and cutoff")
        local = pd.DataFrame(
            {
                "_row": np.arange(len(spine), dtype=np.int64),
                "customer_id": spine["customer_id"].astype(object).astype(str).to_numpy(object),
                "cutoff": pd.to_datetime(spine["cutoff"]).to_numpy("datetime64[us]"),
                "weight": spine["weight"].to_numpy(float) if "weight" in spine else 1.0,
            }
        )
        schema = "_row BIGINT, customer_id STRING, cutoff TIMESTAMP, weight DOUBLE"
        return spark.createDataFrame(local, schema=schema), True
    if not {"customer_id", "cutoff"} <= set(spine.columns):
        raise ValueError("spine needs columns customer_id and cutoff")
    weight = "CAST(weight AS DOUBLE)" if "weight" in spine.columns else "1.0D"
    frame = spine.selectExpr(
        "CAST(customer_id AS STRING) AS customer_id",
        "CAST(cutoff AS TIMESTAMP) AS cutoff",
        f"{weight} AS weight",
    )
    return frame, False


def _register_keys(session: SparkSession) -> None:
    """`keys`: one row per distinct (customer, cutoff) with a 64-bit key `kid`, a hash of the
    pair (deterministic, computed where the rows are: no global numbering). The hash is salted
    anew in the rare case two pairs share one, so keys are always unique."""
    for salt in range(MAX_KEY_SALTS):
        args = "customer_id, cutoff" + (f", {salt}" if salt else "")
        session.sql(
            f"SELECT xxhash64({args}) AS kid, customer_id, cutoff, max(weight) AS weight"
            " FROM spine GROUP BY customer_id, cutoff"
        ).createOrReplaceTempView("keys")
        clash = session.sql("SELECT kid FROM keys GROUP BY kid HAVING count(*) > 1 LIMIT 1")
        if not clash.take(1):
            return
        log.info("features: two spine keys share a 64-bit hash; salting it (%d)", salt + 1)
    raise RuntimeError("could not give the spine's keys unique 64-bit hashes")


def build_features_spark(
    spark: SparkSession,
    tables: Mapping[str, DataFrame],
    spine: DataFrame | pd.DataFrame,
    params: FeatureParams | None = None,
) -> DataFrame:
    """Features for every spine row on Spark: `customer_id`, `cutoff` (and `_row`, the row's
    position, for a pandas spine), then the features in registry order (numeric DOUBLE,
    categorical STRING). Same definitions and values as `churnml.features.build_features`."""
    params = params or FeatureParams()
    unknown = set(params.families) - set(FAMILY_NAMES)
    if unknown:
        raise ValueError(f"unknown feature families {sorted(unknown)}; known: {FAMILY_NAMES}")
    started = time.perf_counter()
    # The views (spine, keys, raw_*, f_*) are bound into the returned DataFrame's plan when it
    # is built, so builds in one session may follow each other (not run at the same time).
    session = spark
    frame, from_pandas = _spine_frame(session, spine)
    frame.createOrReplaceTempView("spine")
    _register_keys(session)
    lo, hi = session.sql("SELECT min(cutoff), max(cutoff) FROM keys").first()
    carry = ["customer_id", "cutoff"] + (["_row"] if from_pandas else [])
    if lo is None:  # an empty spine
        return session.sql(f"SELECT {', '.join(carry)} FROM spine")
    session.sql(
        f"SELECT {', '.join('s.' + c for c in carry)}, k.kid FROM spine s JOIN keys k"
        " ON k.customer_id = s.customer_id AND k.cutoff = s.cutoff"
    ).createOrReplaceTempView("spine_kid")
    ctx = feature_context(session, tables, params, pd.Timestamp(lo), pd.Timestamp(hi))
    modules = _family_modules()
    built = [
        build_family(ctx, family, defs, sql, t0)
        for family, defs, sql, t0 in family_queries(ctx, modules, "the Spark tables")
    ]
    sql, order, _ = final_query(ctx, built, modules, carry)
    log.debug("features final query (Spark): %s", sql)
    result = session.sql(sql)
    log.info(
        "features on Spark: %d features planned in %.1f s (computed when the table is used)",
        len(order),
        time.perf_counter() - started,
    )
    return result


def feature_kinds(frame: DataFrame, exclude: tuple[str, ...] = ()) -> dict[str, str]:
    """Feature column -> numeric or categorical, from a Spark feature table's schema."""
    return {
        f.name: "categorical" if f.dataType.simpleString() == "string" else "numeric"
        for f in frame.schema.fields
        if f.name not in ("customer_id", "cutoff", "_row", *exclude)
    }


def typed_features(local: pd.DataFrame, kinds: dict[str, str]) -> pd.DataFrame:
    """Feature columns of a collected Spark frame as the DuckDB engine types them: numeric
    float64 with NaN, categorical pandas `category`."""
    cols = {}
    for name, kind in kinds.items():
        if kind == "numeric":
            cols[name] = pd.to_numeric(local[name], errors="coerce").to_numpy(dtype=float)
        else:
            values = local[name].astype(object).where(local[name].notna(), None)
            cols[name] = pd.Categorical(np.asarray(values, dtype=object))
    return pd.DataFrame(cols, index=local.index)


def features_to_pandas(frame: DataFrame, spine: pd.DataFrame | None = None) -> pd.DataFrame:
    """A Spark feature table on the driver, as `build_features` returns it: spine order (when
    built from a pandas `spine`), numeric features float64 with NaN, categorical ones
    pandas `category`."""
    kinds = feature_kinds(frame)
    local = frame.toPandas()
    if "_row" in local:
        local = local.sort_values("_row", kind="stable").drop(columns="_row")
    local = local.reset_index(drop=True)
    out = (
        spine[["customer_id", "cutoff"]].reset_index(drop=True).copy()
        if spine is not None
        else local[["customer_id", "cutoff"]].copy()
    )
    if len(out) != len(local):
        raise RuntimeError(f"Spark returned {len(local)} feature rows for {len(out)} spine rows")
    return pd.concat([out, typed_features(local, kinds)], axis=1)
