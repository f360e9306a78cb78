"""Validating raw datasets against the data contract (`churnml.contract`, docs/data-contract.md).

Every rule of a table is counted in one DuckDB scan of its file: each rule is a boolean SQL
expression over a row (rules across tables are joins in the same query), and the scan counts the
rows that break each one. Only when a rule breaks does a second pass collect a few example ids.
Great Expectations is the record of the rules: each table has a GX ExpectationSuite with one
expectation per rule, whose `meta` names its (table, column, rule); the verdicts are written as
GX validation results, and GX's Data Docs of the suites are built through its public API.
A table file that passed is remembered by its fingerprint and not scanned again while it, the
rules and the files it refers to are unchanged. Small in-memory frames (snapshot datasets, the
scores) are validated by GX itself.
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import html
import itertools
import json
import logging
import re
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pandas as pd
import pyarrow.parquet as pq

from churnml import contract
from churnml.contract import TABLES
from churnml.io import (
    OFFSET_PATTERN,
    ColumnRead,
    column_family,
    connect,
    describe_raw,
    manifest_as_of,
    quote_identifier,
    raw_scan_sql,
    read_column,
    reading,
    sql_string,
    table_path,
    write_atomic,
)
from churnml.progress import Progress

if TYPE_CHECKING:  # Great Expectations takes seconds to import: only what needs it loads it
    import great_expectations as gx
    from great_expectations.core.expectation_validation_result import (
        ExpectationSuiteValidationResult,
    )

log = logging.getLogger(__name__)

MAX_EXAMPLES = 5
DOCS_SITE_NAME = "churnml"

# Rule names, as they appear in messages (and in tests/tiny_dataset.py's BROKEN_RULES).
RULE_PRESENT = "required column present"
RULE_NOT_NULL = "not null"
RULE_UNIQUE = "unique"
RULE_KNOWN = "present in customers"
RULE_AS_OF = "not after as_of"
RULE_TABLE = "required table present"
RULE_FINITE = "finite (no inf or nan)"
RULE_ROWS = "at least one row"
RULE_TIME_MODEL = "one time model: all stamps naive or all with a UTC offset"


def rule_type(kind: str) -> str:
    """Name of the type rule for a column of contract type `kind`."""
    return f"type {kind}"


def rule_one_of(values: Collection[str]) -> str:
    """Name of the allowed-values rule."""
    return "one of " + ", ".join(values)


def rule_between(low: float, high: float) -> str:
    """Name of an inclusive range rule."""
    return f"between {low} and {high}"


# ---------------------------------------------------------------------------------------------
# The contract (churnml.contract holds it as data)

CONTRACT = contract.CONTRACT
ID_COLUMNS: dict[str, str] = {name: t.id_column for name, t in CONTRACT.items()}
RULE_PREVIOUS_ENDED = "the earlier subscription ended by activated_at"


@dataclass(frozen=True)
class Limits:
    """Plausible upper bounds of amounts, durations and volumes (settings `validation.max_*`):
    a value above them is a unit or export error, and would dominate revenue at risk."""

    max_amount: float = 1_000_000.0
    max_call_duration_s: int = 86_400
    max_volume_mb: float = 1_000_000.0


def rule_at_most(high: float, setting: str) -> str:
    """Name of a plausible-range rule set by `validation.<setting>`."""
    return f"<= {high:,.15g} (validation.{setting})"


def rule_present_in(reference: str) -> str:
    """Name of the rule that a value is present in another table (`table.column`)."""
    return f"present in {reference.split('.')[0]}"


def rule_unique_within(columns: Collection[str]) -> str:
    """Name of a composite-key rule: the last column is unique within the others."""
    *within, _ = columns
    return f"unique within {', '.join(within)}"


def _range_rule(low: float | None, high: float | None, strict_min: bool) -> str:
    if low is not None and high is not None:
        return rule_between(low, high)
    return f"{'>' if strict_min else '>='} {low}" if low is not None else f"<= {high}"


# ---------------------------------------------------------------------------------------------
# Rules


@dataclass(frozen=True)
class ContractRule:
    """One contract rule of one table, and how it is checked (`flag`: by a helper column
    computed in SQL; the other kinds: by a GX expectation on the values)."""

    table: str
    column: str
    rule: str
    kind: str  # exists | not_null | flag | in_set | between | order | unique | classes
    needs: tuple[str, ...] = ()  # columns that must be present for the rule to apply
    params: tuple = ()

    @property
    def flag(self) -> str:
        """Name of the helper column that holds this rule's verdict (kind == "flag")."""
        slug = re.sub(r"[^0-9a-z]+", "_", self.rule.lower()).strip("_")
        return f"_ok__{self.column}__{slug}"


def contract_rules(table: str, limits: Limits | None = None) -> list[ContractRule]:
    """Every contract rule of a table, in contract order (column by column)."""
    limits = limits or Limits()
    spec = CONTRACT[table]
    rules: list[ContractRule] = []
    for col in spec.columns:
        name = col.name
        if col.required:
            rules.append(ContractRule(table, name, RULE_PRESENT, "exists"))
        rules.append(ContractRule(table, name, rule_type(col.kind), "flag", (name,)))
        if col.required:
            rules.append(ContractRule(table, name, RULE_NOT_NULL, "not_null", (name,)))
        if col.unique:
            rules.append(ContractRule(table, name, RULE_UNIQUE, "unique", (name,)))
        if col.references:
            rule = rule_present_in(col.references)
            rules.append(ContractRule(table, name, rule, "flag", (name,), (col.references,)))
            if col.references.split(".")[0] == table:  # a subscription's earlier one
                rules.append(ContractRule(table, name, RULE_PREVIOUS_ENDED, "flag", (name,)))
        if col.values:
            rule = rule_one_of(col.values)
            rules.append(ContractRule(table, name, rule, "in_set", (name,), col.values))
        if col.low is not None or col.high is not None:
            rule = _range_rule(col.low, col.high, col.strict_low)
            params = (col.low, col.high, col.strict_low)
            rules.append(ContractRule(table, name, rule, "between", (name,), params))
        if col.kind == contract.FLOAT:
            rules.append(ContractRule(table, name, RULE_FINITE, "flag", (name,)))
        if col.upper_setting:
            high = getattr(limits, col.upper_setting)
            rule = rule_at_most(high, col.upper_setting)
            rules.append(ContractRule(table, name, rule, "flag", (name,), (high,)))
        if col.not_before:
            rule = f">= {col.not_before}"
            needs = (name, col.not_before)
            rules.append(ContractRule(table, name, rule, "order", needs, (col.not_before,)))
        if col.event_time:
            rules.append(ContractRule(table, name, RULE_AS_OF, "flag", (name,)))
        for row_rule in spec.row_rules:
            if row_rule.column == name:
                rules.append(
                    ContractRule(table, name, row_rule.rule, "flag", row_rule.needs, (row_rule,))
                )
        if spec.unique_together and name == spec.unique_together[-1]:
            rule = rule_unique_within(spec.unique_together)
            rules.append(ContractRule(table, name, rule, "flag", spec.unique_together))
    return rules


# ---------------------------------------------------------------------------------------------
# Column types: how a source column (DuckDB type) is read as its contract type


_LABEL_CLASS = "_label_is_positive"
RULE_CLASSES = "both label classes present"


def _raw_null_column(column: str) -> str:
    return f"_raw__{column}"


# ---------------------------------------------------------------------------------------------
# Suites


def _meta(rule: ContractRule) -> dict:
    return {
        "contract_table": rule.table,
        "contract_column": rule.column,
        "contract_rule": rule.rule,
    }


