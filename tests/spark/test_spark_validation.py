"""The data contract on Spark: the same rules, the same failures, the same messages as the
DuckDB validator, on the tiny dataset with one break of each kind of rule."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from tiny_dataset import BROKEN_RULES, write_tiny_dataset

from churnml.io import manifest_as_of
from churnml.spark.validation import check_dataset_spark, duckdb_to_spark, validate_dataset_spark
from churnml.validation import RULE_TIME_MODEL, ContractViolation, validate_dataset

pytestmark = pytest.mark.slow

# One break per kind of rule, in different tables and columns (BROKEN_RULES' ids).
BREAKS = (
    "complaints.severity.required_column_present",  # a required column missing
    "customers.payment_type.not_null",
    "complaints.channel.one_of_call_center_store_online_regulator",  # set membership
    "customers.birth_year.between_1900_and_2015",  # range
    "calls.customer_id.present_in_customers",  # reference
    "complaints.complaint_id.unique",
    "campaigns.customer_id.unique_within_campaign_id",
    "calls.duration_s.0_for_sms_and_data",  # row rule
    "transfers.amount.finite_(no_inf_or_nan)",
    "bills.amount_due.type_float",  # a value that is not a number
    "bills.due_at.ge_issued_at",  # order of two stamps
    "payments.paid_at.not_after_as_of",
    "customers.previous_customer_id.the_earlier_subscription_ended_by_activated_at",
)


def _failures(report) -> list[tuple]:
    return sorted((f.table, f.column, f.rule, f.n_rows, f.example_ids) for f in report.failures)


def test_valid_tiny_dataset_passes_on_spark(spark, tmp_path: Path) -> None:
    path = write_tiny_dataset(tmp_path / "tiny")
    report = validate_dataset_spark(spark, str(path), as_of=manifest_as_of(path))
    assert report.success, report.summary()
    assert report.tables == validate_dataset(path).tables


def test_spark_reports_the_duckdb_failures(spark, tmp_path: Path) -> None:
    path = write_tiny_dataset(tmp_path / "tiny")
    broken = [next(b for b in BROKEN_RULES if b.id == ident) for ident in BREAKS]
    for rule in broken:
        rule.mutate(path)
    duck = validate_dataset(path)
    found = {(f.table, f.column, f.rule) for f in duck.failures}
    assert {(b.table, b.column, b.rule) for b in broken} <= found  # every break is seen
    with pytest.raises(ContractViolation) as raised:
        check_dataset_spark(spark, str(path), as_of=manifest_as_of(path))
    on_spark = raised.value.report
    assert _failures(on_spark) == _failures(duck)
    assert sorted(str(raised.value).splitlines()[1:]) == sorted(f.message() for f in duck.failures)
    assert on_spark.tables == duck.tables


def _offset_stamps_parquet(path: Path) -> None:
    """calls.started_at as instants (Parquet adjusted to UTC; Spark: TIMESTAMP), every other
    stamp naive (Spark: TIMESTAMP_NTZ): the calls are the minority."""
    calls = pd.read_parquet(path / "calls.parquet")
    calls["started_at"] = calls["started_at"].dt.tz_localize("UTC")
    calls.to_parquet(path / "calls.parquet", index=False)


def _offset_stamps_csv(path: Path) -> None:
    """Two complaint stamps written with an offset among naive CSV text (Spark reads CSV as
    text: the form of the text decides, as for DuckDB)."""
    complaints = pd.read_csv(path / "complaints.csv", dtype=str)
    complaints.loc[0, "opened_at"] = "2024-05-02T09:00:00Z"
    complaints.loc[2, "resolved_at"] = "2024-06-02 10:00:00+02:00"
    complaints.to_csv(path / "complaints.csv", index=False)


@pytest.mark.parametrize(
    "fmt, mix", [("parquet", _offset_stamps_parquet), ("csv", _offset_stamps_csv)]
)
def test_spark_reports_the_duckdb_time_model_failures(spark, tmp_path: Path, fmt, mix) -> None:
    path = write_tiny_dataset(tmp_path / "tiny", fmt)
    mix(path)
    duck = validate_dataset(path)
    assert duck.failures and all(f.rule.startswith(RULE_TIME_MODEL) for f in duck.failures)
    assert all(f.example_ids for f in duck.failures)
    with pytest.raises(ContractViolation) as raised:
        check_dataset_spark(spark, str(path), as_of=manifest_as_of(path))
    assert _failures(raised.value.report) == _failures(duck)
    assert sorted(str(raised.value).splitlines()[1:]) == sorted(f.message() for f in duck.failures)


def test_rule_sql_in_spark_spelling() -> None:
    sql = 't."_v__x" IS NULL OR isfinite(t."_v__x") OR t."a""b" = \'say "hi" 1.5\' OR y > 0.5'
    assert duckdb_to_spark(sql) == (
        "t.`_v__x` IS NULL OR (abs(t.`_v__x`) < CAST('Infinity' AS DOUBLE)) OR "
        't.`a"b` = \'say "hi" 1.5\' OR y > 0.5D'
    )
