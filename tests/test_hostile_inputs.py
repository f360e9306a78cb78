"""The hostile-input battery (issue 14): bad files, hostile names and values, faults between
steps. Each case must end in one clear error naming the file, table, column or setting, with
the right exit code, and must write nothing it should not (no file is ever created by data).

Fast cases run in-process on the hand-written tiny dataset; the ones that need a trained model
or a child process under another time zone are marked `slow`.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pipeline_runs import run_pipeline
from tiny_dataset import write_tiny_dataset

from churnml.config import compose_config
from churnml.contract import SCORE_COLUMNS, TABLES
from churnml.errors import (
    ExitCode,
    RunLockedError,
    SettingsError,
    exit_on_known_errors,
)
from churnml.features import build_features
from churnml.io import (
    DatasetError,
    dataset_as_of,
    lock_path,
    output_lock,
    publish_folder,
    read_table,
    scan_sql,
    table_columns,
)
from churnml.validation import (
    RULE_FINITE,
    RULE_TIME_MODEL,
    ContractViolation,
    Limits,
    ScoresInvalid,
    check_dataset,
    check_scores,
    validate_dataset,
)

HOSTILE_TEXT = [
    "<img src=x onerror=alert(1)>",
    "<script>alert('x')</script>",
    "x'); COPY (SELECT 1) TO 'pwned_value.csv'; --",
    "y\"; ATTACH 'pwned.db' AS p; --",
]


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return write_tiny_dataset(tmp_path / "tiny", "parquet")


@pytest.fixture
def tiny_csv(tmp_path: Path) -> Path:
    return write_tiny_dataset(tmp_path / "tiny_csv", "csv")


@pytest.fixture
def in_tmp_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty working directory, so a file written by injected SQL would show up."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


def _spine(ids: list[str], cutoff: str = "2024-06-30") -> pd.DataFrame:
    return pd.DataFrame({"customer_id": ids, "cutoff": pd.Timestamp(cutoff)})


def _exit_code(job: Callable[[], object], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """Run `job` the way the pipelines do (exit_on_known_errors): exit code and stderr."""
    with pytest.raises(SystemExit) as exited, exit_on_known_errors():
        job()
    return int(exited.value.code), capsys.readouterr().err


# --- 1. no identifier or value from data ever becomes SQL --------------------------------------


def test_hostile_csv_headers_values_and_folder_names_run_nothing(tmp_path: Path, in_tmp_cwd):
    target = tmp_path / "pwned.csv"
    folder = tmp_path / "o'brien; COPY (SELECT 1) TO 'pwned_dir.csv'; --"
    path = write_tiny_dataset(folder, "csv")
    customers = pd.read_csv(path / "customers.csv", dtype=str)
    customers[f"region': 'VARCHAR'}}); COPY (SELECT 1) TO '{target}'; --_id"] = "r"
    customers["q\"; ATTACH 'pwned.db' AS p; --_id"] = "q"
    customers["region"] = [*HOSTILE_TEXT[:3], "north", "south", None]
    customers.to_csv(path / "customers.csv", index=False)
    calls = pd.read_csv(path / "calls.csv", dtype=str)
    calls["peer_operator"] = HOSTILE_TEXT * 2
    calls.to_csv(path / "calls.csv", index=False)
    before = _files(tmp_path)

    report = check_dataset(path, docs_dir=tmp_path / "docs")
    assert report.success  # extra columns are ignored; hostile text is just text
    columns = table_columns(path / "customers.csv")
    assert f"region': 'VARCHAR'}}); COPY (SELECT 1) TO '{target}'; --_id" in columns
    frame = read_table(path, "customers")
    assert frame[columns[-1]].eq("q").all()  # the hostile column is read as data
    features = build_features(path, _spine(["C1", "C3", "C5"]))
    assert len(features) == 3
    assert dataset_as_of(path) == pd.Timestamp("2024-06-30")
    created = _files(tmp_path) - before
    assert all(p.is_relative_to(tmp_path / "docs") for p in created), created
    assert not target.exists() and list(in_tmp_cwd.iterdir()) == []


def test_hostile_names_in_parquet_are_quoted(tmp_path: Path, in_tmp_cwd):
    path = write_tiny_dataset(tmp_path / "tiny", "parquet")
    calls = pd.read_parquet(path / "calls.parquet")
    calls["x\") FROM t; COPY (SELECT 1) TO 'pwned.csv'; --"] = 1
    calls["customer_id"] = calls["customer_id"].astype(str)
    calls.to_parquet(path / "calls.parquet", index=False)
    assert check_dataset(path).success
    assert len(build_features(path, _spine(["C1"]))) == 1
    assert list(in_tmp_cwd.iterdir()) == []


# --- 2. non-finite and absurd values are contract violations -----------------------------------


@pytest.mark.parametrize(
    ("table", "column", "value", "rule"),
    [
        ("payments", "amount", np.inf, RULE_FINITE),
        ("bills", "amount_due", np.nan, RULE_FINITE),
        ("payments", "amount", 1e300, "<= 1,000,000 (validation.max_amount)"),
        ("calls", "duration_s", 10**9, "<= 86,400 (validation.max_call_duration_s)"),
    ],
)
def test_non_finite_and_absurd_amounts_break_the_contract(tiny, table, column, value, rule):
    file = tiny / f"{table}.parquet"
    data = pq.read_table(file)
    values = data.column(column).to_pylist()
    values[0] = value
    # from_pandas=False keeps NaN a value (pandas would write it as null)
    array = pa.array(values, type=data.schema.field(column).type, from_pandas=False)
    pq.write_table(data.set_column(data.schema.get_field_index(column), column, array), file)
    with pytest.raises(ContractViolation) as error:
        check_dataset(tiny, tables=[table])
    keys = [(f.table, f.column, f.rule) for f in error.value.report.failures]
    assert (table, column, rule) in keys
    if not np.isnan(value):  # NaN also reads as missing in pandas: "not null" breaks too
        assert keys == [(table, column, rule)]


def test_plausible_ranges_are_settings(tiny):
    frame = pd.read_parquet(tiny / "payments.parquet")
    frame.loc[0, "amount"] = 5_000.0
    frame.to_parquet(tiny / "payments.parquet", index=False)
    assert check_dataset(tiny, tables=["payments"]).success
    report = validate_dataset(tiny, tables=["payments"], limits=Limits(max_amount=1_000.0))
    assert [f.rule for f in report.failures] == ["<= 1,000 (validation.max_amount)"]


def test_csv_inf_is_a_clear_error_too(tiny_csv):
    frame = pd.read_csv(tiny_csv / "transfers.csv", dtype=str)
    frame.loc[0, "monthly_fee"] = "inf"  # the column's only value: DuckDB sniffs a date
    frame.to_csv(tiny_csv / "transfers.csv", index=False)
    report = validate_dataset(tiny_csv, tables=["transfers"])
    assert [(f.column, f.rule) for f in report.failures] == [("monthly_fee", "type float")]


def _scores(n: int = 4) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "scoring_date": pd.Timestamp("2024-06-30"),
            "customer_id": [f"C{i}" for i in range(n)],
            "churn_probability": np.linspace(0.1, 0.4, n),
            "risk_band": "D01",
            "value_tier": "D",
            "revenue_at_risk": np.linspace(1.0, 4.0, n),
            "reason_1": "r",
            "reason_2": None,
            "reason_3": None,
            "action": "monitor",
            "model_name": "churnml",
            "model_version": "1",
            "run_id": "abc",
        }
    )
    frame["monthly_revenue"] = 10.0
    frame["expected_profit"] = 1.0
    return frame[[*SCORE_COLUMNS, "monthly_revenue", "expected_profit"]]


@pytest.mark.parametrize("column", ["revenue_at_risk", "expected_profit", "monthly_revenue"])
def test_scores_output_check_refuses_infinite_numbers(column: str):
    scores = _scores()
    assert check_scores(scores, scores["customer_id"]).success
    scores.loc[2, column] = np.inf
    with pytest.raises(ScoresInvalid, match=rf"scores\.{column}: finite \(no inf\)"):
        check_scores(scores, scores["customer_id"])


# --- 3. one time model; results never depend on the process's time zone -----------------------


def _to_utc_offsets(path: Path, shift: str = "America/New_York") -> None:
    """Rewrite every timestamp column of a Parquet dataset as the same instants with an offset
    (written in another zone), so the dataset is all offset-aware."""
    for file in path.glob("*.parquet"):
        frame = pd.read_parquet(file)
        for column in frame.columns:
            if pd.api.types.is_datetime64_any_dtype(frame[column]):
                frame[column] = frame[column].dt.tz_localize("UTC").dt.tz_convert(shift)
        frame.to_parquet(file, index=False)


@pytest.fixture
def process_tz(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    def set_tz(zone: str) -> None:
        monkeypatch.setenv("TZ", zone)
        time.tzset()

    yield set_tz
    monkeypatch.undo()
    time.tzset()


def test_offset_stamps_read_as_utc_in_any_process_zone(tmp_path: Path, process_tz):
    naive = write_tiny_dataset(tmp_path / "naive", "parquet")
    aware = write_tiny_dataset(tmp_path / "aware", "parquet")
    _to_utc_offsets(aware)
    assert check_dataset(aware).success
    spine = _spine(["C1", "C3", "C4", "C5"])
    results = []
    for zone in ("UTC", "America/New_York", "Asia/Kolkata"):
        process_tz(zone)
        results.append(build_features(aware, spine))
        calls = read_table(aware, "calls")
        assert calls["started_at"].dt.tz is None
        assert calls["started_at"].equals(read_table(naive, "calls")["started_at"])
    reference = build_features(naive, spine)
    for result in results:
        pd.testing.assert_frame_equal(result, reference)


def test_offset_stamps_in_csv_text_are_converted_to_utc(tiny_csv: Path):
    calls = pd.read_csv(tiny_csv / "calls.csv", dtype=str)
    naive = pd.to_datetime(calls["started_at"])
    calls["started_at"] = (naive - pd.Timedelta(hours=2)).dt.strftime("%Y-%m-%dT%H:%M:%S+00:00")
    calls.loc[0, "started_at"] = naive[0].strftime("%Y-%m-%dT%H:%M:%S+02:00")
    calls.to_csv(tiny_csv / "calls.csv", index=False)
    for table in set(TABLES) - {"calls"}:
        (tiny_csv / f"{table}.csv").unlink()  # their naive stamps would mix with these
    write_tiny_dataset(tiny_csv.parent / "ref", "csv")
    customers = tiny_csv.parent / "ref" / "customers.csv"  # dates only: neither naive nor offset
    shutil.copy(customers, tiny_csv / "customers.csv")
    assert check_dataset(tiny_csv).success
    stamps = read_table(tiny_csv, "calls")["started_at"]
    assert stamps.dt.tz is None
    assert stamps[0] == naive[0] - pd.Timedelta(hours=2)
    assert (stamps == naive - pd.Timedelta(hours=2)).all()


def test_mixed_naive_and_offset_stamps_break_the_contract(tiny: Path):
    calls = pd.read_parquet(tiny / "calls.parquet")
    calls["started_at"] = calls["started_at"].dt.tz_localize("UTC")
    calls.to_parquet(tiny / "calls.parquet", index=False)
    with pytest.raises(ContractViolation) as error:
        check_dataset(tiny)
    (failure,) = error.value.report.failures
    assert (failure.table, failure.column) == ("calls", "started_at")
    assert failure.rule.startswith(RULE_TIME_MODEL)
    assert failure.example_ids and failure.n_rows == len(calls)


def test_mixed_stamps_within_one_csv_column(tiny_csv: Path):
    calls = pd.read_csv(tiny_csv / "calls.csv", dtype=str)
    calls.loc[0, "started_at"] = "2024-06-01T10:00:00Z"
    calls.to_csv(tiny_csv / "calls.csv", index=False)
    report = validate_dataset(tiny_csv)
    (failure,) = report.failures
    assert failure.column == "started_at" and failure.n_rows == 1
    assert failure.example_ids == ["C1"]
    assert "1 with a UTC offset" in failure.rule


@pytest.mark.parametrize(
    ("as_of", "expected"),
    [
        ("2024-06-30T00:00:00Z", "2024-06-30 00:00:00"),
        ("2024-06-30T02:00:00+02:00", "2024-06-30 00:00:00"),
        ("2024-06-30", "2024-06-30 00:00:00"),
        ("20240630T000000", "2024-06-30 00:00:00"),
    ],
)
def test_as_of_accepts_any_iso_8601_form(tiny: Path, as_of: str, expected: str):
    (tiny / "manifest.json").write_text(json.dumps({"as_of": as_of}))
    assert dataset_as_of(tiny) == pd.Timestamp(expected)
    assert check_dataset(tiny, tables=["calls"]).success


# --- 4. one publish: a date's files appear together or not at all -----------------------------


def _writer(text: str) -> Callable[[Path], None]:
    return lambda path: path.write_text(text)


def _fail(path: Path) -> None:
    path.write_text("half")
    raise OSError("disk full")


def test_publish_writes_all_files_or_none(tmp_path: Path):
    folder = tmp_path / "scores" / "scoring_date=2024-06-30"
    publish_folder(folder, {"a.csv": _writer("old a"), "b.csv": _writer("old b")})
    with pytest.raises(OSError, match="disk full"):
        publish_folder(folder, {"a.csv": _writer("new a"), "b.csv": _fail})
    assert {p.name: p.read_text() for p in folder.iterdir()} == {"a.csv": "old a", "b.csv": "old b"}
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no staging left
    publish_folder(folder, {"a.csv": _writer("new a"), "b.csv": _writer("new b")})
    assert {p.name: p.read_text() for p in folder.iterdir()} == {"a.csv": "new a", "b.csv": "new b"}
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]


def test_publish_fault_between_the_two_renames_restores_the_old_set(tmp_path, monkeypatch):
    folder = tmp_path / "scoring_date=2024-06-30"
    publish_folder(folder, {"a.csv": _writer("old a"), "b.csv": _writer("old b")})
    real_rename = os.rename
    calls = []

    def flaky(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # the staging folder onto the target
            raise OSError("rename failed")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", flaky)
    with pytest.raises(OSError, match="rename failed"):
        publish_folder(folder, {"a.csv": _writer("new a"), "b.csv": _writer("new b")})
    monkeypatch.undo()
    assert {p.name: p.read_text() for p in folder.iterdir()} == {"a.csv": "old a", "b.csv": "old b"}
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]


# --- 5. one reader: what passes validation can be featurised ------------------------------------


def test_timestamps_stored_as_text_pass_and_featurise_alike(tmp_path: Path):
    native = write_tiny_dataset(tmp_path / "native", "parquet")
    text = write_tiny_dataset(tmp_path / "text", "parquet")
    for table in ("calls", "payments"):
        frame = pd.read_parquet(text / f"{table}.parquet")
        column = "started_at" if table == "calls" else "paid_at"
        frame[column] = frame[column].dt.strftime("%Y-%m-%d %H:%M:%S")
        frame.to_parquet(text / f"{table}.parquet", index=False)
    assert check_dataset(text).success
    spine = _spine(["C1", "C3", "C5"])
    pd.testing.assert_frame_equal(build_features(text, spine), build_features(native, spine))


def _corrupt_column(file: Path, column: str) -> None:
    """Overwrite the middle of one column chunk's pages with garbage."""
    meta = pq.ParquetFile(file).metadata
    names = [meta.schema.column(i).name for i in range(meta.num_columns)]
    chunk = meta.row_group(0).column(names.index(column))
    start = chunk.data_page_offset
    data = bytearray(file.read_bytes())
    for i in range(start, start + chunk.total_compressed_size):
        data[i] = 0xFF
    file.write_bytes(bytes(data))