def _expectation(rule: ContractRule, cast_columns: Collection[str]):
    meta = _meta(rule)
    notes = f"data contract: {rule.table}.{rule.column}: {rule.rule}"
    import great_expectations as gx

    e = gx.expectations
    if rule.kind == "exists":
        return e.ExpectColumnToExist(column=rule.column, meta=meta, notes=notes)
    if rule.kind == "not_null":
        # A value that fails its type conversion is NULL in the typed column; judging presence
        # on the raw value keeps a type error from also counting as a missing value.
        column = _raw_null_column(rule.column) if rule.column in cast_columns else rule.column
        return e.ExpectColumnValuesToNotBeNull(column=column, meta=meta, notes=notes)
    if rule.kind == "flag":
        return e.ExpectColumnValuesToBeInSet(
            column=rule.flag, value_set=[True], meta=meta, notes=notes
        )
    if rule.kind == "in_set":
        return e.ExpectColumnValuesToBeInSet(
            column=rule.column, value_set=list(rule.params), meta=meta, notes=notes
        )
    if rule.kind == "between":
        low, high, strict = rule.params
        return e.ExpectColumnValuesToBeBetween(
            column=rule.column,
            min_value=low,
            max_value=high,
            strict_min=strict,
            meta=meta,
            notes=notes,
        )
    if rule.kind == "unique":
        return e.ExpectColumnValuesToBeUnique(column=rule.column, meta=meta, notes=notes)
    if rule.kind == "classes":
        return e.ExpectColumnDistinctValuesToContainSet(
            column=_LABEL_CLASS, value_set=[True, False], meta=meta, notes=notes
        )
    if rule.kind == "order":
        return e.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A=rule.column,
            column_B=rule.params[0],
            or_equal=True,
            ignore_row_if="either_value_is_missing",
            meta=meta,
            notes=notes,
        )
    raise ValueError(f"unknown rule kind {rule.kind!r}")


def _applicable_rules(
    table: str,
    columns: Collection[str] | None,
    skip_rules: Collection[str] = (),
    limits: Limits | None = None,
) -> list[ContractRule]:
    present = None if columns is None else set(columns)
    rules = []
    for rule in contract_rules(table, limits):
        if rule.rule in skip_rules:
            continue
        if present is not None and not set(rule.needs) <= present:
            continue
        rules.append(rule)
    return rules


def build_suite(
    table: str,
    columns: Collection[str] | None = None,
    *,
    cast_columns: Collection[str] = (),
    skip_rules: Collection[str] = (),
) -> gx.ExpectationSuite:
    """The GX suite of one contract table: one expectation per rule, `meta` naming the rule.

    `columns` lists the columns present in the table (None: all contract columns); rules on an
    absent column are left out, except the existence check of a required column.
    `cast_columns` are columns whose source values may fail type conversion (their not-null
    check reads the raw value). `skip_rules` names rules that cannot be judged for this dataset.
    """
    if table not in CONTRACT:
        raise ValueError(f"{table!r} is not a contract table (one of {', '.join(TABLES)})")
    return _suite(table, _applicable_rules(table, columns, skip_rules), cast_columns)


def _suite(
    table: str, rules: list[ContractRule], cast_columns: Collection[str]
) -> gx.ExpectationSuite:
    import great_expectations as gx

    return gx.ExpectationSuite(
        name=f"contract.{table}",
        expectations=[_expectation(r, cast_columns) for r in rules],
        meta={"notes": f"data contract v1, table {table}"},
    )


# ---------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class RuleFailure:
    """One contract rule broken by some rows of one table."""

    table: str
    column: str
    rule: str
    n_rows: int
    example_ids: list[str] = field(default_factory=list)

    def message(self) -> str:
        """One line naming table, column, rule, row count and a few example ids."""
        if self.rule == RULE_TABLE:
            return f"{self.table}: {self.rule} — no {self.table}.parquet or {self.table}.csv found"
        if self.rule == RULE_ROWS:
            return f"{self.table}: {self.rule} — the table is empty: nothing to train or score"
        text = f"{self.table}.{self.column}: {self.rule} — {self.n_rows} rows break it"
        if self.example_ids:
            text += f" (e.g. {', '.join(self.example_ids[:MAX_EXAMPLES])})"
        return text


@dataclass
class ValidationReport:
    """Outcome of validating a dataset: broken rules and rows checked per table."""

    success: bool
    failures: list[RuleFailure]
    tables: dict[str, int]
    docs_path: Path | None = None

    def summary(self) -> str:
        """A few lines for logs: verdict, rows per table, one line per broken rule."""
        rows = ", ".join(f"{t} {n:,}" for t, n in self.tables.items()) or "no tables"
        if self.success:
            return f"dataset meets the data contract (rows checked: {rows})"
        lines = [f"dataset breaks {len(self.failures)} contract rules (rows checked: {rows}):"]
        lines += [f"  {f.message()}" for f in self.failures]
        return "\n".join(lines)


class ContractViolation(ValueError):
    """The dataset breaks the data contract; `.report` has the details."""

    def __init__(self, report: ValidationReport) -> None:
        self.report = report
        lines = [f"raw data breaks {len(report.failures)} data contract rules:"]
        lines += [f.message() for f in report.failures]
        super().__init__("\n".join(lines))


@dataclass
class _Merged:
    """Results of one expectation merged over chunks."""

    rule: ContractRule
    success: bool = True
    element_count: int = 0
    unexpected_count: int = 0
    examples: list[str] = field(default_factory=list)
    values: list = field(default_factory=list)
    template: dict | None = None  # a chunk's result dict, for Data Docs


def _example_id(value) -> str | None:
    """An id as text, or None for a missing one."""
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    return str(value)


