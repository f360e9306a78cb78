"""Validating raw datasets against the data contract (`docs/data-contract.md`) with GX.

Each contract table gets a GX ExpectationSuite with one expectation per contract rule; every
expectation carries `meta` naming its (table, column, rule), so a failed expectation maps back to
one line of the contract. Tables are streamed from DuckDB in chunks of `chunk_rows` rows and each
chunk is validated as a pandas batch; results are merged across chunks.

Rules that a chunk cannot judge alone (uniqueness, customer_id present in customers) and rules
that are cheaper in SQL (types, not after `as_of`, conditional nulls) are computed as boolean
helper columns (`_ok__<column>__<rule>`) in the DuckDB query that feeds the chunks; GX then
expects those helper columns to be True. Every rule reports through the same `RuleFailure`.
"""

from __future__ import annotations

import contextlib
import copy
import html
import json
import logging
import re
import threading
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty, Queue

import duckdb
import great_expectations as gx
import numpy as np
import pandas as pd
import pyarrow as pa
from great_expectations.core.expectation_validation_result import (
    ExpectationSuiteValidationResult,
)
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)

from churnml import contract
from churnml.io import (
    EVENT_TIME_COLUMNS,
    OFFSET_PATTERN,
    TABLES,
    ColumnRead,
    column_family,
    connect,
    describe_raw,
    manifest_as_of,
    quote_identifier,
    raw_scan_sql,
    read_column,
    reading,
    scan_sql,
    table_path,
    write_atomic,
)
from churnml.progress import Progress

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
# The contract, transcribed


_Column = contract.ContractColumn
_S, _T, _I, _F, _B = "string", "timestamp", "int", "float", "bool"
CONTRACT = contract.CONTRACT_COLUMNS

# The natural id of a row, used for example ids in messages.
ID_COLUMNS: dict[str, str] = {
    "customers": "customer_id",
    "calls": "customer_id",
    "transfers": "customer_id",
    "complaints": "complaint_id",
    "bills": "bill_id",
    "payments": "payment_id",
}
UNIQUE_COLUMNS: dict[str, str] = {
    "customers": "customer_id",
    "complaints": "complaint_id",
    "bills": "bill_id",
    "payments": "payment_id",
}
ALLOWED_VALUES: dict[tuple[str, str], tuple[str, ...]] = {
    ("customers", "termination_reason"): contract.TERMINATION_REASONS,
    ("customers", "payment_type"): contract.PAYMENT_TYPES,
    ("customers", "gender"): contract.GENDERS,
    ("calls", "direction"): contract.CALL_DIRECTIONS,
    ("calls", "kind"): contract.CALL_KINDS,
    ("calls", "peer_network"): contract.PEER_NETWORKS,
    ("transfers", "kind"): contract.TRANSFER_KINDS,
    ("complaints", "category"): contract.COMPLAINT_CATEGORIES,
    ("complaints", "channel"): contract.COMPLAINT_CHANNELS,
}
# (table, column) -> (min, max, strict_min)
RANGES: dict[tuple[str, str], tuple[float | None, float | None, bool]] = {
    ("customers", "birth_year"): (1900, 2015, False),
    ("calls", "duration_s"): (0, None, False),
    ("calls", "volume_mb"): (0, None, False),
    ("transfers", "monthly_fee"): (0, None, False),
    ("transfers", "amount"): (0, None, False),
    ("complaints", "severity"): (1, 3, False),
    ("complaints", "satisfaction"): (1, 5, False),
    ("bills", "amount_due"): (0, None, False),
    ("payments", "amount"): (0, None, True),
}


@dataclass(frozen=True)
class Limits:
    """Plausible upper bounds of amounts, durations and volumes (settings `validation.max_*`):
    a value above them is a unit or export error, and would dominate revenue at risk."""

    max_amount: float = 1_000_000.0
    max_call_duration_s: int = 86_400
    max_volume_mb: float = 1_000_000.0


# (table, column) -> the Limits field that bounds it from above.
UPPER_BOUNDS: dict[tuple[str, str], str] = {
    ("calls", "duration_s"): "max_call_duration_s",
    ("calls", "volume_mb"): "max_volume_mb",
    ("transfers", "monthly_fee"): "max_amount",
    ("transfers", "amount"): "max_amount",
    ("bills", "amount_due"): "max_amount",
    ("payments", "amount"): "max_amount",
}