def test_corrupt_page_in_a_column_the_rules_do_not_read_is_bad_input(tmp_path: Path):
    path = write_tiny_dataset(tmp_path / "tiny", "parquet")
    pd.read_parquet(path / "calls.parquet").to_parquet(
        path / "calls.parquet", index=False, compression="snappy"
    )
    _corrupt_column(path / "calls.parquet", "peer_operator")
    with pytest.raises(DatasetError, match=r"calls\.parquet: cannot be read fully"):
        check_dataset(path)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda f: f.write_bytes(b""), r"customers\.parquet: empty file"),
        (lambda f: f.write_bytes(f.read_bytes()[:200]), r"customers\.parquet: cannot be read"),
    ],
    ids=["zero-bytes", "truncated"],
)
def test_broken_parquet_files_name_the_file(tiny: Path, damage, message, capsys):
    damage(tiny / "customers.parquet")
    code, err = _exit_code(lambda: check_dataset(tiny), capsys)
    assert code == ExitCode.BAD_INPUT
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert re.search(message, err)


def test_csv_with_a_bom_is_read(tiny_csv: Path):
    file = tiny_csv / "customers.csv"
    file.write_bytes(b"\xef\xbb\xbf" + file.read_bytes())
    assert check_dataset(tiny_csv).success
    assert read_table(tiny_csv, "customers")["customer_id"].tolist()[0] == "C1"


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            lambda f: f.write_bytes(f.read_bytes().replace(b"north", b"Norr\xe4") + b""),
            r"customers\.csv: cannot be read fully",
        ),
        (
            lambda f: f.write_bytes(f.read_bytes().replace(b"customer_id", b"k\xe4und_id", 1)),
            r"customers\.csv: the header is not UTF-8",
        ),
        (
            lambda f: f.write_text(f.read_text().replace(",", ";")),
            r"customers\.csv: the header has one column .* comma-separated",
        ),
    ],
    ids=["latin1-value", "latin1-header", "semicolons"],
)
def test_badly_encoded_csv_names_the_file(tiny_csv: Path, damage, message, capsys):
    damage(tiny_csv / "customers.csv")
    code, err = _exit_code(lambda: check_dataset(tiny_csv), capsys)
    assert code == ExitCode.BAD_INPUT, err
    assert "Traceback" not in err
    assert re.search(message, err), err