class _SuiteRunner:
    """Runs one suite over a stream of pandas chunks and merges the results."""

    def __init__(
        self,
        context,
        table: str,
        rules: list[ContractRule],
        cast_columns: Collection[str],
        id_column: str | None,
    ) -> None:
        self.context = context
        self.table = table
        self.rules = {(r.column, r.rule): r for r in rules}
        self.cast_columns = list(cast_columns)
        asset = context.data_sources.get("churnml").add_dataframe_asset(table)
        self.batch = asset.add_batch_definition_whole_dataframe(f"{table}_chunk")
        self.suite = _suite(table, rules, cast_columns)
        self.definition = self._definition(self.suite, f"validate_{table}")
        self._detail: dict[frozenset, gx.ValidationDefinition] = {}
        self.id_column = id_column
        self.merged = {key: _Merged(r) for key, r in self.rules.items()}
        self.first_result: ExpectationSuiteValidationResult | None = None
        self.rows = 0

    def _definition(self, suite: gx.ExpectationSuite, name: str) -> gx.ValidationDefinition:
        import great_expectations as gx

        suite = self.context.suites.add(suite)
        return self.context.validation_definitions.add(
            gx.ValidationDefinition(name=name, data=self.batch, suite=suite)
        )

    def _detail_definition(self, keys: frozenset) -> gx.ValidationDefinition:
        """A validation of only the expectations in `keys` (a sub-suite, made once per set)."""
        import great_expectations as gx

        if keys not in self._detail:
            rules = [r for key, r in self.rules.items() if key in keys]
            name = f"contract.{self.table}.detail{len(self._detail) + 1}"
            suite = gx.ExpectationSuite(
                name=name, expectations=[_expectation(r, self.cast_columns) for r in rules]
            )
            self._detail[keys] = self._definition(suite, f"validate_{name}")
        return self._detail[keys]

    def _key(self, result) -> tuple[str, str]:
        meta = result.expectation_config.meta or {}
        key = (meta["contract_column"], meta["contract_rule"])
        if result.exception_info and result.exception_info.get("raised_exception"):
            raise RuntimeError(
                f"validating {self.table}.{key[0]} ({key[1]}) raised: "
                f"{result.exception_info.get('exception_message')}"
            )
        return key

    def run(self, chunk: pd.DataFrame) -> None:
        # Pass/fail alone costs GX much less than counts with example ids; the expectations
        # that fail on a chunk are run again on it, alone, for those.
        batch = {"dataframe": chunk}
        result = self.definition.run(batch_parameters=batch, result_format="BOOLEAN_ONLY")
        if self.first_result is None:
            self.first_result = result
        self.rows += len(chunk)
        failed = []
        for r in result.results:
            key = self._key(r)
            self.merged[key].element_count += len(chunk)
            if not r.success:
                failed.append(key)
        if not failed:
            return
        # No `unexpected_index_column_names`: with it GX looks up every failing row's id in a
        # Python loop (a minute per million failing rows). Without it GX gives the first
        # failing rows' index labels, and the ids are looked up here.
        result_format = {"result_format": "SUMMARY", "partial_unexpected_count": MAX_EXAMPLES}
        detail = self._detail_definition(frozenset(failed)).run(
            batch_parameters=batch, result_format=result_format
        )
        ids = chunk[self.id_column] if self.id_column is not None else None
        for r in detail.results:
            merged = self.merged[self._key(r)]
            merged.success = False
            res = r.result or {}
            merged.unexpected_count += int(res.get("unexpected_count", 0) or 0)
            if merged.template is None:
                merged.template = dict(res)
            labels = res.get("partial_unexpected_index_list") or []
            for label in labels if ids is not None else []:
                ident = _example_id(ids.loc[label])
                if ident is not None and ident not in merged.examples:
                    merged.examples.append(ident)
            for value in res.get("partial_unexpected_list") or []:
                if len(merged.values) < MAX_EXAMPLES:
                    merged.values.append(value)
            del merged.examples[MAX_EXAMPLES:]

    def failures(self) -> list[RuleFailure]:
        out = []
        for m in self.merged.values():
            if m.success:
                continue
            # A missing column (or a missing label class) concerns every row of the table.
            n = self.rows if m.rule.kind in ("exists", "classes") else m.unexpected_count
            out.append(RuleFailure(self.table, m.rule.column, m.rule.rule, n, list(m.examples)))
        return out

    def merged_result(self) -> ExpectationSuiteValidationResult | None:
        """The first chunk's suite result with each expectation's counts summed over chunks."""
        if self.first_result is None:
            return None
        merged = copy.deepcopy(self.first_result)
        n_ok = 0
        for r in merged.results:
            meta = r.expectation_config.meta or {}
            m = self.merged[(meta["contract_column"], meta["contract_rule"])]
            r.success = m.success
            n_ok += m.success
            if m.rule.kind in ("exists", "classes"):
                continue
            res = dict(m.template or r.result or {})
            res["element_count"] = m.element_count
            res["unexpected_count"] = m.unexpected_count
            pct = 100.0 * m.unexpected_count / m.element_count if m.element_count else 0.0
            res["unexpected_percent"] = pct
            if not m.success:
                # A helper flag's value is always False: show the ids of the rows instead.
                flag = m.rule.kind == "flag"
                res["partial_unexpected_list"] = list(m.examples if flag else m.values)
                res["partial_unexpected_index_list"] = [{self.id_column: i} for i in m.examples]
                res.pop("partial_unexpected_counts", None)
            r.result = res
        n = len(merged.results)
        merged.success = n_ok == n
        merged.statistics = {
            "evaluated_expectations": n,
            "successful_expectations": n_ok,
            "unsuccessful_expectations": n - n_ok,
            "success_percent": 100.0 * n_ok / n if n else 100.0,
        }
        merged.meta["chunks_rows"] = self.rows
        return merged


# ---------------------------------------------------------------------------------------------
# Verdicts: every rule of a table counted in one DuckDB scan


@dataclass
class _TableScan:
    """One table file's rules, the SQL that counts them in one scan, and its outcome."""

    table: str
    path: Path
    types: dict[str, str]  # the file's columns and their DuckDB types as stored
    present: list[str]  # contract columns present in the file
    rules: list[ContractRule]  # rules judged by the scan (flags), in contract order
    missing: list[ContractRule]  # required columns absent from the file
    proven: list[ContractRule]  # rules the Parquet footer proves for every row
    sql: str  # one scan: the row count, the rows breaking each rule, naive and offset stamps
    rows_sql: str  # a row's id and rule verdicts (_id, _f<i>), for example ids
    reference_sql: dict[int, str]  # rule index -> count of rows missing from the referenced table
    stamp_sql: dict[str, tuple[str, str]]  # stamp column -> (naive SQL, offset SQL) over raw
    rows: int = 0
    broken: dict[ContractRule, tuple[int, list[str]]] = field(default_factory=dict)
    stamps: dict[str, tuple[int, int]] = field(default_factory=dict)  # column -> (naive, offset)


def _stamp_sql(q: str, family: str, duck_type: str) -> tuple[str, str] | None:
    """SQL counting a stamp column's naive and offset values (dates are neither)."""
    if family == "timestamptz":
        return "FALSE", f"{q} IS NOT NULL"
    if family == "timestamp" and duck_type.upper() != "DATE":
        return f"{q} IS NOT NULL", "FALSE"
    if family == "string":
        text = f"trim(CAST({q} AS VARCHAR))"
        offset = f"coalesce(regexp_matches({text}, '{OFFSET_PATTERN}'), FALSE)"
        naive = (
            f"coalesce(NOT regexp_matches({text}, '{OFFSET_PATTERN}') "
            f"AND regexp_matches({text}, '[0-9][T ][0-9]'), FALSE)"
        )
        return naive, offset
    return None


class _Absent(dict):
    """`{c[x]}` / `{null[x]}` of a row rule for a column the file lacks: NULL / TRUE."""

    def __init__(self, values: dict[str, str], absent: str) -> None:
        super().__init__(values)
        self.absent = absent

    def __missing__(self, key: str) -> str:
        return self.absent


def _typed(name: str) -> str:
    return quote_identifier(f"_v__{name}")


def _coded(name: str) -> str:
    """The helper column holding a set-valued column as a DuckDB ENUM (NULL when not allowed)."""
    return quote_identifier(f"_e__{name}")


def _enum_type(values: Collection[str]) -> str:
    return f"ENUM({', '.join(sql_string(v) for v in values)})"


def _ok_sql(
    rule: ContractRule,
    reads: dict[str, ColumnRead],  # read over the row's raw columns (`t."name"`)
    as_of: pd.Timestamp | None,
    joins: dict[str, str],
) -> str:
    """Boolean SQL over one row, TRUE (or NULL) when the row keeps `rule`."""
    col = f"t.{_typed(rule.column)}"
    # Set-valued columns are compared as ENUMs: integer codes, decided once per dictionary
    # entry, several times faster than string comparisons over a CDR-sized table.
    coded = {c.name for c in CONTRACT[rule.table].columns if c.values}
    values = _Absent({n: f"t.{_coded(n) if n in coded else _typed(n)}" for n in reads}, "NULL")
    nulls = _Absent({n: f"t.{quote_identifier(n)} IS NULL" for n in reads}, "TRUE")
    is_float = CONTRACT[rule.table].column(rule.column).kind == contract.FLOAT
    if rule.rule.startswith("type "):
        return reads[rule.column].ok
    if rule.kind == "not_null":
        return f"NOT ({nulls[rule.column]})"
    if rule.kind == "unique" or rule.rule.startswith("unique within"):
        return f"{joins[rule.rule]}.k IS NULL"
    if rule.rule == RULE_PREVIOUS_ENDED:
        j = joins[rule.rule]
        return (
            f"{col} IS NULL OR {j}.k IS NULL OR ({j}.ended AND {j}.e <= {values['activated_at']})"
        )
    if rule.rule.startswith("present in "):
        return f"{col} IS NULL OR {joins[rule.rule]}.k IS NOT NULL"
    if rule.kind == "in_set":
        return f"{col} IS NULL OR t.{_coded(rule.column)} IS NOT NULL"
    if rule.kind == "between":
        low, high, strict = rule.params
        parts = []
        if low is not None:
            parts.append(f"{col} {'>' if strict else '>='} {float(low)!r}")
        if high is not None:
            parts.append(f"{col} <= {float(high)!r}")
        skip = f"{col} IS NULL" + (f" OR NOT isfinite({col})" if is_float else "")
        return f"{skip} OR ({' AND '.join(parts)})"
    if rule.rule == RULE_FINITE:
        return f"{col} IS NULL OR isfinite({col})"
    if rule.rule.startswith("<= ") and rule.params:
        # Non-finite values break the finite rule alone.
        finite = f" OR NOT isfinite({col})" if is_float else ""
        return f"{col} IS NULL{finite} OR {col} <= {float(rule.params[0])!r}"
    if rule.kind == "order":
        earlier = f"t.{_typed(rule.params[0])}"
        return f"{col} IS NULL OR {earlier} IS NULL OR {col} >= {earlier}"
    if rule.rule == RULE_AS_OF:
        stamp = as_of.strftime("%Y-%m-%d %H:%M:%S.%f")
        return f"{col} IS NULL OR {col} <= TIMESTAMP '{stamp}'"
    if rule.params and isinstance(rule.params[0], contract.RowRule):
        return rule.params[0].sql.format(c=values, null=nulls)
    raise ValueError(f"no SQL for rule {rule.table}.{rule.column}: {rule.rule}")


