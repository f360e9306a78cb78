"""The data contract checked on Spark, for data Spark reads (`features.engine=spark`,
`scoring.engine=spark`), before anything is written.

One source of truth: the rules are `validation.contract_rules` and each rule's row verdict is
the SQL `validation._ok_sql` writes for DuckDB, put into Spark SQL by `duckdb_to_spark` (the
few constructs the two engines spell differently: quoted identifiers, `isfinite`, decimal
literals). Only the table views and the helper joins (duplicate keys, referenced ids, the
previous subscription) are Spark's own. Failures are `validation.RuleFailure`s, so the
messages (table, column, rule, rows, example ids: the smallest ids) are DuckDB's.

One time model per dataset (`validation.time_model_failures`): a stamp column's values count
as naive or with an offset by `validation._stamp_sql`, given the DuckDB type that matches
Spark's: TIMESTAMP_NTZ (Parquet written without a zone) is naive, TIMESTAMP (an instant:
Parquet adjusted to UTC, or a catalog table's TIMESTAMP) has an offset, and text (CSV) is
judged by its form with DuckDB's pattern.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

import pandas as pd

from churnml.contract import CONTRACT, TIMESTAMP
from churnml.io import TABLES, ColumnRead, column_family, quote_identifier, read_column
from churnml.spark.features import SparkDialect
from churnml.spark.tables import _family, q, read_raw, table_sources, typed_column
from churnml.validation import (
    MAX_EXAMPLES,
    RULE_PREVIOUS_ENDED,
    RULE_ROWS,
    ContractRule,
    ContractViolation,
    Limits,
    RuleFailure,
    ValidationReport,
    _ok_sql,
    _stamp_sql,
    contract_rules,
    rule_applies,
    time_model_failures,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

_QUOTED = re.compile(r"('(?:[^']|'')*')")  # single-quoted text (doubled quotes inside)
_IDENTIFIER = re.compile(r'"((?:[^"]|"")*)"')
# DuckDB spellings with another name on Spark (outside quotes).
_FUNCTIONS = {
    re.compile(r"\bregexp_matches\("): "regexp_like(",
    re.compile(r"\bAS VARCHAR\)"): "AS STRING)",
}
# A stored stamp column's Spark type as the DuckDB type `validation._stamp_sql` judges: an
# instant has an offset, TIMESTAMP_NTZ is naive, a date is neither, text goes by its form.
_STAMP_TYPES = {
    "timestamp": "TIMESTAMP WITH TIME ZONE",
    "timestamp_ntz": "TIMESTAMP",
    "date": "DATE",
}


def _is_finite_spark(sql: str) -> str:
    """`isfinite(x)` as Spark SQL: abs(NaN) < inf is false there, and NULL stays NULL."""
    out, start = [], 0
    while (at := sql.find("isfinite(", start)) >= 0:
        depth, i = 1, at + len("isfinite(")
        while depth:
            depth += {"(": 1, ")": -1}.get(sql[i], 0)
            i += 1
        inner = _is_finite_spark(sql[at + len("isfinite(") : i - 1])
        out += [sql[start:at], f"(abs({inner}) < CAST('Infinity' AS DOUBLE))"]
        start = i
    return "".join(out) + sql[start:]


def duckdb_to_spark(sql: str) -> str:
    """DuckDB rule SQL (as `validation._ok_sql` writes it) in Spark SQL's spelling.

    Identifiers in double quotes take backquotes, `isfinite` becomes a comparison,
    `regexp_matches` is `regexp_like`, VARCHAR is STRING, and decimal literals are typed
    DOUBLE (`SparkDialect.finalize`), as DuckDB compares them.
    Text in single quotes is left as it is. Any other DuckDB-only construct fails on Spark,
    which tests/spark/test_spark_validation.py runs for every kind of rule.
    """
    parts = _QUOTED.split(sql)
    for i in range(0, len(parts), 2):  # even parts lie outside single quotes
        text = _IDENTIFIER.sub(lambda m: q(m.group(1).replace('""', '"')), parts[i])
        for pattern, spark_name in _FUNCTIONS.items():
            text = pattern.sub(spark_name, text)
        parts[i] = _is_finite_spark(text)
    return SparkDialect().finalize("".join(parts))


def _typed(name: str) -> str:
    return q(f"_v__{name}")


def _coded(name: str) -> str:
    return q(f"_e__{name}")


def _view(name: str) -> str:
    return f"_churnml_check_{name}"


class _SparkTable:
    """One raw table as a Spark view: its columns as stored, `_v__<c>` with the contract type
    (as the features read them) and `_e__<c>`, for a set-valued column, the value when it is
    in the set (DuckDB's ENUM cast: NULL when not)."""

    def __init__(self, spark: SparkSession, table: str, source: str) -> None:
        raw = read_raw(spark, source)
        self.table = table
        spec = CONTRACT[table]
        self.types = {f.name: f.dataType.simpleString() for f in raw.schema.fields}
        self.present = [c.name for c in spec.columns if c.name in self.types]
        self.fallible = {
            c
            for c in self.present
            if read_column(q(c), _family(self.types[c]), spec.column(c).kind).fallible
        }
        select = ["*"]
        for c in self.present:
            select.append(f"{typed_column(c, self.types[c], spec.column(c).kind)} AS {_typed(c)}")
            values = spec.column(c).values
            if values:
                allowed = ", ".join("'" + v.replace("'", "''") + "'" for v in values)
                select.append(
                    f"CASE WHEN {_typed(c)} IN ({allowed}) THEN {_typed(c)} END AS {_coded(c)}"
                )
        raw.selectExpr(*select).createOrReplaceTempView(_view(table))
        # Stamp column -> (naive SQL, offset SQL) over the stored values (DuckDB spelling).
        self.stamp_sql: dict[str, tuple[str, str]] = {}
        for c in self.present:
            duck_type = self._duckdb_stamp_type(self.types[c])
            if spec.column(c).kind != TIMESTAMP or duck_type is None:
                continue
            kinds = _stamp_sql(f"t.{quote_identifier(c)}", column_family(duck_type), duck_type)
            if kinds is not None:
                self.stamp_sql[c] = kinds

    @staticmethod
    def _duckdb_stamp_type(spark_type: str) -> str | None:
        t = spark_type.lower()
        if t in _STAMP_TYPES:
            return _STAMP_TYPES[t]
        return "VARCHAR" if _family(t) == "string" else None


def _join(table: _SparkTable, rule: ContractRule, alias: str) -> str | None:
    """The helper join a rule's verdict reads (`_ok_sql`'s `joins`), as in `_plan_scan`."""
    view = _view(table.table)
    if rule.kind == "unique" or rule.rule.startswith("unique within"):
        keys = [_typed(k) for k in rule.needs]
        on = " AND ".join(f"t.{k} = {alias}.{k}" for k in keys)
        not_null = " AND ".join(f"{k} IS NOT NULL" for k in keys)
        return (
            f"LEFT JOIN (SELECT {', '.join(keys)}, TRUE AS k FROM {view} WHERE {not_null} "
            f"GROUP BY {', '.join(keys)} HAVING count(*) > 1) AS {alias} ON {on}"
        )
    if rule.rule == RULE_PREVIOUS_ENDED:
        ended = _typed("terminated_at")
        return (
            f"LEFT JOIN (SELECT {_typed('customer_id')} AS k, max({ended}) AS e, "
            f"count({ended}) = count(*) AS ended FROM {view} GROUP BY 1) AS {alias} "
            f"ON t.{_typed(rule.column)} = {alias}.k"
        )
    if rule.rule.startswith("present in "):
        ref_table, ref_column = rule.params[0].split(".")
        return (
            f"LEFT JOIN (SELECT DISTINCT {_typed(ref_column)} AS k FROM {_view(ref_table)} "
            f"WHERE {_typed(ref_column)} IS NOT NULL) AS {alias} "
            f"ON t.{_typed(rule.column)} = {alias}.k"
        )
    return None


def _examples(verdicts, broken: list[int]) -> dict[int, list[str]]:
    """The smallest distinct ids of the rows breaking each rule (`MAX_EXAMPLES` a rule), in one
    pass over the broken rows (DuckDB: `min(DISTINCT _id, n)`)."""
    flags = ", ".join(f"IF(_f{i}, NULL, {i})" for i in broken)
    rows = (
        verdicts.where("_id IS NOT NULL")
        .selectExpr("_id", f"explode(array({flags})) AS _rule")
        .where("_rule IS NOT NULL")
        .distinct()
        .selectExpr(
            "_rule",
            "_id",
            "row_number() OVER (PARTITION BY _rule ORDER BY _id) AS _n",
        )
        .where(f"_n <= {MAX_EXAMPLES}")
        .orderBy("_rule", "_id")
        .collect()
    )
    out: dict[int, list[str]] = {}
    for row in rows:
        out.setdefault(int(row["_rule"]), []).append(str(row["_id"]))
    return out


def _check_table(
    spark: SparkSession,
    table: _SparkTable,
    as_of: pd.Timestamp | None,
    references: set[str],
    limits: Limits | None,
) -> tuple[int, list[RuleFailure], dict[str, tuple[int, int]]]:
    """Every rule of one table in one Spark aggregate; example ids for the broken ones; the
    naive and offset stamps of each stamp column (for the dataset's one time model)."""
    spec = CONTRACT[table.table]
    missing, rules = [], []
    for rule in contract_rules(table.table, limits):
        if rule.kind == "exists":
            if rule.column not in table.types:
                missing.append(rule)
        elif rule_applies(rule, table.present, as_of, references):
            rules.append(rule)
    joins: dict[str, str] = {}
    join_sql: list[str] = []
    for i, rule in enumerate(rules):
        sql = _join(table, rule, f"_j{i}")
        if sql is not None:
            joins[rule.rule] = f"_j{i}"
            join_sql.append(sql)
    # The type verdict of a column: its stored value converts (the view's `_v__` column).
    reads = {
        c: read_column(q(c), _family(table.types[c]), spec.column(c).kind) for c in table.present
    }
    for c in table.present:
        ok = f"(t.{q(c)} IS NULL OR t.{_typed(c)} IS NOT NULL)" if c in table.fallible else "TRUE"
        reads[c] = ColumnRead(reads[c].typed, ok, reads[c].fallible)
    oks = [_ok_sql(rule, reads, as_of, joins) for rule in rules]
    kept = [(r, ok) for r, ok in zip(rules, oks, strict=True) if ok != "TRUE"]
    id_column = spec.id_column if spec.id_column in table.present else None
    example = f"CAST(t.{_typed(id_column)} AS STRING)" if id_column else "CAST(NULL AS STRING)"
    flags = [f"coalesce(({ok}), TRUE) AS _f{i}" for i, (_, ok) in enumerate(kept)]
    stamp_flags = [
        f"{naive} AS _naive{i}, {offset} AS _offset{i}"
        for i, (naive, offset) in enumerate(table.stamp_sql.values())
    ]
    rows_sql = duckdb_to_spark(
        f"SELECT {', '.join([f'{example} AS _id', *flags, *stamp_flags])} "
        f"FROM {_view(table.table)} AS t " + " ".join(join_sql)
    )
    verdicts = spark.sql(rows_sql)
    stamp_counts = [
        f"count_if(_{kind}{i})" for i in range(len(table.stamp_sql)) for kind in ("naive", "offset")
    ]
    counts = verdicts.selectExpr(
        "count(*)", *[f"count_if(NOT _f{i})" for i in range(len(kept))], *stamp_counts
    ).first()
    at = 1 + len(kept)
    stamps = {
        c: (int(counts[at + 2 * i]), int(counts[at + 2 * i + 1]))
        for i, c in enumerate(table.stamp_sql)
    }
    n_rows = int(counts[0])
    failures = [RuleFailure(table.table, r.column, r.rule, n_rows, []) for r in missing]
    if table.table == "customers" and n_rows == 0:
        failures.append(RuleFailure(table.table, "*", RULE_ROWS, 0, []))
    broken = {i: int(counts[1 + i]) for i in range(len(kept)) if counts[1 + i]}
    examples = _examples(verdicts, list(broken)) if broken else {}
    for i, n in broken.items():
        rule = kept[i][0]
        failures.append(RuleFailure(table.table, rule.column, rule.rule, n, examples.get(i, [])))
    return n_rows, failures, stamps


def validate_dataset_spark(
    spark: SparkSession,
    data_path: str,
    *,
    tables: Mapping[str, str] | None = None,
    as_of: pd.Timestamp | None = None,
    limits: Limits | None = None,
) -> ValidationReport:
    """Check every contract table Spark reads (`<data_path>/<table>.parquet|csv`, or
    `spark.tables`) against the data contract: one aggregate per table over Spark views."""
    started = time.perf_counter()
    sources = table_sources(spark, data_path, tables)
    views = {t: _SparkTable(spark, t, sources[t]) for t in TABLES if t in sources}
    references = set()
    wanted = {c.references for t in CONTRACT.values() for c in t.columns if c.references}
    for reference in sorted(wanted):
        ref_table, ref_column = reference.split(".")
        view = views.get(ref_table)
        if view is None:
            continue
        if ref_column not in view.present or ref_column in view.fallible:
            log.warning(
                "%s has no %s column it can read as ids: 'present in %s' is not checked",
                ref_table,
                ref_column,
                ref_table,
            )
            continue
        references.add(reference)
    failures: list[RuleFailure] = []
    rows: dict[str, int] = {}
    stamps: list[tuple[str, str, tuple[int, int]]] = []
    for table, view in views.items():
        rows[table], table_failures, counts = _check_table(spark, view, as_of, references, limits)
        failures += table_failures
        stamps += [(table, column, n) for column, n in counts.items()]

    def examples(table: str, column: str, offset: bool) -> list[str]:
        view = views[table]
        id_column = CONTRACT[table].id_column
        if id_column not in view.present:
            return []
        where = view.stamp_sql[column][1 if offset else 0]
        ident = f"CAST(t.{_typed(id_column)} AS STRING)"
        rows = spark.sql(
            duckdb_to_spark(
                f"SELECT DISTINCT {ident} AS _id FROM {_view(table)} AS t"
                f" WHERE {where} AND {ident} IS NOT NULL ORDER BY 1 LIMIT {MAX_EXAMPLES}"
            )
        ).collect()
        return [str(row[0]) for row in rows]

    failures += time_model_failures(stamps, examples)
    log.info(
        "validation on Spark of %s: %d tables, %d broken rules (%.1f s)",
        data_path,
        len(views),
        len(failures),
        time.perf_counter() - started,
    )
    return ValidationReport(not failures, failures, rows, None)


def check_dataset_spark(spark: SparkSession, data_path: str, **kwargs) -> ValidationReport:
    """`validate_dataset_spark`, raising ContractViolation (each failure logged) when the data
    break the contract, as `validation.check_dataset` does."""
    report = validate_dataset_spark(spark, data_path, **kwargs)
    if not report.success:
        for failure in report.failures:
            log.error("data contract: %s", failure.message())
        raise ContractViolation(report)
    log.info(report.summary())
    return report
