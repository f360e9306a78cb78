"""Tests of raw-data validation against the data contract (churnml.validation)."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from tiny_dataset import BROKEN_RULES, TINY_TABLES, BrokenRule, write_tiny_dataset

from churnml.contract import TABLES
from churnml.validation import (
    RULE_TABLE,
    ContractViolation,
    Limits,
    RuleFailure,
    build_suite,
    check_dataset,
    contract_rules,
    validate_dataset,
    validate_snapshot,
)

TINY_ROWS = {table: len(make()) for table, make in TINY_TABLES.items()}


def _key(failure: RuleFailure) -> tuple:
    return (failure.table, failure.column, failure.rule, failure.n_rows)


@pytest.fixture(scope="module")
def tiny_templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny dataset written once per format; each case copies it (copying is milliseconds,
    writing seven tables through pandas is not)."""
    root = tmp_path_factory.mktemp("tiny_templates")
    return {fmt: write_tiny_dataset(root / fmt, fmt) for fmt in ("parquet", "csv")}


def _broken_dataset(
    tmp_path: Path, broken: BrokenRule, fmt: str = "parquet", templates: dict | None = None
) -> Path:
    if templates is None:
        path = write_tiny_dataset(tmp_path / "tiny", fmt)
    else:
        path = Path(shutil.copytree(templates[fmt], tmp_path / "tiny"))
    broken.mutate(path)
    return path


def _tables_to_check(broken: BrokenRule) -> list[str] | None:
    # A damaged customers table could spill into every event table (customer_id present in
    # customers), so it is checked with all tables; other tables affect no table but their own.
    return None if broken.table == "customers" else [broken.table]


def _params(fmt: str) -> list:
    """One case for every contract rule (the sweep takes seconds: no case is marked slow)."""
    return [pytest.param(b, id=f"{fmt}-{b.id}") for b in BROKEN_RULES]


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_tiny_dataset_meets_the_contract(tmp_path: Path, fmt: str) -> None:
    report = check_dataset(write_tiny_dataset(tmp_path / "tiny", fmt))
    assert report.success
    assert report.failures == []
    assert report.tables == TINY_ROWS
    assert report.docs_path is None
    assert "meets the data contract" in report.summary()


def test_broken_rules_have_unique_ids_and_cover_every_rule() -> None:
    assert len({b.id for b in BROKEN_RULES}) == len(BROKEN_RULES)
    broken = {(b.table, b.column, b.rule) for b in BROKEN_RULES}
    rules = {(r.table, r.column, r.rule) for t in TABLES for r in contract_rules(t)}
    assert broken == rules


def test_build_suite_has_one_expectation_per_rule_naming_it() -> None:
    for table in TABLES:
        suite = build_suite(table)
        named = [
            (e.meta["contract_table"], e.meta["contract_column"], e.meta["contract_rule"])
            for e in suite.expectations
        ]
        assert named == [(r.table, r.column, r.rule) for r in contract_rules(table)]
        assert all(e.notes and table in e.notes for e in suite.expectations)


def test_build_suite_leaves_out_rules_of_absent_optional_columns() -> None:
    columns = [c for c in ("customer_id", "activated_at", "initial_plan_id")]
    suite = build_suite("customers", columns)
    covered = {e.meta["contract_column"] for e in suite.expectations}
    assert "birth_year" not in covered  # optional and absent: nothing to check
    # required and absent: still expected to exist
    assert any(
        e.meta["contract_column"] == "payment_type"
        and e.meta["contract_rule"] == "required column present"
        for e in suite.expectations
    )


# One rule of each kind also runs through the training job in
# tests/integration/test_train_end_to_end.py (test_broken_contract_rule_stops_...).
@pytest.mark.parametrize("broken", _params("parquet"))
def test_each_broken_rule_stops_the_run(
    tmp_path: Path, broken: BrokenRule, tiny_templates: dict[str, Path]
) -> None:
    path = _broken_dataset(tmp_path, broken, templates=tiny_templates)
    with pytest.raises(ContractViolation) as caught:
        check_dataset(path, tables=_tables_to_check(broken))
    message = str(caught.value)
    assert f"{broken.table}.{broken.column}" in message
    assert f"{broken.n_rows} rows" in message
    # exactly the one broken rule, with its row count
    failures = [_key(f) for f in caught.value.report.failures]
    assert failures == [(broken.table, broken.column, broken.rule, broken.n_rows)]