def rule_applies(
    rule: ContractRule,
    present: Collection[str],
    as_of: pd.Timestamp | None,
    references: Collection[str],
) -> bool:
    """Whether a table file's columns, `as_of` and the readable referenced columns
    ("table.column") let a rule be judged; the DuckDB and Spark validators decide alike."""
    present = set(present)
    if not set(rule.needs) <= present:
        return False
    if rule.rule == RULE_AS_OF and as_of is None:
        return False
    if rule.rule.startswith("present in ") and rule.params[0] not in references:
        return False
    if rule.rule == RULE_PREVIOUS_ENDED:
        needed = {"customer_id", "activated_at", "terminated_at"}
        column = CONTRACT[rule.table].column(rule.column)
        return needed <= present and column.references in references
    return True


def _plan_scan(
    con: duckdb.DuckDBPyConnection,
    table: str,
    path: Path,
    *,
    as_of: pd.Timestamp | None,
    references: dict[str, str],
    limits: Limits | None,
) -> _TableScan:
    """Work out the rules that apply to a table file and the one query that counts them.

    `references` maps "table.column" to SQL listing its distinct values as `k` (for the "present
    in" rules); a reference missing from it is not checked (logged where it was built).
    """
    types = describe_raw(path, con)
    spec = CONTRACT[table]
    present = [c.name for c in spec.columns if c.name in types]
    reads = {
        c: read_column(quote_identifier(c), column_family(types[c]), spec.column(c).kind)
        for c in present
    }
    rules: list[ContractRule] = []
    missing: list[ContractRule] = []
    for rule in contract_rules(table, limits):
        if rule.kind == "exists":
            if rule.column not in types:
                missing.append(rule)
            continue
        if rule_applies(rule, present, as_of, references):
            rules.append(rule)

    scan = raw_scan_sql(path)
    typed = [f"{reads[c].typed} AS {_typed(c)}" for c in present]
    typed += [
        f"TRY_CAST({reads[c].typed} AS {_enum_type(spec.column(c).values)}) AS {_coded(c)}"
        for c in present
        if spec.column(c).values
    ]
    inner = f"SELECT *, {', '.join(typed)} FROM {scan}" if typed else f"SELECT * FROM {scan}"
    joins: dict[str, str] = {}
    join_sql: list[str] = []
    reference_joins: set[str] = set()  # joined for example ids only (see `reference_sql`)
    for i, rule in enumerate(rules):
        alias = f"_j{i}"
        if rule.kind == "unique" or rule.rule.startswith("unique within"):
            keys = rule.needs
            key_sql = ", ".join(f"{reads[k].typed} AS {quote_identifier(k)}" for k in keys)
            on = " AND ".join(f"t.{_typed(k)} = {alias}.{quote_identifier(k)}" for k in keys)
            not_null = " AND ".join(f"{quote_identifier(k)} IS NOT NULL" for k in keys)
            join_sql.append(
                f"LEFT JOIN (SELECT {', '.join(quote_identifier(k) for k in keys)}, TRUE AS k "
                f"FROM (SELECT {key_sql} FROM {scan}) WHERE {not_null} GROUP BY ALL "
                f"HAVING count(*) > 1) AS {alias} ON {on}"
            )
        elif rule.rule == RULE_PREVIOUS_ENDED:
            ids, ended = reads["customer_id"].typed, reads["terminated_at"].typed
            join_sql.append(
                f"LEFT JOIN (SELECT {ids} AS k, max({ended}) AS e, "
                f"count({ended}) = count(*) AS ended FROM {scan} GROUP BY 1) AS {alias} "
                f"ON t.{_typed(rule.column)} = {alias}.k"
            )
        elif rule.rule.startswith("present in "):
            join_sql.append(
                f"LEFT JOIN ({references[rule.params[0]]}) AS {alias} "
                f"ON t.{_typed(rule.column)} = {alias}.k"
            )
            reference_joins.add(join_sql[-1])
        else:
            continue
        joins[rule.rule] = alias
    id_column = spec.id_column if spec.id_column in present else None
    example = f"CAST(t.{_typed(id_column)} AS VARCHAR)" if id_column else "NULL::VARCHAR"
    row_reads = {
        c: read_column(f"t.{quote_identifier(c)}", column_family(types[c]), spec.column(c).kind)
        for c in present
    }
    oks = [_ok_sql(r, row_reads, as_of, joins) for r in rules]
    # A rule that no value can break (the type of a natively typed column) costs nothing, and
    # neither does one the Parquet footer proves for every row (see `_proven_by_footer`).
    proven = _proven_by_footer(con, path, types, rules, oks, reads)
    kept = [(r, ok) for r, ok in zip(rules, oks, strict=True) if ok != "TRUE" and r not in proven]
    proven_rules = [r for r in rules if r in proven]
    rules = [r for r, _ in kept]
    flags = [f"coalesce(({ok}), TRUE) AS _f{i}" for i, (_, ok) in enumerate(kept)]
    stamp_sql = {}
    for c in present:
        if spec.column(c).kind == contract.TIMESTAMP:
            kinds = _stamp_sql(f"t.{quote_identifier(c)}", column_family(types[c]), types[c])
            if kinds is not None:
                stamp_sql[c] = kinds
    stamp_flags = [
        f"{naive} AS _naive{i}, {offset} AS _offset{i}"
        for i, (naive, offset) in enumerate(stamp_sql.values())
    ]
    # Every contract column is read to its end (count), so a corrupt page in a column that no
    # rule needs still stops the run here and not in the features.
    read_all = [f"t.{quote_identifier(c)} AS _read{i}" for i, c in enumerate(present)]
    row = ", ".join([f"{example} AS _id", *flags, *stamp_flags, *read_all])
    rows_sql = f"SELECT {row} FROM ({inner}) AS t {' '.join(join_sql)}"

    # The counting scan. Cheaper forms of two kinds of rule, same verdicts: a value outside
    # its set is a value whose ENUM is NULL (a difference of two counts, no per-row test); a
    # reference is counted by an anti-join of the column alone, outside the wide scan, which is
    # several times faster than probing a hash table with every row of it.
    counted: list[str] = []
    codes: list[str] = []
    reference_sql: dict[int, str] = {}
    for i, rule in enumerate(rules):
        if rule.kind == "in_set":
            codes.append(f"t.{_typed(rule.column)} AS _val{i}, t.{_coded(rule.column)} AS _code{i}")
            counted.append(f"count(_val{i}) - count(_code{i})")
        elif rule.rule.startswith("present in "):
            value = reads[rule.column].typed
            reference_sql[i] = (
                f"SELECT count(*) FROM (SELECT {value} AS v FROM {scan}) AS t "
                f"ANTI JOIN ({references[rule.params[0]]}) AS r ON t.v = r.k "
                "WHERE t.v IS NOT NULL"
            )
            counted.append("0")
        else:
            counted.append(f"count(*) FILTER (WHERE NOT _f{i})")
    count_flags = [f for i, f in enumerate(flags) if i not in reference_sql]
    count_row = ", ".join(["1 AS _one", *count_flags, *codes, *stamp_flags, *read_all])
    count_joins = " ".join(j for j in join_sql if j not in reference_joins)
    aggregates = ["count(*)", *counted]
    for i in range(len(stamp_sql)):
        aggregates.append(f"count(*) FILTER (WHERE _naive{i})")
        aggregates.append(f"count(*) FILTER (WHERE _offset{i})")
    aggregates += [f"count(_read{i})" for i in range(len(present))]
    sql = (
        f"SELECT {', '.join(aggregates)} FROM (SELECT {count_row} FROM ({inner}) AS t "
        f"{count_joins})"
    )
    return _TableScan(
        table,
        path,
        types,
        present,
        rules,
        missing,
        proven_rules,
        sql,
        rows_sql,
        reference_sql,
        stamp_sql,
    )