@pytest.mark.parametrize(
    "manifest",
    ['{"as_of": "2024-06-', '["2024-06-30"]', '{"as_of": "yesterday"}', '{"as_of": 5}'],
)
def test_invalid_manifest_is_bad_input(tiny: Path, manifest: str, capsys):
    (tiny / "manifest.json").write_text(manifest)
    code, err = _exit_code(lambda: check_dataset(tiny), capsys)
    assert code == ExitCode.BAD_INPUT and "manifest.json" in err and "Traceback" not in err


# --- 6. every page the project writes escapes data ----------------------------------------------


def test_validation_summary_escapes_hostile_values(tmp_path: Path):
    folder = tmp_path / "<script>alert('dataset')</script>"
    path = write_tiny_dataset(folder, "parquet")
    customers = pd.read_parquet(path / "customers.parquet")
    customers.loc[1, "customer_id"] = HOSTILE_TEXT[0]
    customers.loc[2, "customer_id"] = HOSTILE_TEXT[0]  # duplicate: shown as an example id
    customers.loc[3, "payment_type"] = HOSTILE_TEXT[1]
    customers.to_parquet(path / "customers.parquet", index=False)
    docs = tmp_path / "docs"
    report = validate_dataset(path, docs_dir=docs, tables=["customers"])
    assert not report.success
    # GX's Data Docs pages show the contract's rules only: no value from the data reaches them.
    rule_pages = list((docs / "rules").rglob("*.htm*"))
    assert rule_pages
    for rule_page in rule_pages:
        text = rule_page.read_text()
        assert "onerror" not in text and "alert(" not in text
    pages = [p for p in docs.rglob("*.htm*") if p not in rule_pages]
    assert pages == [docs / "summary.html"]
    page = pages[0].read_text()
    for raw in (HOSTILE_TEXT[0], "<script>"):
        assert raw not in page
    assert html.escape(HOSTILE_TEXT[0]) in page
    assert "<script" not in page.lower() and "onerror=" not in page.replace("onerror=a", "")