def _csv_params() -> list:
    """CSV is text: id columns are read as strings whatever they hold (io.scan_sql), so their
    string-type rule cannot break in CSV. A CSV column whose only value is `inf` is sniffed as
    a date (DuckDB reads it as the infinite date), so it breaks the type rule instead of the
    finite rule (tests/test_hostile_inputs.py checks that)."""
    sniffed_as_date = {"transfers.monthly_fee.finite_(no_inf_or_nan)"}
    return [
        p
        for p in _params("csv")
        if not (p.values[0].column.endswith("_id") and p.values[0].rule == "type string")
        and p.values[0].id not in sniffed_as_date
    ]


@pytest.mark.parametrize("broken", _csv_params())
def test_each_broken_rule_is_found_in_csv(
    tmp_path: Path, broken: BrokenRule, tiny_templates: dict[str, Path]
) -> None:
    path = _broken_dataset(tmp_path, broken, "csv", tiny_templates)
    report = validate_dataset(path, tables=_tables_to_check(broken))
    assert [_key(f) for f in report.failures] == [
        (broken.table, broken.column, broken.rule, broken.n_rows)
    ]


def test_failure_message_names_examples(tmp_path: Path) -> None:
    broken = next(b for b in BROKEN_RULES if b.id == "calls.customer_id.present_in_customers")
    report = validate_dataset(_broken_dataset(tmp_path, broken))
    (failure,) = report.failures
    assert failure.example_ids == ["C99"]
    assert failure.message() == (
        "calls.customer_id: present in customers — 1 rows break it (e.g. C99)"
    )
    assert "calls.customer_id: present in customers" in report.summary()


def _several_broken(tmp_path: Path, fmt: str = "parquet") -> Path:
    path = write_tiny_dataset(tmp_path / "tiny", fmt)
    for ident in (
        "customers.birth_year.between_1900_and_2015",
        "calls.customer_id.present_in_customers",
        "calls.duration_s.0_for_sms_and_data",
        "complaints.complaint_id.unique",
        "bills.due_at.ge_issued_at",
        "payments.paid_at.not_after_as_of",
    ):
        next(b for b in BROKEN_RULES if b.id == ident).mutate(path)
    return path


def test_one_scan_per_table_finds_every_broken_rule(tmp_path: Path) -> None:
    report = validate_dataset(_several_broken(tmp_path))
    assert not report.success
    assert [(f.table, f.column, f.rule) for f in report.failures] == [
        ("customers", "birth_year", "between 1900 and 2015"),
        ("calls", "customer_id", "present in customers"),
        ("calls", "duration_s", "0 for sms and data"),
        ("complaints", "complaint_id", "unique"),
        ("bills", "due_at", ">= issued_at"),
        ("payments", "paid_at", "not after as_of"),
    ]
    assert report.tables == TINY_ROWS
    unique = next(f for f in report.failures if f.rule == "unique")
    assert unique.example_ids == ["K1"]


def test_unchanged_table_that_passed_is_not_scanned_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_tiny_dataset(tmp_path / "tiny")
    cache = tmp_path / "cache"
    first = validate_dataset(path, cache_dir=cache)
    assert first.success and len(list(cache.glob("*.json"))) == len(TABLES)
    caplog.set_level("INFO", logger="churnml.validation")
    again = validate_dataset(path, cache_dir=cache)
    assert again.tables == first.tables
    assert sum("not scanned again" in r.getMessage() for r in caplog.records) == len(TABLES)
    # A changed table is scanned again, and so is every table whose ids must be in it.
    next(b for b in BROKEN_RULES if b.id == "calls.kind.one_of_voice_sms_data").mutate(path)
    caplog.clear()
    kept = sorted(cache.glob("*.json"))
    broken = validate_dataset(path, cache_dir=cache)
    assert [(f.table, f.column) for f in broken.failures] == [("calls", "kind")]
    assert sorted(cache.glob("*.json")) == kept  # bad input writes nothing, not even verdicts
    rescanned = [r.getMessage() for r in caplog.records if " rules (" in r.getMessage()]
    assert [m.split(":")[0] for m in rescanned] == ["calls"]
    TINY_TABLES["calls"]().to_parquet(path / "calls.parquet", index=False)
    assert validate_dataset(path, cache_dir=cache).success
    # customers changed: so did "present in customers" of every table naming a customer
    os.utime(path / "customers.parquet", ns=(1, 1))
    caplog.clear()
    assert validate_dataset(path, cache_dir=cache).success
    rescanned = [
        r.getMessage().split(":")[0] for r in caplog.records if " rules (" in r.getMessage()
    ]
    assert set(rescanned) == set(TABLES)
    # Other settings are other verdicts: a stricter limit is checked, not taken from the cache.
    strict = validate_dataset(path, cache_dir=cache, limits=Limits(max_amount=40.0))
    assert not strict.success


