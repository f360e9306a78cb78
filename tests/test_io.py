"""Dataset I/O: table lookup, as_of, fingerprints and atomic writes that survive a kill."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from churnml.io import (
    DatasetError,
    dataset_as_of,
    dataset_fingerprint,
    require_dataset,
    table_path,
    write_atomic,
)


def _customers(path: Path) -> None:
    pd.DataFrame(
        {
            "customer_id": ["a"],
            "activated_at": pd.to_datetime(["2024-01-01"]),
            "terminated_at": pd.to_datetime(["2024-06-30"]),
        }
    ).to_parquet(path / "customers.parquet")


def test_parquet_wins_over_csv_and_missing_tables_are_none(tmp_path: Path):
    _customers(tmp_path)
    (tmp_path / "customers.csv").write_text("customer_id\nb\n")
    assert table_path(tmp_path, "customers").suffix == ".parquet"
    assert table_path(tmp_path, "calls") is None


def test_dataset_without_customers_is_refused(tmp_path: Path):
    with pytest.raises(DatasetError, match="customers"):
        require_dataset(tmp_path)
    with pytest.raises(DatasetError, match="does not exist"):
        require_dataset(tmp_path / "nowhere")


def test_as_of_comes_from_the_manifest_else_the_latest_event(tmp_path: Path):
    _customers(tmp_path)
    assert dataset_as_of(tmp_path) == pd.Timestamp("2024-06-30")
    (tmp_path / "manifest.json").write_text(json.dumps({"as_of": "2024-07-01T00:00:00"}))
    assert dataset_as_of(tmp_path) == pd.Timestamp("2024-07-01")


def test_fingerprint_changes_with_the_data(tmp_path: Path):
    _customers(tmp_path)
    before = dataset_fingerprint(tmp_path)
    assert dataset_fingerprint(tmp_path) == before
    pd.DataFrame({"customer_id": ["a", "b"]}).to_parquet(tmp_path / "customers.parquet")
    assert dataset_fingerprint(tmp_path) != before


def test_failed_write_keeps_the_previous_file(tmp_path: Path):
    target = tmp_path / "out.txt"
    target.write_text("previous")

    def fail(tmp: Path) -> None:
        tmp.write_text("half")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_atomic(target, fail)
    assert target.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_killed_writer_leaves_the_previous_file_readable(tmp_path: Path):
    target = tmp_path / "scores.parquet"
    pd.DataFrame({"x": [1, 2, 3]}).to_parquet(target)
    before = target.read_bytes()
    script = f"""
import time
from pathlib import Path
from churnml.io import write_atomic
def slow(tmp):
    with open(tmp, "wb") as handle:
        handle.write(b"partial")
        handle.flush()
        Path({str(tmp_path / "started")!r}).touch()
        time.sleep(60)
write_atomic({str(target)!r}, slow)
"""
    process = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.time() + 30
    while not (tmp_path / "started").exists() and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    assert target.read_bytes() == before
    assert pd.read_parquet(target)["x"].tolist() == [1, 2, 3]