def test_loss_driver_report_escapes_hostile_values():
    from churnml.report import ReportInputs, render_report

    hostile = HOSTILE_TEXT[0]
    drivers = pd.DataFrame(
        {
            "rank": [1],
            "feature": [hostile],
            "description": [hostile],
            "cause_family": ["price"],
            "mean_abs_shap": [0.1],
            "share_raising_risk": [0.5],
        }
    )
    page = render_report(
        ReportInputs(
            title=hostile,
            model_card={hostile: hostile},
            metrics={"test_roc_auc": 0.7},
            drivers=drivers,
            families=pd.DataFrame(
                {"cause_family": ["price"], "cause": [hostile], "mean_abs_shap": [0.1]}
            ),
            findings=pd.DataFrame({"cause_family": ["price"], "finding": [hostile]}),
            segments=pd.DataFrame({"segment": [hostile], "region": [HOSTILE_TEXT[1]]}),
        )
    )
    assert hostile not in page and "<script>" not in page
    assert html.escape(hostile) in page


# --- 7 and 8. clear errors and exit codes; settings checked when the config is composed --------


@pytest.mark.parametrize(
    ("config", "override", "setting"),
    [
        ("score", "scoring.contact_list_size=-5", "scoring.contact_list_size"),
        ("score", "scoring.date=2025-13-45", "scoring.date"),
        ("score", "scoring.model_version=abc", "scoring.model_version"),
        ("score", "data.name=../../etc", "data.name"),
        ("score", "tracking.request_timeout_s=0", "tracking.request_timeout_s"),
        ("train", "label.horizon_days=-30", "label.horizon_days"),
        ("train", "label.gap_days=-1", "label.gap_days"),
        ("train", "sampling.negative_sample_rate=0", "sampling.negative_sample_rate"),
        ("train", "model.calibration=magic", "model.calibration"),
        ("train", "evaluation.save_rate=1.5", "evaluation.save_rate"),
        ("train", "validation.max_amount=-1", "validation.max_amount"),
        ("train", "evaluation.offer_cost=inf", "evaluation.offer_cost"),
    ],
)
def test_bad_settings_fail_when_the_config_is_composed(tmp_path, config, override, setting):
    with pytest.raises(SettingsError, match=rf"{setting}=.*must be"):
        compose_config(config, [f"paths.root_dir={tmp_path}", override])


