"""Raw contract tables on Spark: where each is read from, and its columns with contract types.

A table comes from `spark.tables.<name>` when set (a path, or `catalog:db.table` for a catalog
table), else from `<data.path>/<name>.parquet` or `<data.path>/<name>.csv` on any file system
Spark reads (local, HDFS, S3, ABFS). Columns are typed as `churnml.io.scan_sql` types them for
DuckDB: contract columns as their contract type, ids as text, stamps as naive UTC. Nothing is
collected: the result is a lazy DataFrame per table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from churnml.contract import CONTRACT_COLUMNS
from churnml.io import TABLES, DatasetError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

CATALOG_PREFIX = "catalog:"
_INT = {"tinyint", "smallint", "int", "bigint"}
_FLOAT = {"float", "double"}
_TYPE = {"string": "STRING", "timestamp": "TIMESTAMP", "int": "BIGINT", "float": "DOUBLE"}


def q(name: str) -> str:
    """A Spark SQL identifier for any name (backquotes doubled)."""
    return "`" + str(name).replace("`", "``") + "`"


def table_sources(
    spark: SparkSession, data_path: str, overrides: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Table name -> where it is read from, for the contract tables present."""
    from churnml.spark.session import path_exists

    overrides = dict(overrides or {})
    unknown = set(overrides) - set(TABLES)
    if unknown:
        raise DatasetError(f"spark.tables names unknown tables {sorted(unknown)}; known: {TABLES}")
    base = str(data_path).rstrip("/")
    sources: dict[str, str] = {}
    for table in TABLES:
        if overrides.get(table):
            sources[table] = overrides[table]
            continue
        for suffix in (".parquet", ".csv"):
            if path_exists(spark, f"{base}/{table}{suffix}"):
                sources[table] = f"{base}/{table}{suffix}"
                break
    if "customers" not in sources:
        raise DatasetError(
            f"{base}: no customers.parquet or customers.csv and no spark.tables.customers "
            "(the one required table of the data contract)"
        )
    return sources


def read_raw(spark: SparkSession, source: str) -> DataFrame:
    """A table as stored: a catalog table, CSV (every column as text) or Parquet."""
    if source.startswith(CATALOG_PREFIX):
        return spark.table(source.removeprefix(CATALOG_PREFIX))
    if source.rstrip("/").endswith(".csv"):
        return spark.read.option("header", True).option("encoding", "UTF-8").csv(source)
    return spark.read.parquet(source)


def _family(spark_type: str) -> str:
    t = spark_type.lower()
    if t in _INT:
        return "int"
    if t in _FLOAT or t.startswith("decimal"):
        return "float"
    if t == "string" or t.startswith(("varchar", "char")):
        return "string"
    if t == "boolean":
        return "bool"
    if t in ("timestamp", "timestamp_ntz", "date"):
        return "timestamp"
    if t == "void":
        return "null"
    return "other"


def typed_column(column: str, spark_type: str, kind: str) -> str:
    """Spark SQL reading one stored column as its contract kind (NULL where a value does not
    convert: the contract's type rules are the validator's job)."""
    c, family = q(column), _family(spark_type)
    if kind == "bool":
        if family == "bool":
            return c
        if family == "int":
            return f"CASE WHEN {c} IN (0, 1) THEN {c} = 1 END"
        if family == "string":
            return f"try_cast({c} AS BOOLEAN)"
        return "CAST(NULL AS BOOLEAN)"
    target = _TYPE[kind]
    native = {
        "string": {"string", "int", "null"},
        "timestamp": {"timestamp", "null"},
        "int": {"int", "null"},
        "float": {"int", "float", "null"},
    }[kind]
    if family in native:
        return f"CAST({c} AS {target})"
    if kind == "timestamp" and family == "string":
        # With the session in UTC, a stamp with an offset becomes its UTC wall time and a
        # naive one stays as written, as DuckDB's reader does.
        return f"try_cast({c} AS TIMESTAMP)"
    if kind == "int" and family in ("float", "string"):
        d = f"try_cast({c} AS DOUBLE)"
        return f"CASE WHEN abs({d}) < 9.0E18 AND {d} = round({d}) THEN CAST({d} AS BIGINT) END"
    if kind == "float" and family == "string":
        return f"try_cast({c} AS DOUBLE)"
    return f"CAST(NULL AS {target})"


def typed_table(spark: SparkSession, table: str, source: str) -> DataFrame:
    """A raw table with contract types (lazy: nothing is read until a query needs it)."""
    raw = read_raw(spark, source)
    kinds = {c.name: c.kind for c in CONTRACT_COLUMNS.get(table, ())}
    select = []
    for field in raw.schema.fields:
        name, spark_type = field.name, field.dataType.simpleString()
        if name in kinds:
            expr = typed_column(name, spark_type, kinds[name])
        elif name.endswith("_id"):
            expr = f"CAST({q(name)} AS STRING)"
        elif _family(spark_type) == "timestamp":
            expr = f"CAST({q(name)} AS TIMESTAMP)"
        else:
            expr = q(name)
        select.append(f"{expr} AS {q(name)}")
    return raw.selectExpr(*select)


def read_dataset(
    spark: SparkSession, data_path: str, overrides: Mapping[str, str] | None = None
) -> dict[str, DataFrame]:
    """Every contract table present, typed (lazy DataFrames)."""
    return {
        table: typed_table(spark, table, source)
        for table, source in table_sources(spark, data_path, overrides).items()
    }