def rule_at_most(high: float, setting: str) -> str:
    """Name of a plausible-range rule set by `validation.<setting>`."""
    return f"<= {high:,.15g} (validation.{setting})"


# (table, later column, earlier column): later >= earlier when both are set.
ORDERS: tuple[tuple[str, str, str], ...] = (
    ("customers", "terminated_at", "activated_at"),
    ("complaints", "resolved_at", "opened_at"),
    ("bills", "due_at", "issued_at"),
)


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


def _conditional_rules(table: str) -> list[ContractRule]:
    rules: list[ContractRule] = []
    if table == "customers":
        rules.append(
            ContractRule(
                table,
                "termination_reason",
                "null iff terminated_at is null",
                "flag",
                needs=("termination_reason",),
            )
        )
    if table == "calls":
        rules.append(
            ContractRule(table, "duration_s", "0 for sms and data", "flag", ("duration_s", "kind"))
        )
        rules.append(
            ContractRule(
                table, "volume_mb", "null unless kind is data", "flag", ("volume_mb", "kind")
            )
        )
        rules.append(
            ContractRule(table, "peer_network", "null for data", "flag", ("peer_network", "kind"))
        )
    if table == "bills":
        rules.append(
            ContractRule(table, "period_start", "first day of a month", "flag", ("period_start",))
        )
    return rules


def contract_rules(table: str, limits: Limits | None = None) -> list[ContractRule]:
    """Every contract rule of a table, in contract order (column by column)."""
    limits = limits or Limits()
    rules: list[ContractRule] = []
    conditional = _conditional_rules(table)
    for col in CONTRACT[table]:
        name = col.name
        if col.required:
            rules.append(ContractRule(table, name, RULE_PRESENT, "exists"))
        rules.append(ContractRule(table, name, rule_type(col.kind), "flag", (name,)))
        if col.required:
            rules.append(ContractRule(table, name, RULE_NOT_NULL, "not_null", (name,)))
        if UNIQUE_COLUMNS.get(table) == name:
            rules.append(ContractRule(table, name, RULE_UNIQUE, "flag", (name,)))
        if name == "customer_id" and table != "customers":
            rules.append(ContractRule(table, name, RULE_KNOWN, "flag", (name,)))
        if (table, name) in ALLOWED_VALUES:
            values = ALLOWED_VALUES[(table, name)]
            rules.append(ContractRule(table, name, rule_one_of(values), "in_set", (name,), values))
        if (table, name) in RANGES:
            low, high, strict = RANGES[(table, name)]
            rule = _range_rule(low, high, strict)
            rules.append(ContractRule(table, name, rule, "between", (name,), (low, high, strict)))
        if col.kind == _F:
            rules.append(ContractRule(table, name, RULE_FINITE, "flag", (name,)))
        if (table, name) in UPPER_BOUNDS:
            setting = UPPER_BOUNDS[(table, name)]
            high = getattr(limits, setting)
            rule = rule_at_most(high, setting)
            rules.append(ContractRule(table, name, rule, "flag", (name,), (high,)))
        for t, later, earlier in ORDERS:
            if t == table and later == name:
                rule = f">= {earlier}"
                rules.append(ContractRule(table, name, rule, "order", (later, earlier), (earlier,)))
        if name in EVENT_TIME_COLUMNS.get(table, ()):
            rules.append(ContractRule(table, name, RULE_AS_OF, "flag", (name,)))
        rules.extend(r for r in conditional if r.column == name)
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
        suite = self.context.suites.add(suite)
        return self.context.validation_definitions.add(
            gx.ValidationDefinition(name=name, data=self.batch, suite=suite)
        )

    def _detail_definition(self, keys: frozenset) -> gx.ValidationDefinition:
        """A validation of only the expectations in `keys` (a sub-suite, made once per set)."""
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
# Reading tables in chunks


@dataclass
class _TablePlan:
    table: str
    path: Path
    present: list[str]  # contract columns present in the file
    reads: dict[str, ColumnRead]
    rules: list[ContractRule]
    id_column: str | None
    sql: str

    @property
    def cast_columns(self) -> list[str]:
        return [c for c, r in self.reads.items() if r.fallible]


def _describe(con: duckdb.DuckDBPyConnection, path: Path) -> dict[str, str]:
    """The stored types (the validator judges raw values; `scan_sql` reads the typed ones)."""
    return describe_raw(path)