_FOOTER_PHYSICAL = {"INT32", "INT64", "FLOAT", "DOUBLE"}


def _footer_extremes(path: Path) -> dict[str, tuple[object, object, int, bool]]:
    """Per column of a Parquet file: (min, max, null count, ranged) over every row group, from
    the footer. `ranged` is False, and min and max are None, unless every row group holding a
    value has min and max of a numeric or time type. A column missing null counts in any row
    group is left out."""
    metadata = pq.ParquetFile(path).metadata
    out: dict[str, tuple[object, object, int, bool]] = {}
    names = [metadata.schema.column(j).name for j in range(metadata.num_columns)]
    for j, name in enumerate(names):
        low = high = None
        nulls = 0
        usable = ranged = True
        for i in range(metadata.num_row_groups):
            chunk = metadata.row_group(i).column(j)
            stats = chunk.statistics
            if stats is None or not stats.has_null_count:
                usable = False
                break
            nulls += stats.null_count
            if ranged and chunk.num_values > stats.null_count:
                if chunk.physical_type not in _FOOTER_PHYSICAL or not stats.has_min_max:
                    ranged = False
                    continue
                low = stats.min if low is None else min(low, stats.min)
                high = stats.max if high is None else max(high, stats.max)
        if usable:
            out[name] = (low, high, nulls, True) if ranged else (None, None, nulls, False)
    return out


def _literal(value: object) -> str | None:
    """A DuckDB literal for a footer statistic, or None when it cannot stand for the data."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return None if value != value else f"CAST({str(value)!r} AS DOUBLE)"
    if isinstance(value, datetime.datetime):
        return None if value.tzinfo else f"TIMESTAMP '{value.isoformat(sep=' ')}'"
    if isinstance(value, datetime.date):
        return f"DATE '{value.isoformat()}'"
    return None


def _proven_by_footer(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    types: dict[str, str],
    rules: list[ContractRule],
    oks: list[str],
    reads: dict[str, ColumnRead],
) -> set[ContractRule]:
    """The rules a Parquet footer proves for every row, so the scan need not evaluate them.

    A column without nulls keeps its not-null rule; a range rule (bounds, plausible maximum,
    not after as_of) holds for every value when it holds for the column's smallest and largest
    values. The very SQL of the rule is evaluated on those two values. Only natively typed
    numbers and naive times are trusted; text statistics, INT96 stamps and a row group without
    statistics prove nothing.
    """
    if path.suffix != ".parquet":
        return set()
    extremes = _footer_extremes(path)
    proven: set[ContractRule] = set()
    tests: list[tuple[ContractRule, str]] = []  # (rule, SQL: TRUE when the extremes keep it)
    for rule, ok in zip(rules, oks, strict=True):
        name = rule.column
        if name not in extremes or rule.needs != (name,):
            continue
        low, high, nulls, ranged = extremes[name]
        if rule.kind == "not_null":  # a rule on the raw value: its type does not matter
            if nulls == 0:
                proven.add(rule)
            continue
        if reads[name].fallible or not ranged:
            continue
        monotone = (
            rule.kind == "between"
            or rule.rule == RULE_AS_OF
            or (rule.rule.startswith("<= ") and bool(rule.params))
        )
        if not monotone or column_family(types[name]) not in ("int", "float", "timestamp"):
            continue
        values = [_literal(v) for v in (low, high) if v is not None]
        if None in values:
            continue
        if not values:  # every value null: no value to break the rule
            proven.add(rule)
            continue
        typed = reads[name].typed.replace(quote_identifier(name), "v")
        rows = ", ".join(f"({v})" for v in values)
        tests.append(
            (
                rule,
                f"(SELECT bool_and(coalesce(({ok}), TRUE)) FROM (SELECT v AS "
                f"{quote_identifier(name)}, {typed} AS {_typed(name)} FROM (VALUES {rows}) "
                "AS x(v)) AS t)",
            )
        )
    if tests:
        holds = con.execute(f"SELECT {', '.join(sql for _, sql in tests)}").fetchone()
        proven.update(rule for (rule, _), kept in zip(tests, holds, strict=True) if kept)
    return proven


def _run_scan(con: duckdb.DuckDBPyConnection, scan: _TableScan) -> None:
    """Count every rule of the table in one pass; a second pass, only when some rule broke,
    collects a few example ids of each broken rule (the smallest ids, a stable choice)."""
    with reading(scan.path):
        result = list(con.execute(scan.sql).fetchone())
        for i, sql in scan.reference_sql.items():
            result[1 + i] = con.execute(sql).fetchone()[0]
    scan.rows = int(result[0])
    counts = {rule: int(n) for rule, n in zip(scan.rules, result[1:], strict=False) if n}
    at = 1 + len(scan.rules)
    for column in scan.stamp_sql:
        scan.stamps[column] = (int(result[at]), int(result[at + 1]))
        at += 2
    if not counts:
        return
    index = {rule: i for i, rule in enumerate(scan.rules)}
    examples = [
        f"min(DISTINCT _id, {MAX_EXAMPLES}) FILTER (WHERE NOT _f{index[r]})" for r in counts
    ]
    with reading(scan.path):
        found = con.execute(f"SELECT {', '.join(examples)} FROM ({scan.rows_sql})").fetchone()
    for (rule, n), ids in zip(counts.items(), found, strict=True):
        scan.broken[rule] = (n, [str(i) for i in ids or []])


def _references(con: duckdb.DuckDBPyConnection, dataset_dir: Path) -> dict[str, str]:
    """SQL listing the distinct values of every referenced column, as `k`, when usable."""
    out: dict[str, str] = {}
    wanted = {c.references for t in CONTRACT.values() for c in t.columns if c.references}
    for reference in sorted(wanted):
        table, column = reference.split(".")
        path = table_path(dataset_dir, table)
        if path is None:
            continue
        types = describe_raw(path, con)
        if column not in types:
            log.warning("%s has no %s column: 'present in %s' is not checked", table, column, table)
            continue
        kind = CONTRACT[table].column(column).kind
        read = read_column(quote_identifier(column), column_family(types[column]), kind)
        if read.fallible:
            log.warning(
                "%s.%s has type %s: 'present in %s' is not checked",
                table,
                column,
                types[column],
                table,
            )
            continue
        out[reference] = (
            f"SELECT DISTINCT {read.typed} AS k FROM {raw_scan_sql(path)} "
            f"WHERE {quote_identifier(column)} IS NOT NULL"
        )
    return out


# ---------------------------------------------------------------------------------------------
# GX context and Data Docs


def _context(data_docs_sites: dict | None = None):
    """An ephemeral GX context: in-memory stores, no progress bars, no analytics.

    Built from an explicit config because the default ephemeral one carries a `local_site`
    Data Docs site in a temp folder; ours are only the `data_docs_sites` given.
    """
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        data_docs_sites=data_docs_sites or {},
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def _write_docs(
    docs_dir: Path,
    name: str,
    runs: list[tuple[gx.ExpectationSuite, ExpectationSuiteValidationResult]],
    failures: list[RuleFailure],
    rows: dict[str, int],
) -> Path:
    """Write the validation record under `docs_dir`: `summary.html`, our own page of the
    verdicts (every value from the data HTML-escaped, no scripts, opens offline);
    `results/<table>.json`, the verdicts as GX validation results; and `rules/`, GX's Data Docs
    of the contract's expectation suites, built through GX's public API.

    GX's Data Docs show the suites only: its validation-result pages print failing values
    unescaped (a value such as `<img src=x onerror=...>` ran as script), so the verdicts go on
    the summary page instead.
    """
    docs_dir = Path(docs_dir).resolve()
    results_dir = docs_dir / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    links: dict[str, str] = {}
    for suite, result in runs:
        table = suite.name.removeprefix("contract.")
        text = json.dumps(result.to_json_dict(), indent=1, sort_keys=True, default=str)
        write_atomic(results_dir / f"{table}.json", lambda tmp, t=text: tmp.write_text(t))
        links[table] = f"results/{table}.json"
    rules_index = _write_rules_docs(docs_dir / "rules", [suite for suite, _ in runs])
    _write_summary(docs_dir, name, runs, failures, rows, links, rules_index)
    return docs_dir / "summary.html"


def _write_rules_docs(site_dir: Path, suites: list[gx.ExpectationSuite]) -> str | None:
    """GX Data Docs of the suites (the contract's rules), relative link to its index."""
    if not suites:
        return None
    context = _context()
    for suite in suites:
        context.suites.add(suite)
    context.add_data_docs_site(
        site_name=DOCS_SITE_NAME,
        site_config={
            "class_name": "SiteBuilder",
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(site_dir),
            },
        },
    )
    context.build_data_docs(site_names=[DOCS_SITE_NAME])
    return "rules/index.html"