def test_bad_setting_exits_2_with_one_line_per_setting(tmp_path, capsys):
    overrides = [f"paths.root_dir={tmp_path}", "scoring.contact_list_size=-5", "scoring.date=x"]
    code, err = _exit_code(lambda: compose_config("score", overrides), capsys)
    assert code == ExitCode.BAD_INPUT
    assert "scoring.contact_list_size=-5" in err and "scoring.date='x'" in err


def test_training_on_zero_customers_is_bad_input(tiny: Path, make_train_config, capsys):
    from churnml.jobs import run_training

    customers = pd.read_parquet(tiny / "customers.parquet").iloc[:0]
    customers.to_parquet(tiny / "customers.parquet", index=False)
    for table in ("calls", "transfers", "complaints", "bills", "payments"):
        (tiny / f"{table}.parquet").unlink()
    cfg = make_train_config(tiny)
    code, err = _exit_code(lambda: run_training(cfg), capsys)
    assert code == ExitCode.BAD_INPUT, err
    assert "Traceback" not in err


def test_unreachable_tracking_server_fails_fast_and_clearly(tmp_path, monkeypatch, capsys):
    from churnml.tracking import setup_tracking

    for name in ("MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_HTTP_REQUEST_MAX_RETRIES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # discard port: refused
    cfg = compose_config("score", [f"paths.root_dir={tmp_path}", "tracking.request_timeout_s=2"])
    started = time.perf_counter()
    code, err = _exit_code(lambda: setup_tracking(cfg.tracking), capsys)
    assert time.perf_counter() - started < 30
    assert code == ExitCode.TRACKING_UNAVAILABLE
    assert "tracking server http://127.0.0.1:9 did not answer" in err


# --- 9. outputs are keyed by the dataset that made them -----------------------------------------


def test_scores_folder_is_per_dataset(tmp_path: Path):
    from churnml.jobs import scoring_folder

    date = pd.Timestamp("2024-06-30")
    scores = tmp_path / "data" / "scores"
    production = compose_config("score", [f"paths.root_dir={tmp_path}"])
    assert scoring_folder(production, date) == scores / "scoring_date=2024-06-30"
    extract = compose_config("score", [f"paths.root_dir={tmp_path}", "data.name=extract"])
    assert scoring_folder(extract, date) == scores / "dataset=extract" / "scoring_date=2024-06-30"


# --- 10. a failed run leaves no empty folder and no lock ----------------------------------------


def test_failed_run_removes_its_lock_and_empty_folders(tmp_path: Path):
    folder = tmp_path / "scores" / "dataset=x" / "scoring_date=2024-06-30"
    with pytest.raises(RuntimeError, match="boom"), output_lock(folder):
        assert lock_path(folder).exists()
        with pytest.raises(RunLockedError), output_lock(folder):
            pass
        raise RuntimeError("boom")
    assert not (tmp_path / "scores").exists()
    with output_lock(folder):
        publish_folder(folder, {"a.csv": _writer("a")})
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # lock gone, files kept


def test_scan_sql_reads_ids_as_text(tiny_csv: Path):
    customers = tiny_csv / "customers.csv"
    customers.write_text(customers.read_text().replace("C1,", "007,", 1))
    frame = read_table(tiny_csv, "customers")
    assert frame["customer_id"].tolist()[0] == "007"  # not the number 7
    assert scan_sql(customers).startswith("(SELECT ")


# --- slow: scoring with a trained model (faults between steps, time zones, exit codes) ---------


def _score_overrides(root: Path, dataset: Path, name: str, *more: str) -> list[str]:
    return [
        f"paths.root_dir={root}",
        f"data.path={dataset}",
        f"data.name={name}",
        "tracking.registered_model_name=churnml_tiny",  # the model trained_project registered
        "scoring.date=2024-09-01",
        *more,
    ]


def _aware_copy(dataset: Path, target: Path) -> Path:
    shutil.copytree(dataset, target)
    _to_utc_offsets(target)
    return target


@pytest.mark.slow
def test_scores_are_identical_under_any_server_time_zone(
    trained_project: Path, tiny_dataset: Path, tmp_path: Path
):
    from churnml.jobs import run_scoring

    aware = _aware_copy(tiny_dataset, tmp_path / "aware")
    outputs = {}
    for zone in ("UTC", "America/New_York"):
        name = f"tz_{zone.replace('/', '_')}"
        completed = run_pipeline(
            "score",
            _score_overrides(trained_project, aware, name, f"run_dir={tmp_path}/logs/{name}"),
            cwd=tmp_path,
            timeout=600,
            env={"TZ": zone},
        )
        assert completed.returncode == 0, completed.stderr[-3000:]
        folder = trained_project / "data" / "scores" / f"dataset={name}" / "scoring_date=2024-09-01"
        outputs[zone] = {
            f: (folder / f).read_bytes() for f in ("scores.parquet", "contact_list.csv")
        }
    assert outputs["UTC"] == outputs["America/New_York"]
    # The same instants written naive (UTC) score the same too.
    naive = run_scoring(
        compose_config(
            "score",
            _score_overrides(trained_project, tiny_dataset, "tz_naive", f"run_dir={tmp_path}/n"),
        )
    )
    assert naive.scores_path.read_bytes() == outputs["UTC"]["scores.parquet"]


@pytest.mark.slow
def test_scoring_failure_between_files_publishes_nothing(
    trained_project: Path, tiny_dataset: Path, tmp_path: Path, monkeypatch
):
    from churnml import jobs, scoring

    def cfg(*more: str):
        overrides = _score_overrides(trained_project, tiny_dataset, "fault", *more)
        return compose_config("score", [*overrides, f"run_dir={tmp_path}/logs"])

    first = jobs.run_scoring(cfg("scoring.contact_list_size=10"))
    folder = first.scores_path.parent
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def broken_monitoring(report: dict) -> str:
        raise OSError("disk full while writing monitoring.json")

    monkeypatch.setattr(scoring, "monitoring_json", broken_monitoring)
    with pytest.raises(OSError, match="disk full"):
        jobs.run_scoring(cfg("scoring.contact_list_size=20"))
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert len(pd.read_csv(folder / "contact_list.csv")) == 10
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no staging, no lock

    # A failed run for a new date leaves no folder and no lock behind.
    new = cfg("scoring.date=2024-08-01")
    with pytest.raises(OSError, match="disk full"):
        jobs.run_scoring(new)
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]


@pytest.mark.slow
def test_pipeline_exit_codes_for_bad_settings_and_versions(
    trained_project: Path, tiny_dataset: Path, tmp_path: Path
):
    base = [
        f"paths.root_dir={trained_project}",
        f"data.path={tiny_dataset}",
        "data.name=tiny",
        "validation.enabled=false",
    ]
    completed = run_pipeline("score", [*base, "scoring.date=2025-13-45"], tmp_path, 300)
    assert completed.returncode == ExitCode.BAD_INPUT, completed.stderr[-2000:]
    assert "scoring.date='2025-13-45': must be an ISO 8601 date" in completed.stderr
    assert "Traceback" not in completed.stderr
    completed = run_pipeline("score", [*base, "scoring.model_version=99"], tmp_path, 300)
    assert completed.returncode == ExitCode.NO_CHAMPION, completed.stderr[-2000:]
    assert "has no version 99" in completed.stderr