def _flag_sql(
    rule: ContractRule, plan_reads: dict[str, ColumnRead], as_of: pd.Timestamp | None
) -> str:
    """Boolean SQL, TRUE when a row keeps `rule` (over the typed subquery `t`)."""
    col = f"t.{quote_identifier(rule.column)}"

    def is_null(name: str) -> str:
        if name not in plan_reads:
            return "TRUE"
        if plan_reads[name].fallible:
            return f"t.{quote_identifier(_raw_null_column(name))} IS NULL"
        return f"t.{quote_identifier(name)} IS NULL"

    if rule.rule.startswith("type "):
        return f"t.{quote_identifier(rule.flag)}"
    if rule.rule == RULE_UNIQUE:
        return "_dup.k IS NULL"
    if rule.rule == RULE_FINITE:
        return f"({col} IS NULL OR isfinite({col}))"
    if rule.rule.startswith("<= ") and rule.params:
        # Non-finite values break the finite rule alone.
        return f"({col} IS NULL OR NOT isfinite({col}) OR {col} <= {float(rule.params[0])!r})"
    if rule.rule == RULE_KNOWN:
        return f"({col} IS NULL OR _known.k IS NOT NULL)"
    if rule.rule == RULE_AS_OF:
        stamp = as_of.strftime("%Y-%m-%d %H:%M:%S.%f")
        return f"({col} IS NULL OR {col} <= TIMESTAMP '{stamp}')"
    if rule.rule == "null iff terminated_at is null":
        return f"(({is_null('termination_reason')}) = ({is_null('terminated_at')}))"
    if rule.rule == "0 for sms and data":
        return f"coalesce(NOT (t.kind IN ('sms', 'data') AND {col} <> 0), TRUE)"
    if rule.rule == "null unless kind is data":
        return f"coalesce(t.kind = 'data' OR {is_null('volume_mb')}, TRUE)"
    if rule.rule == "null for data":
        return f"coalesce(t.kind <> 'data' OR {is_null('peer_network')}, TRUE)"
    if rule.rule == "first day of a month":
        return f"({col} IS NULL OR day({col}) = 1)"
    raise ValueError(f"no SQL for rule {rule.table}.{rule.column}: {rule.rule}")


def _plan_table(
    con: duckdb.DuckDBPyConnection,
    table: str,
    path: Path,
    *,
    as_of: pd.Timestamp | None,
    known_sql: str | None,
    limits: Limits | None = None,
) -> _TablePlan:
    """Work out which rules apply to a table file and the SQL that feeds its chunks."""
    types = _describe(con, path)
    spec = {c.name: c for c in CONTRACT[table]}
    present = [c for c in spec if c in types]
    reads = {
        c: read_column(quote_identifier(c), column_family(types[c]), spec[c].kind) for c in present
    }
    skip = []
    if as_of is None:
        skip.append(RULE_AS_OF)
    if known_sql is None:
        skip.append(RULE_KNOWN)
    rules = _applicable_rules(table, present, skip, limits)
    id_column = ID_COLUMNS[table] if ID_COLUMNS[table] in present else None

    inner = []
    for c in present:
        inner.append(f"{reads[c].typed} AS {quote_identifier(c)}")
        if reads[c].fallible:
            raw_flag = quote_identifier(_raw_null_column(c))
            inner.append(f"CASE WHEN {quote_identifier(c)} IS NOT NULL THEN TRUE END AS {raw_flag}")
    for r in rules:
        if r.kind == "flag" and r.rule.startswith("type "):
            inner.append(f"{reads[r.column].ok} AS {quote_identifier(r.flag)}")
    scan = raw_scan_sql(path)
    # The chunks carry only what GX reads: values with value-level expectations, the id for
    # examples, and the helper flags. (Hashing and copying unused string columns is not free.)
    keep = {id_column} if id_column else set()
    for r in rules:
        if r.kind in ("in_set", "between", "order", "not_null"):
            keep.update(r.needs)
        if r.kind == "not_null" and reads[r.column].fallible:
            keep.add(_raw_null_column(r.column))
        if r.kind == "flag" and r.rule.startswith("type "):
            keep.add(r.flag)
    names = [*present, *(_raw_null_column(c) for c in present), *(r.flag for r in rules)]
    select = [f"t.{quote_identifier(n)}" for n in dict.fromkeys(names) if n in keep]
    joins = []
    for r in rules:
        if r.kind == "flag" and not r.rule.startswith("type "):
            select.append(f"{_flag_sql(r, reads, as_of)} AS {quote_identifier(r.flag)}")
        if r.rule == RULE_UNIQUE:
            key = reads[r.column].typed
            joins.append(
                f"LEFT JOIN (SELECT {key} AS k FROM {scan} WHERE {key} IS NOT NULL "
                f"GROUP BY 1 HAVING count(*) > 1) AS _dup "
                f"ON t.{quote_identifier(r.column)} = _dup.k"
            )
        if r.rule == RULE_KNOWN:
            joins.append(f"LEFT JOIN ({known_sql}) AS _known ON t.customer_id = _known.k")
    sql = (
        f"SELECT {', '.join(select)} FROM (SELECT {', '.join(inner)} FROM {scan}) AS t "
        + " ".join(joins)
    )
    return _TablePlan(table, path, present, reads, rules, id_column, sql)