def _write_summary(
    docs_dir: Path,
    name: str,
    runs: list[tuple[gx.ExpectationSuite, ExpectationSuiteValidationResult]],
    failures: list[RuleFailure],
    rows: dict[str, int],
    links: dict[str, str],
    rules_index: str | None = None,
) -> None:
    esc = html.escape
    verdict = f"breaks {len(failures)} contract rules" if failures else "meets the data contract"
    lines = []
    for suite, result in runs:
        table = suite.name.removeprefix("contract.")
        link = f'<a href="{esc(links[table])}">GX results (JSON)</a>' if table in links else ""
        stats = result.statistics
        lines.append(
            f"<tr><td>{esc(table)}</td><td>{rows.get(table, 0):,}</td>"
            f"<td>{stats.get('evaluated_expectations', 0)}</td>"
            f"<td>{stats.get('unsuccessful_expectations', 0)}</td><td>{link}</td></tr>"
        )
    broken = "".join(
        f"<tr><td>{esc(f.table)}</td><td>{esc(f.column)}</td><td>{esc(f.rule)}</td>"
        f"<td>{f.n_rows:,}</td><td>{esc(', '.join(f.example_ids[:MAX_EXAMPLES]))}</td></tr>"
        for f in failures
    )
    messages = "".join(f"<li>{esc(f.message())}</li>" for f in failures)
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        # No script may run on this page, whatever the data holds.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'\">"
        f"<title>Data contract check: {esc(name)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:.3em .8em;text-align:left}</style></head><body>"
        f"<h1>Data contract check: {esc(name)}</h1>"
        f"<p>The dataset {verdict}.</p>"
        + (
            f'<p>The rules: <a href="{esc(rules_index)}">the contract\'s expectation suites</a> '
            "(Great Expectations Data Docs).</p>"
            if rules_index
            else ""
        )
        + "<table><tr><th>table</th><th>rows checked</th><th>expectations</th><th>broken</th>"
        f"<th>details</th></tr>{''.join(lines)}</table>"
        + (
            "<h2>Broken rules</h2><table><tr><th>table</th><th>column</th><th>rule</th>"
            f"<th>rows</th><th>example ids</th></tr>{broken}</table><ul>{messages}</ul>"
            if failures
            else ""
        )
        + "</body></html>"
    )
    write_atomic(docs_dir / "summary.html", lambda tmp: tmp.write_text(page, encoding="utf-8"))


# ---------------------------------------------------------------------------------------------
# Public entry points


def _resolve_as_of(dataset_dir: Path, as_of: pd.Timestamp | None) -> pd.Timestamp | None:
    """The as_of to check events against; None when it is the latest event time (then no event
    can lie after it)."""
    if as_of is None:
        as_of = manifest_as_of(dataset_dir)
        if as_of is None:
            log.info(
                "no as_of in manifest.json: as_of is the latest event time, nothing can be after it"
            )
            return None
    as_of = pd.Timestamp(as_of)
    if as_of.tzinfo is not None:
        as_of = as_of.tz_convert("UTC").tz_localize(None)
    return as_of


def time_model_failures(
    stamps: list[tuple[str, str, tuple[int, int]]],
    examples: Callable[[str, str, bool], list[str]],
) -> list[RuleFailure]:
    """One time model per dataset: naive stamps and stamps with offsets must not mix. The
    minority kind is reported, column by column. `stamps` are (table, column, (naive count,
    offset count)); `examples(table, column, offset)` gives the smallest `MAX_EXAMPLES` ids of
    the rows holding the minority kind. The one rule for both validators (DuckDB, Spark)."""
    naive = sum(n[0] for _, _, n in stamps)
    offset = sum(n[1] for _, _, n in stamps)
    if not naive or not offset:
        return []
    minority_offset = offset <= naive
    kind = "with a UTC offset" if minority_offset else "naive"
    failures = []
    for table, column, (n_naive, n_offset) in stamps:
        n = n_offset if minority_offset else n_naive
        if not n:
            continue
        rule = f"{RULE_TIME_MODEL} ({n} {kind} among {naive + offset} stamps)"
        ids = examples(table, column, minority_offset)
        failures.append(RuleFailure(table, column, rule, n, ids))
    return failures


def _time_model_failures(
    con: duckdb.DuckDBPyConnection, scans: list[_TableScan]
) -> list[RuleFailure]:
    """`time_model_failures` over the DuckDB scans' stamp counts."""
    by_table = {s.table: s for s in scans}

    def examples(table: str, column: str, offset: bool) -> list[str]:
        scan = by_table[table]
        naive_sql, offset_sql = scan.stamp_sql[column]
        id_column = CONTRACT[table].id_column
        if id_column not in scan.present:
            return []
        ident = f"CAST(t.{quote_identifier(id_column)} AS VARCHAR)"
        with reading(scan.path):
            rows = con.execute(
                f"SELECT DISTINCT {ident} FROM {raw_scan_sql(scan.path)} AS t"
                f" WHERE {offset_sql if offset else naive_sql} AND {ident} IS NOT NULL"
                f" ORDER BY 1 LIMIT {MAX_EXAMPLES}"
            ).fetchall()
        return [str(row[0]) for row in rows]

    stamps = [(s.table, c, n) for s in scans for c, n in s.stamps.items()]
    return time_model_failures(stamps, examples)


# ---------------------------------------------------------------------------------------------
# Incremental validation: a table file unchanged since it last passed is not scanned again

CACHE_VERSION = 1