def test_data_docs_are_written_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _several_broken(tmp_path)
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    docs = tmp_path / "docs"
    report = validate_dataset(path, docs_dir=docs)
    assert report.docs_path == docs.resolve() / "summary.html"
    assert report.docs_path.is_file()
    results = {p.stem: p for p in docs.glob("results/*.json")}
    assert set(results) == set(TABLES)
    calls_result = json.loads(results["calls"].read_text())
    broken = [r for r in calls_result["results"] if not r["success"]]
    assert [r["expectation_config"]["meta"]["contract_rule"] for r in broken] == [
        "present in customers",
        "0 for sms and data",
    ]
    assert broken[0]["result"]["partial_unexpected_list"] == ["C99"]  # the failing row's id
    assert broken[0]["result"]["element_count"] == TINY_ROWS["calls"]
    # GX's Data Docs show the rules (the suites), not the failing values.
    assert (docs / "rules" / "index.html").is_file()
    assert (docs / "rules" / "expectations" / "contract" / "calls.html").is_file()
    assert not list((docs / "rules").glob("validations/**/*.html"))
    assert list(workdir.iterdir()) == []  # no gx/ folder or anything else in the cwd
    summary = (docs / "summary.html").read_text()
    assert f"breaks {len(report.failures)} contract rules" in summary
    assert f"<td>calls</td><td>{report.tables['calls']:,}</td>" in summary
    assert all(html.escape(f.message()) in summary for f in report.failures)
    linked = re.findall(r'href="([^"]+)"', summary)
    assert sorted(Path(link).stem for link in linked) == sorted([*TABLES, "index"])
    assert all((docs / link).is_file() for link in linked)
    assert "://" not in summary  # opens offline


def test_missing_optional_tables_are_skipped(tmp_path: Path) -> None:
    path = write_tiny_dataset(tmp_path / "tiny")
    (path / "calls.parquet").unlink()
    (path / "bills.parquet").unlink()
    report = check_dataset(path)
    assert report.success
    assert set(report.tables) == {"customers", "transfers", "complaints", "payments", "campaigns"}


def test_missing_customers_table_fails_clearly(tmp_path: Path) -> None:
    path = write_tiny_dataset(tmp_path / "tiny")
    (path / "customers.parquet").unlink()
    report = validate_dataset(path)
    assert not report.success
    assert [(f.table, f.rule) for f in report.failures] == [("customers", RULE_TABLE)]
    with pytest.raises(ContractViolation, match=r"customers: required table present"):
        check_dataset(path)


def test_missing_dataset_folder_fails(tmp_path: Path) -> None:
    with pytest.raises(ContractViolation, match="customers"):
        check_dataset(tmp_path / "nowhere")


def test_optional_columns_may_be_absent_and_extra_columns_are_allowed(tmp_path: Path) -> None:
    path = write_tiny_dataset(tmp_path / "tiny")
    customers = pd.read_parquet(path / "customers.parquet")
    customers = customers.drop(columns=["region", "birth_year", "terminated_at"])
    customers["loyalty_points"] = range(len(customers))
    customers.to_parquet(path / "customers.parquet", index=False)
    calls = pd.read_parquet(path / "calls.parquet").drop(columns=["volume_mb", "peer_network"])
    calls.to_parquet(path / "calls.parquet", index=False)
    # terminated_at is gone, so the termination reasons of C2 and C4 now break the iff rule
    report = validate_dataset(path)
    assert [(f.table, f.column, f.rule, f.n_rows) for f in report.failures] == [
        ("customers", "termination_reason", "null iff terminated_at is null", 2)
    ]


def test_numeric_looking_ids_in_csv_are_accepted(tmp_path: Path) -> None:
    path = write_tiny_dataset(tmp_path / "tiny", "csv")
    for table in TABLES:
        text = (path / f"{table}.csv").read_text()
        text = text.replace(",C", ",10").replace("\nC", "\n10")  # C1 -> 101
        text = text.replace("K", "20").replace("B", "30").replace("Y", "40")
        (path / f"{table}.csv").write_text(text)
    assert "\n101," in (path / "customers.csv").read_text()
    assert check_dataset(path).success