def _known_customers_sql(con: duckdb.DuckDBPyConnection, path: Path) -> str | None:
    """SQL listing the distinct customer ids of customers, or None when they are unusable."""
    types = _describe(con, path)
    if "customer_id" not in types:
        log.warning("customers has no customer_id column: 'present in customers' is not checked")
        return None
    read = read_column(quote_identifier("customer_id"), column_family(types["customer_id"]), _S)
    if read.fallible:
        log.warning(
            "customers.customer_id has type %s: 'present in customers' is not checked",
            types["customer_id"],
        )
        return None
    return (
        f"SELECT DISTINCT {read.typed} AS k FROM {raw_scan_sql(path)} WHERE customer_id IS NOT NULL"
    )


def _chunks(con: duckdb.DuckDBPyConnection, sql: str, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The query's rows as pandas frames of at most `chunk_rows` rows (one empty frame at least)."""
    reader = con.sql(sql).to_arrow_reader(chunk_rows)
    empty = True
    for batch in reader:
        if batch.num_rows == 0:
            continue
        empty = False
        yield batch.to_pandas()
    if empty:
        yield pa.Table.from_batches([], schema=reader.schema).to_pandas()


def _prefetched(chunks: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """Yield the chunks while the next one is read in a background thread.

    DuckDB and Arrow release the GIL, so reading chunk n+1 overlaps GX's work on chunk n.
    At most one chunk waits in the queue.
    """
    queue: Queue = Queue(maxsize=1)
    done = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for chunk in chunks:
                if stop.is_set():
                    return
                queue.put(chunk)
            queue.put(done)
        except BaseException as error:  # handed to the consumer, which re-raises it
            queue.put(error)

    thread = threading.Thread(target=produce, name="validation-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = queue.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=0.05)
        while thread.is_alive():  # unblock a producer waiting on a full queue
            with contextlib.suppress(Empty):
                queue.get_nowait()
            thread.join(timeout=0.05)


# ---------------------------------------------------------------------------------------------
# GX context and Data Docs


def _context(data_docs_sites: dict | None = None):
    """An ephemeral GX context: in-memory stores, no progress bars, no analytics.

    Built from an explicit config because the default ephemeral one carries a `local_site`
    Data Docs site in a temp folder; ours are only the `data_docs_sites` given.
    """
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
    """Write the validation record under `docs_dir`: `summary.html`, our own page (every value
    from the data HTML-escaped, no scripts, opens offline), and `results/<table>.json`, GX's
    validation results as data.

    GX's own Data Docs pages are not built: they print failing values unescaped (a value such
    as `<img src=x onerror=...>` ran as script), so this page replaces them.
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
    _write_summary(docs_dir, name, runs, failures, rows, links)
    return docs_dir / "summary.html"


def _write_summary(
    docs_dir: Path,
    name: str,
    runs: list[tuple[gx.ExpectationSuite, ExpectationSuiteValidationResult]],
    failures: list[RuleFailure],
    rows: dict[str, int],
    links: dict[str, str],
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
        "<table><tr><th>table</th><th>rows checked</th><th>expectations</th><th>broken</th>"
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


def _check_readable(con: duckdb.DuckDBPyConnection, path: Path, present: list[str]) -> None:
    """Read every contract column of a file to the end through the one reader (`scan_sql`).

    The GX chunks carry only the columns their rules need, and DuckDB skips the others; a
    corrupt page in a column the features read would otherwise pass validation.
    """
    digests = [f"bit_xor(hash({quote_identifier(c)}))" for c in present] or ["0"]
    with reading(path):
        con.execute(f"SELECT count(*), {', '.join(digests)} FROM {scan_sql(path)}").fetchall()


@dataclass
class _StampKinds:
    """How the stamps of one timestamp column are written: naive, with an offset, or both."""

    table: str
    column: str
    path: Path
    id_column: str | None
    naive: int
    offset: int
    offset_sql: str  # SQL: TRUE for a row whose stamp carries an offset


def _stamp_kinds(
    con: duckdb.DuckDBPyConnection, table: str, path: Path, types: dict[str, str]
) -> list[_StampKinds]:
    """Count naive and offset stamps per timestamp column (dates are neither: no time of day)."""
    out = []
    id_column = ID_COLUMNS[table] if ID_COLUMNS[table] in types else None
    for col in CONTRACT[table]:
        if col.kind != _T or col.name not in types:
            continue
        q = quote_identifier(col.name)
        family = column_family(types[col.name])
        if family == "timestamptz":
            offset_sql, naive_sql = f"{q} IS NOT NULL", "FALSE"
        elif family == "timestamp" and types[col.name].upper() != "DATE":
            offset_sql, naive_sql = "FALSE", f"{q} IS NOT NULL"
        elif family == "string":
            text = f"trim(CAST({q} AS VARCHAR))"
            offset_sql = f"coalesce(regexp_matches({text}, '{OFFSET_PATTERN}'), FALSE)"
            naive_sql = (
                f"coalesce(NOT regexp_matches({text}, '{OFFSET_PATTERN}') "
                f"AND regexp_matches({text}, '[0-9][T ][0-9]'), FALSE)"
            )
        else:
            continue
        with reading(path):
            naive, offset = con.execute(
                f"SELECT count(*) FILTER ({naive_sql}), count(*) FILTER ({offset_sql}) "
                f"FROM {raw_scan_sql(path)}"
            ).fetchall()[0]
        out.append(_StampKinds(table, col.name, path, id_column, naive, offset, offset_sql))
    return out


def _time_model_failures(
    con: duckdb.DuckDBPyConnection, kinds: list[_StampKinds]
) -> list[RuleFailure]:
    """One time model per dataset: naive stamps and stamps with offsets must not mix. The
    minority kind is reported (with example ids), column by column."""
    naive = sum(k.naive for k in kinds)
    offset = sum(k.offset for k in kinds)
    if not naive or not offset:
        return []
    minority_offset = offset <= naive
    failures = []
    for k in kinds:
        n = k.offset if minority_offset else k.naive
        if not n:
            continue
        where = k.offset_sql if minority_offset else f"NOT ({k.offset_sql})"
        where += f" AND {quote_identifier(k.column)} IS NOT NULL"
        examples: list[str] = []
        if k.id_column is not None:
            with reading(k.path):
                examples = [
                    str(row[0])
                    for row in con.execute(
                        f"SELECT {quote_identifier(k.id_column)} FROM {raw_scan_sql(k.path)} "
                        f"WHERE {where} LIMIT {MAX_EXAMPLES}"
                    ).fetchall()
                ]
        kind = "with a UTC offset" if minority_offset else "naive"
        rule = f"{RULE_TIME_MODEL} ({n} {kind} among {naive + offset} stamps)"
        failures.append(RuleFailure(k.table, k.column, rule, n, examples))
    return failures


def validate_dataset(
    dataset_dir: Path,
    *,
    docs_dir: Path | None = None,
    chunk_rows: int = 2_000_000,
    as_of: pd.Timestamp | None = None,
    tables: Collection[str] | None = None,
    limits: Limits | None = None,
) -> ValidationReport:
    """Check every table of a raw dataset folder against the data contract.

    Tables are streamed in chunks of `chunk_rows` rows; cross-row rules are computed by DuckDB.
    With `docs_dir`, the summary page (summary.html) and the GX results (results/*.json) are
    written there. `tables` limits the check to some tables (default: all six); `as_of`
    overrides the manifest's; `limits` gives the plausible ranges (settings `validation.max_*`).
    A file that cannot be read to the end raises DatasetError naming it.
    """
    dataset_dir = Path(dataset_dir)
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be positive")
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
    context = _context()
    context.data_sources.add_pandas("churnml")
    stamp_kinds: list[_StampKinds] = []
    with connect() as con:
        known_sql = _known_customers_sql(con, customers_path)
        for table in (t for t in TABLES if t in wanted):
            path = table_path(dataset_dir, table)
            if path is None:
                log.info("%s: no %s table (optional), skipped", dataset_dir.name, table)
                continue
            plan = _plan_table(con, table, path, as_of=as_of, known_sql=known_sql, limits=limits)
            runner = _SuiteRunner(context, table, plan.rules, plan.cast_columns, plan.id_column)
            t0 = time.perf_counter()
            with reading(path), Progress(f"validating {table}", unit="rows") as bar:
                for chunk in _prefetched(_chunks(con, plan.sql, chunk_rows)):
                    runner.run(chunk)
                    bar.update(len(chunk))
            _check_readable(con, path, plan.present)
            stamp_kinds += _stamp_kinds(con, table, path, _describe(con, path))
            rows[table] = runner.rows
            if table == "customers" and runner.rows == 0:
                failures.append(RuleFailure(table, "*", RULE_ROWS, 0, []))
            table_failures = runner.failures()
            failures.extend(table_failures)
            log.info(
                "%s: %s rows, %d rules, %d broken (%.1f s)",
                table,
                f"{runner.rows:,}",
                len(plan.rules),
                len(table_failures),
                time.perf_counter() - t0,
            )
            merged = runner.merged_result()
            if docs_dir is not None and merged is not None:
                runs.append((runner.suite, merged))
        failures.extend(_time_model_failures(con, stamp_kinds))
    docs_path = None
    if docs_dir is not None:
        docs_path = _write_docs(docs_dir, dataset_dir.name, runs, failures, rows)
    report = ValidationReport(not failures, failures, rows, docs_path)
    log.info("validation of %s took %.1f s", dataset_dir, time.perf_counter() - started)
    return report


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


def check_scores(scores: pd.DataFrame, expected_ids: pd.Series) -> ValidationReport:
    """Check batch-scoring output before it is published (GX suite on the scores table).

    Required columns present and non-null, probabilities in [0, 1], value tiers A-D, revenue at
    risk >= 0, no infinite number in any column, customer ids unique, and exactly one row per
    eligible customer. Raises
    ScoresInvalid when a rule breaks.
    """
    table = "scores"
    rules = [ContractRule(table, c, RULE_PRESENT, "exists") for c in SCORES_REQUIRED]
    rules += [ContractRule(table, c, RULE_NOT_NULL, "not_null", (c,)) for c in SCORES_REQUIRED]
    rules += [
        ContractRule(table, "customer_id", RULE_UNIQUE, "unique", ("customer_id",)),
        ContractRule(table, "customer_id", RULE_ELIGIBLE, "flag", ("customer_id",)),
        ContractRule(
            table,
            "churn_probability",
            rule_between(0, 1),
            "between",
            ("churn_probability",),
            (0, 1, False),
        ),
        ContractRule(
            table,
            "revenue_at_risk",
            _range_rule(0, None, False),
            "between",
            ("revenue_at_risk",),
            (0, None, False),
        ),
        ContractRule(
            table,
            "value_tier",
            rule_one_of(contract.VALUE_TIERS),
            "in_set",
            ("value_tier",),
            contract.VALUE_TIERS,
        ),
    ]
    numeric = [c for c in scores.columns if pd.api.types.is_float_dtype(scores[c])]
    rules += [ContractRule(table, c, RULE_FINITE_SCORE, "flag", (c,)) for c in numeric]
    rules = [r for r in rules if set(r.needs) <= set(scores.columns)]
    frame = scores.copy()
    for r in rules:
        if r.rule == RULE_FINITE_SCORE:
            # NaN is a missing value (the not-null rules judge it); inf is never a number to
            # publish: it tops every ranking by revenue at risk.
            frame[r.flag] = ~np.isinf(frame[r.column].to_numpy(dtype=float))
    expected = set(expected_ids.astype(str))
    eligible_flag = next(r.flag for r in rules if r.rule == RULE_ELIGIBLE)
    frame[eligible_flag] = frame["customer_id"].astype(str).isin(expected)
    context = _context()
    context.data_sources.add_pandas("churnml")
    runner = _SuiteRunner(context, table, rules, (), "customer_id")
    runner.run(frame)
    failures = runner.failures()
    missing = expected - set(frame["customer_id"].astype(str))
    if missing:
        failures.append(
            RuleFailure(table, "customer_id", RULE_ELIGIBLE, len(missing), sorted(missing)[:5])
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