def _file_key(path: Path) -> dict:
    """What identifies a table file's content cheaply: path, size, modification time and, for
    Parquet, the footer (row groups, column statistics)."""
    stat = path.stat()
    key = {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    if path.suffix == ".parquet":
        metadata = pq.ParquetFile(path).metadata
        digest = hashlib.sha256()
        for index in range(metadata.num_row_groups):
            digest.update(str(metadata.row_group(index).to_dict()).encode())
        key["parquet"] = digest.hexdigest()
    return key


def _scan_key(scan: _TableScan, as_of: pd.Timestamp | None, referenced: dict[str, dict]) -> str:
    """The verdict's key: the file, the rules judged (with their settings), as_of and the
    files the table's values must be present in."""
    parts = {
        "version": CACHE_VERSION,
        "file": _file_key(scan.path),
        "rules": [f"{r.column}: {r.rule}" for r in scan.rules + scan.missing + scan.proven],
        "as_of": None if as_of is None else as_of.isoformat(),
        "references": {
            r.params[0]: referenced[r.params[0]]
            for r in scan.rules
            if r.rule.startswith("present in ")
        },
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


class _VerdictCache:
    """Passing verdicts per table file, one small JSON file per key under `folder`."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder

    def get(self, key: str) -> dict | None:
        if self.folder is None:
            return None
        path = self.folder / f"{key}.json"
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    def put(self, key: str, verdict: dict) -> None:
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        text = json.dumps(verdict)
        write_atomic(self.folder / f"{key}.json", lambda tmp: tmp.write_text(text))


def _gx_result(
    suite: gx.ExpectationSuite, scan: _TableScan, failures: list[RuleFailure]
) -> ExpectationSuiteValidationResult:
    """The scan's verdicts as GX validation results, one per expectation of the suite."""
    from great_expectations.core.expectation_validation_result import (
        ExpectationSuiteValidationResult,
        ExpectationValidationResult,
    )

    broken = {(f.column, f.rule): f for f in failures}
    results = []
    for expectation in suite.expectations:
        config = expectation.configuration
        meta = config.meta or {}
        failure = broken.get((meta["contract_column"], meta["contract_rule"]))
        n = failure.n_rows if failure else 0
        result = {
            "element_count": scan.rows,
            "unexpected_count": n,
            "unexpected_percent": 100.0 * n / scan.rows if scan.rows else 0.0,
            "partial_unexpected_list": list(failure.example_ids) if failure else [],
        }
        results.append(ExpectationValidationResult(failure is None, config, result))
    n_ok = sum(r.success for r in results)
    return ExpectationSuiteValidationResult(
        success=n_ok == len(results),
        results=results,
        suite_name=suite.name,
        statistics={
            "evaluated_expectations": len(results),
            "successful_expectations": n_ok,
            "unsuccessful_expectations": len(results) - n_ok,
            "success_percent": 100.0 * n_ok / len(results) if results else 100.0,
        },
        meta={"rows": scan.rows, "file": str(scan.path)},
    )


def validate_dataset(
    dataset_dir: Path,
    *,
    docs_dir: Path | None = None,
    as_of: pd.Timestamp | None = None,
    tables: Collection[str] | None = None,
    limits: Limits | None = None,
    cache_dir: Path | None = None,
) -> ValidationReport:
    """Check every table of a raw dataset folder against the data contract.

    Each table is read once: one DuckDB query counts every rule of the table, with a few
    example ids per broken rule; rules across tables are joins in that query. With `docs_dir`,
    the summary page (summary.html) and the GX results (results/*.json) are written there.
    `tables` limits the check to some tables (default: all); `as_of` overrides the manifest's;
    `limits` gives the plausible ranges (settings `validation.max_*`). With `cache_dir`, a table
    file that passed with the same rules, as_of and referenced files is not scanned again.
    A file that cannot be read to the end raises DatasetError naming it.
    """
    dataset_dir = Path(dataset_dir)
    started = time.perf_counter()
    failures: list[RuleFailure] = []
    wanted = set(TABLES if tables is None else tables)
    if wanted - set(TABLES):
        raise ValueError(f"not contract tables: {sorted(wanted - set(TABLES))}")
    rows: dict[str, int] = {}
    runs: list[tuple[gx.ExpectationSuite, ExpectationSuiteValidationResult]] = []
    customers_path = table_path(dataset_dir, "customers") if dataset_dir.is_dir() else None
    if customers_path is None:
        what = "folder does not exist" if not dataset_dir.is_dir() else "no customers table"
        log.error("%s: %s", dataset_dir, what)
        failures.append(RuleFailure("customers", "*", RULE_TABLE, 0, []))
        return ValidationReport(False, failures, rows, None)

    as_of = _resolve_as_of(dataset_dir, as_of)
    cache = _VerdictCache(cache_dir)
    present = [t for t in TABLES if t in wanted and table_path(dataset_dir, t) is not None]
    for table in sorted(wanted - set(present)):
        log.info("%s: no %s table (optional), skipped", dataset_dir.name, table)
    scans: list[_TableScan] = []
    passed: dict[str, dict] = {}  # cache key -> verdict of a table that passed
    with connect() as con, Progress("validating", total=len(present), unit="tables") as bar:
        references = _references(con, dataset_dir)
        referenced = {
            ref: _file_key(table_path(dataset_dir, ref.split(".")[0])) for ref in references
        }
        for table in present:
            path = table_path(dataset_dir, table)
            scan = _plan_scan(con, table, path, as_of=as_of, references=references, limits=limits)
            key = _scan_key(scan, as_of, referenced)
            kept = cache.get(key)
            t0 = time.perf_counter()
            if kept is not None:
                scan.rows = int(kept["rows"])
                scan.stamps = {c: tuple(n) for c, n in kept["stamps"].items()}
                log.info(
                    "%s: unchanged since it passed on %s (%s rows): not scanned again "
                    "(validation.cache=false checks it anyway)",
                    table,
                    kept["checked_at"],
                    f"{scan.rows:,}",
                )
            else:
                _run_scan(con, scan)
            scans.append(scan)
            rows[table] = scan.rows
            table_failures = [
                RuleFailure(table, r.column, r.rule, scan.rows, []) for r in scan.missing
            ]
            if table == "customers" and scan.rows == 0:
                table_failures.append(RuleFailure(table, "*", RULE_ROWS, 0, []))
            table_failures += [
                RuleFailure(table, r.column, r.rule, n, examples)
                for r, (n, examples) in scan.broken.items()
            ]
            failures.extend(table_failures)
            if kept is None:
                log.info(
                    "%s: %s rows, %d rules (%d proven by the Parquet footer), %d broken (%.1f s)",
                    table,
                    f"{scan.rows:,}",
                    len(scan.rules) + len(scan.missing) + len(scan.proven),
                    len(scan.proven),
                    len(table_failures),
                    time.perf_counter() - t0,
                )
                if not table_failures:
                    passed[key] = {
                        "table": table,
                        "rows": scan.rows,
                        "stamps": scan.stamps,
                        "checked_at": pd.Timestamp.now(tz="UTC").isoformat(),
                    }
            if docs_dir is not None:
                suite = _suite(table, scan.missing + scan.proven + scan.rules, _fallible(scan))
                runs.append((suite, _gx_result(suite, scan, table_failures)))
            bar.update(1)
        failures.extend(_time_model_failures(con, scans))
    # Verdicts are kept only when the whole dataset passes: bad input writes nothing.
    if not failures:
        for key, verdict in passed.items():
            cache.put(key, verdict)
    docs_path = None
    if docs_dir is not None:
        docs_path = _write_docs(docs_dir, dataset_dir.name, runs, failures, rows)
    report = ValidationReport(not failures, failures, rows, docs_path)
    log.info("validation of %s took %.1f s", dataset_dir, time.perf_counter() - started)
    return report


def _fallible(scan: _TableScan) -> list[str]:
    types = scan.types
    spec = CONTRACT[scan.table]
    return [
        c
        for c in scan.present
        if read_column(quote_identifier(c), column_family(types[c]), spec.column(c).kind).fallible
    ]


def check_dataset(dataset_dir: Path, **kwargs) -> ValidationReport:
    """Validate a dataset and raise ContractViolation (after logging each failure) when it breaks
    the contract; keyword arguments go to `validate_dataset`."""
    report = validate_dataset(dataset_dir, **kwargs)
    if not report.success:
        for failure in report.failures:
            log.error("data contract: %s", failure.message())
        raise ContractViolation(report)
    log.info(report.summary())
    return report


def validate_snapshot(
    df: pd.DataFrame,
    id_column: str,
    label_column: str,
    positive_label,
    *,
    docs_dir: Path | None = None,
) -> ValidationReport:
    """Check a snapshot dataset (one row per customer): id present and unique, label present
    and never null, and both label classes (positive and anything else) present."""
    table = "snapshot"
    rules = [
        ContractRule(table, id_column, RULE_PRESENT, "exists"),
        ContractRule(table, id_column, RULE_NOT_NULL, "not_null", (id_column,)),
        ContractRule(table, id_column, RULE_UNIQUE, "unique", (id_column,)),
        ContractRule(table, label_column, RULE_PRESENT, "exists"),
        ContractRule(table, label_column, RULE_NOT_NULL, "not_null", (label_column,)),
        ContractRule(table, label_column, RULE_CLASSES, "classes", (label_column,)),
    ]
    present = [c for c in dict.fromkeys((id_column, label_column)) if c in df.columns]
    rules = [r for r in rules if set(r.needs) <= set(present)]
    frame = df[present].copy()  # never touch the caller's frame
    if label_column in present:
        label = frame[label_column]
        frame[_LABEL_CLASS] = (label == positive_label).astype(object).where(label.notna(), None)
    context = _context()
    context.data_sources.add_pandas("churnml")
    runner = _SuiteRunner(context, table, rules, (), id_column if id_column in present else None)
    runner.run(frame)
    failures = runner.failures()
    rows = {table: len(df)}
    docs_path = None
    if docs_dir is not None:
        runs = [(runner.suite, runner.merged_result())]
        docs_path = _write_docs(docs_dir, table, runs, failures, rows)
    log.info("snapshot: %s rows, %d rules, %d broken", f"{len(df):,}", len(rules), len(failures))
    return ValidationReport(not failures, failures, rows, docs_path)


class ScoresInvalid(RuntimeError):
    """Batch scoring produced output that breaks the scores contract: nothing is published."""

    def __init__(self, report: ValidationReport) -> None:
        self.report = report
        lines = [f"scores break {len(report.failures)} rules of the scores contract:"]
        lines += [f.message() for f in report.failures]
        super().__init__("\n".join(lines))


SCORES_REQUIRED = tuple(c for c in contract.SCORE_COLUMNS if c not in contract.SCORE_NULLABLE)
RULE_ELIGIBLE = "one row per eligible customer"
RULE_FINITE_SCORE = "finite (no inf)"


def _optional_score_checks(present: set[str]) -> list[tuple[str, str, str]]:
    """Rules of the optional v2 scores columns that are present: horizon probabilities in [0, 1]
    and nondecreasing in the horizon, lifetime value and remaining months >= 0, uplift in
    [-1, 1], value segments named."""
    checks = []
    horizons = [c for c in contract.SCORE_HORIZON_COLUMNS if c in present]
    for c in horizons:
        q = f"s.{quote_identifier(c)}"
        checks.append((c, rule_between(0, 1), f"{q} IS NULL OR isnan({q}) OR {q} BETWEEN 0 AND 1"))
    for shorter, longer in itertools.pairwise(horizons):
        q_short, q_long = quote_identifier(shorter), quote_identifier(longer)
        checks.append((shorter, f"<= {longer}", f"s.{q_short} <= s.{q_long}"))
    for c in ("expected_remaining_months", "lifetime_value"):
        if c in present:
            q = f"s.{quote_identifier(c)}"
            rule = _range_rule(0, None, False)
            checks.append((c, rule, f"{q} IS NULL OR isnan({q}) OR {q} >= 0"))
    if "uplift" in present:
        checks.append(
            ("uplift", rule_between(-1, 1), "s.uplift IS NULL OR s.uplift BETWEEN -1 AND 1")
        )
    if "value_segment" in present:
        names = ", ".join(sql_string(v) for v in contract.VALUE_SEGMENTS)
        rule = rule_one_of(contract.VALUE_SEGMENTS)
        checks.append(("value_segment", rule, f"s.value_segment IN ({names})"))
    return checks


def check_scores(scores: pd.DataFrame, expected_ids: pd.Series) -> ValidationReport:
    """Check batch-scoring output before it is published, in one DuckDB pass over the frame.

    Required columns present and non-null, probabilities in [0, 1], value tiers A-D, revenue at
    risk >= 0, no infinite number in any column, customer ids unique, and exactly one row per
    eligible customer. Raises ScoresInvalid when a rule breaks.
    """
    table = "scores"
    failures = [
        RuleFailure(table, c, RULE_PRESENT, len(scores), [])
        for c in SCORES_REQUIRED
        if c not in scores.columns
    ]
    present = set(scores.columns)
    checks: list[tuple[str, str, str]] = []  # (column, rule, SQL true when a row keeps it)
    for c in SCORES_REQUIRED:
        if c in present:
            checks.append((c, RULE_NOT_NULL, f"s.{quote_identifier(c)} IS NOT NULL"))
    if "customer_id" in present:
        checks.append(("customer_id", RULE_UNIQUE, "_dup.k IS NULL"))
        checks.append(("customer_id", RULE_ELIGIBLE, "_expected.k IS NOT NULL"))
    ranges = [
        ("churn_probability", rule_between(0, 1), "BETWEEN 0 AND 1"),
        ("revenue_at_risk", _range_rule(0, None, False), ">= 0"),
    ]
    for c, rule, test in ranges:
        if c in present:
            q = f"s.{quote_identifier(c)}"
            checks.append((c, rule, f"{q} IS NULL OR isnan({q}) OR {q} {test}"))
    if "value_tier" in present:
        tiers = ", ".join(sql_string(t) for t in contract.VALUE_TIERS)
        checks.append(
            ("value_tier", rule_one_of(contract.VALUE_TIERS), f"s.value_tier IN ({tiers})")
        )
    checks += _optional_score_checks(present)
    for c in scores.columns:
        if pd.api.types.is_float_dtype(scores[c]):
            # NaN is a missing value (the not-null rules judge it); inf is never a number to
            # publish: it tops every ranking by revenue at risk.
            q = f"s.{quote_identifier(c)}"
            checks.append((c, RULE_FINITE_SCORE, f"{q} IS NULL OR NOT isinf({q})"))
    expected = pd.DataFrame({"k": expected_ids.astype(str).to_numpy(object)})
    ids = "CAST(s.customer_id AS VARCHAR)" if "customer_id" in present else "NULL"
    flags = ", ".join(f"coalesce(({sql}), TRUE) AS _f{i}" for i, (_, _, sql) in enumerate(checks))
    rows_sql = f"SELECT {ids} AS _id, {flags} FROM _scores AS s"
    if "customer_id" in present:
        rows_sql += (
            f" LEFT JOIN (SELECT {ids} AS k FROM _scores AS s GROUP BY 1 HAVING count(*) > 1)"
            f" AS _dup ON {ids} = _dup.k"
            f" LEFT JOIN (SELECT DISTINCT k FROM _expected) AS _expected ON {ids} = _expected.k"
        )
    with connect() as con:
        con.register("_scores", scores)
        con.register("_expected", expected)
        if checks:
            aggregates = [
                f"count(*) FILTER (WHERE NOT _f{i}), "
                f"min(DISTINCT _id, {MAX_EXAMPLES}) FILTER (WHERE NOT _f{i})"
                for i in range(len(checks))
            ]
            result = con.execute(f"SELECT {', '.join(aggregates)} FROM ({rows_sql})").fetchone()
            for i, (column, rule, _) in enumerate(checks):
                n, examples = result[2 * i], result[2 * i + 1]
                if n:
                    failures.append(RuleFailure(table, column, rule, int(n), list(examples or [])))
        if "customer_id" in present:
            n, examples = con.execute(
                f"SELECT count(*), min(k, {MAX_EXAMPLES}) FROM (SELECT DISTINCT k FROM _expected) "
                f"WHERE k NOT IN (SELECT {ids} FROM _scores AS s WHERE s.customer_id IS NOT NULL)"
            ).fetchone()
            if n:
                failures.append(
                    RuleFailure(table, "customer_id", RULE_ELIGIBLE, int(n), list(examples))
                )
    report = ValidationReport(not failures, failures, {table: len(scores)}, None)
    if failures:
        for failure in failures:
            log.error("scores contract: %s", failure.message())
        raise ScoresInvalid(report)
    return report


def validation_limits(settings) -> Limits:
    """The plausible ranges from the `validation` settings (config.ValidationConfig)."""
    return Limits(
        max_amount=float(settings.max_amount),
        max_call_duration_s=int(settings.max_call_duration_s),
        max_volume_mb=float(settings.max_volume_mb),
    )