def test_without_manifest_as_of_is_the_latest_event(tmp_path: Path) -> None:
    broken = next(b for b in BROKEN_RULES if b.id == "calls.started_at.not_after_as_of")
    path = _broken_dataset(tmp_path, broken)
    (path / "manifest.json").unlink()
    assert validate_dataset(path).success
    # an explicit as_of still applies
    report = validate_dataset(path, as_of=pd.Timestamp("2024-06-30"))
    assert [f.column for f in report.failures] == ["started_at"]


def test_manifest_as_of_with_time_zone(tmp_path: Path) -> None:
    path = write_tiny_dataset(tmp_path / "tiny")
    (path / "manifest.json").write_text(json.dumps({"as_of": "2024-06-30T02:00:00+02:00"}))
    assert validate_dataset(path).success


def test_empty_event_table_is_fine(tmp_path: Path) -> None:
    path = write_tiny_dataset(tmp_path / "tiny")
    calls = pd.read_parquet(path / "calls.parquet")
    calls.iloc[:0].to_parquet(path / "calls.parquet", index=False)
    report = check_dataset(path)
    assert report.tables["calls"] == 0


def test_copy_of_valid_dataset_with_docs_in_csv(tmp_path: Path) -> None:
    path = write_tiny_dataset(tmp_path / "tiny", "csv")
    copy = tmp_path / "copy"
    shutil.copytree(path, copy)
    report = check_dataset(copy, docs_dir=tmp_path / "docs")
    assert report.success and report.docs_path is not None and report.docs_path.exists()


# --- snapshot datasets -------------------------------------------------------------------------


def _snapshot() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": ["a", "b", "c", "d"],
            "churn": ["Yes", "No", "No", "Yes"],
            "tenure": [1, 2, 3, 4],
        }
    )


def _snapshot_failures(df: pd.DataFrame) -> list[tuple]:
    report = validate_snapshot(df, "id", "churn", "Yes")
    return [_key(f) for f in report.failures]


def test_valid_snapshot_passes() -> None:
    df = _snapshot()
    before = df.copy()
    report = validate_snapshot(df, "id", "churn", "Yes")
    assert report.success and report.tables == {"snapshot": 4}
    pd.testing.assert_frame_equal(df, before)  # the caller's frame is untouched


def test_snapshot_duplicate_and_null_ids() -> None:
    df = _snapshot()
    df.loc[1, "id"] = "a"
    df.loc[2, "id"] = None
    report = validate_snapshot(df, "id", "churn", "Yes")
    assert [_key(f) for f in report.failures] == [
        ("snapshot", "id", "not null", 1),
        ("snapshot", "id", "unique", 2),
    ]
    assert report.failures[1].example_ids == ["a"]


def test_snapshot_label_rules() -> None:
    df = _snapshot()
    df.loc[0, "churn"] = None
    assert _snapshot_failures(df) == [("snapshot", "churn", "not null", 1)]
    one_class = _snapshot().assign(churn="No")
    assert _snapshot_failures(one_class) == [("snapshot", "churn", "both label classes present", 4)]
    assert _snapshot_failures(_snapshot().drop(columns=["churn"])) == [
        ("snapshot", "churn", "required column present", 4)
    ]


def test_snapshot_with_integer_labels_and_docs(tmp_path: Path) -> None:
    df = _snapshot().assign(churn=[1, 0, 0, 1])
    report = validate_snapshot(df, "id", "churn", 1, docs_dir=tmp_path / "docs")
    assert report.success
    assert report.docs_path is not None and report.docs_path.is_file()


def test_scores_check_names_every_broken_rule() -> None:
    from churnml.contract import SCORE_COLUMNS
    from churnml.validation import ScoresInvalid, check_scores

    good = pd.DataFrame({c: ["x"] * 4 for c in SCORE_COLUMNS})
    good["customer_id"] = ["C1", "C2", "C3", "C4"]
    good["churn_probability"] = [0.1, 0.2, 0.3, 0.4]
    good["revenue_at_risk"] = [1.0, 2.0, 0.0, 3.0]
    good["value_tier"] = ["A", "B", "C", "D"]
    assert check_scores(good, good["customer_id"]).success
    bad = good.copy()
    bad.loc[1, "customer_id"] = "C1"  # C1 twice, C2 missing
    bad.loc[2, "churn_probability"] = 1.5
    bad.loc[3, "value_tier"] = "E"
    bad.loc[0, "action"] = None
    with pytest.raises(ScoresInvalid) as caught:
        check_scores(bad, good["customer_id"])
    assert [_key(f) for f in caught.value.report.failures] == [
        ("scores", "action", "not null", 1),
        ("scores", "customer_id", "unique", 2),
        ("scores", "churn_probability", "between 0 and 1", 1),
        ("scores", "value_tier", "one of A, B, C, D", 1),
        ("scores", "customer_id", "one row per eligible customer", 1),
    ]
    assert caught.value.report.failures[-1].example_ids == ["C2"]


def test_parquet_footer_proves_range_rules_and_a_file_without_statistics_is_scanned(
    tmp_path: Path,
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from churnml.io import connect, table_path
    from churnml.validation import _plan_scan, _resolve_as_of

    def plan(path: Path):
        with connect() as con:
            calls = table_path(path, "calls")
            return _plan_scan(con, "calls", calls, as_of=as_of, references={}, limits=None)

    path = write_tiny_dataset(tmp_path / "tiny")
    as_of = _resolve_as_of(path, None)
    scan = plan(path)
    proven = {r.rule for r in scan.proven if r.column == "started_at"}
    assert proven == {"not null", "not after as_of"}
    # Null counts prove not-null for a column of any type: text and flags too.
    not_null = {r.column for r in scan.proven if r.rule == "not null"}
    assert {"customer_id", "kind", "direction", "dropped"} <= not_null
    assert "not after as_of" not in {r.rule for r in scan.rules if r.column == "started_at"}
    # Without statistics nothing is proven and every rule is scanned, with the same verdict.
    table = pq.read_table(path / "calls.parquet")
    pq.write_table(table, path / "calls.parquet", write_statistics=False)
    scan = plan(path)
    assert scan.proven == []
    assert validate_dataset(path).success
    # A footer that shows a value out of range proves nothing: the scan finds the row.
    broken = next(b for b in BROKEN_RULES if b.id == "calls.started_at.not_after_as_of")
    broken.mutate(write_tiny_dataset(tmp_path / "late"))
    report = validate_dataset(tmp_path / "late", tables=["calls"])
    assert [_key(f) for f in report.failures] == [("calls", "started_at", "not after as_of", 1)]
    # A null in a text column shows in its null count: that rule is scanned and the row found.
    late = tmp_path / "late"
    table = pq.read_table(write_tiny_dataset(late) / "calls.parquet")
    kinds = table.column("kind").to_pylist()
    kinds[3] = None
    table = table.set_column(table.schema.get_field_index("kind"), "kind", pa.array(kinds))
    pq.write_table(table, late / "calls.parquet")
    assert "not null" in {r.rule for r in plan(late).rules if r.column == "kind"}
    report = validate_dataset(late, tables=["calls"])
    assert ("calls", "kind", "not null", 1) in [_key(f) for f in report.failures]


def test_scores_check_covers_the_optional_time_to_churn_columns() -> None:
    from churnml.contract import SCORE_COLUMNS
    from churnml.validation import ScoresInvalid, check_scores

    scores = pd.DataFrame({c: ["x"] * 3 for c in SCORE_COLUMNS})
    scores["customer_id"] = ["C1", "C2", "C3"]
    scores["churn_probability"] = [0.1, 0.2, 0.3]
    scores["revenue_at_risk"] = [1.0, 2.0, 3.0]
    scores["value_tier"] = ["A", "B", "C"]
    scores["churn_probability_30d"] = [0.05, 0.5, 0.1]
    scores["churn_probability_90d"] = [0.10, 0.4, 0.2]  # C2: 90 days below 30 days
    scores["lifetime_value"] = [10.0, -1.0, 5.0]
    scores["value_segment"] = ["protect", "let go", "dunno"]
    with pytest.raises(ScoresInvalid) as caught:
        check_scores(scores, scores["customer_id"])
    assert [_key(f) for f in caught.value.report.failures] == [
        ("scores", "churn_probability_30d", "<= churn_probability_90d", 1),
        ("scores", "lifetime_value", ">= 0", 1),
        ("scores", "value_segment", "one of keep and grow, protect, develop, let go", 1),
    ]
