"""Reading raw datasets and writing outputs atomically.

A raw dataset is a folder of contract tables (`docs/data-contract.md`): `<name>.parquet`
(preferred) or `<name>.csv`, plus an optional `manifest.json` carrying `as_of`.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq

log = logging.getLogger(__name__)

TABLES = ("customers", "calls", "transfers", "complaints", "bills", "payments")

# Event-time columns that may not lie after `as_of` (dates that are promises, such as
# commitment_end and due_at, may).
EVENT_TIME_COLUMNS: dict[str, tuple[str, ...]] = {
    "customers": ("activated_at", "terminated_at"),
    "calls": ("started_at",),
    "transfers": ("occurred_at",),
    "complaints": ("opened_at", "resolved_at"),
    "bills": ("issued_at",),
    "payments": ("paid_at",),
}


class DatasetError(ValueError):
    """The dataset folder is unusable as a whole (missing folder or required table)."""


def table_path(dataset_dir: str | Path, table: str) -> Path | None:
    """Path of a table's file in a dataset folder (Parquet before CSV), or None when absent."""
    dataset_dir = Path(dataset_dir)
    for suffix in (".parquet", ".csv"):
        path = dataset_dir / f"{table}{suffix}"
        if path.exists():
            return path
    return None


def require_dataset(dataset_dir: str | Path) -> Path:
    """Check that a dataset folder exists and has its one required table."""
    dataset_dir = Path(dataset_dir)
    if not dataset_dir.is_dir():
        raise DatasetError(f"dataset folder {dataset_dir} does not exist")
    if table_path(dataset_dir, "customers") is None:
        raise DatasetError(
            f"dataset folder {dataset_dir} has no customers.parquet or customers.csv "
            "(the one required table of the data contract)"
        )
    return dataset_dir


def scan_sql(path: Path) -> str:
    """A DuckDB table expression reading a Parquet or CSV table file lazily."""
    quoted = str(path).replace("'", "''")
    if path.suffix == ".parquet":
        return f"read_parquet('{quoted}')"
    # Ids are strings by contract: keep every *_id column as VARCHAR whatever it looks like
    # (CSV sniffing would read "007" as the number 7).
    with open(path, newline="", encoding="utf-8") as handle:
        header = next(csv.reader(handle), [])
    ids = {name: "VARCHAR" for name in header if name.endswith("_id")}
    types = ", types={" + ", ".join(f"'{k}': '{v}'" for k, v in ids.items()) + "}" if ids else ""
    return f"read_csv('{quoted}', header=true, auto_detect=true, sample_size=-1{types})"


def table_columns(path: Path) -> list[str]:
    """Column names of a table file without reading its rows."""
    with duckdb.connect() as con:
        return [
            row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {scan_sql(path)}").fetchall()
        ]


def read_manifest(dataset_dir: str | Path) -> dict:
    """The dataset's manifest.json as a dict ({} when there is none)."""
    path = Path(dataset_dir) / "manifest.json"
    if not path.exists():
        return {}
    return json.loads(path.read_text())


def dataset_as_of(dataset_dir: str | Path) -> pd.Timestamp:
    """When the data was extracted: the manifest's `as_of`, else the latest event time found."""
    manifest = read_manifest(dataset_dir)
    if manifest.get("as_of"):
        return pd.Timestamp(manifest["as_of"])
    latest: list[pd.Timestamp] = []
    with duckdb.connect() as con:
        for table, columns in EVENT_TIME_COLUMNS.items():
            path = table_path(dataset_dir, table)
            if path is None:
                continue
            present = set(table_columns(path))
            for column in columns:
                if column in present:
                    value = con.execute(
                        f"SELECT max(CAST({column} AS TIMESTAMP)) FROM {scan_sql(path)}"
                    ).fetchone()[0]
                    if value is not None:
                        latest.append(pd.Timestamp(value))
    if not latest:
        raise DatasetError(f"cannot tell the as_of date of {dataset_dir}: no event times found")
    return max(latest)


def read_table(
    dataset_dir: str | Path, table: str, columns: list[str] | None = None
) -> pd.DataFrame | None:
    """Read a whole (small) table into pandas, or None when the table is absent.

    Meant for `customers` and other tables that fit in memory; event tables are queried
    through DuckDB instead.
    """
    path = table_path(dataset_dir, table)
    if path is None:
        return None
    select = ", ".join(columns) if columns else "*"
    with duckdb.connect() as con:
        return con.execute(f"SELECT {select} FROM {scan_sql(path)}").df()


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it onto `target` only on success.

    A crash or kill before the rename leaves any earlier `target` untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp makes the file private (0600); published outputs get the usual umask-based mode.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_atomic(target: str | Path, writer: Callable[[Path], None]) -> Path:
    """Write a file through `writer(tmp_path)` and publish it atomically."""
    with atomic_path(target) as tmp:
        writer(tmp)
    return Path(target)


def dataset_fingerprint(dataset_dir: str | Path) -> str:
    """A short hash identifying a dataset's content, cheap even for 100M-row tables.

    Parquet files contribute their footer metadata (schema, row counts, column statistics),
    which changes whenever the data does; CSV files and the manifest contribute their bytes.
    """
    digest = hashlib.sha256()
    dataset_dir = Path(dataset_dir)
    for table in TABLES:
        path = table_path(dataset_dir, table)
        if path is None:
            continue
        digest.update(f"{table}:{path.suffix}:{path.stat().st_size}".encode())
        if path.suffix == ".parquet":
            metadata = pq.ParquetFile(path).metadata
            for index in range(metadata.num_row_groups):
                digest.update(str(metadata.row_group(index).to_dict()).encode())
        else:
            digest.update(path.read_bytes())
    manifest = dataset_dir / "manifest.json"
    if manifest.exists():
        digest.update(manifest.read_bytes())
    return digest.hexdigest()[:16]


def file_fingerprint(*paths: str | Path | None) -> str:
    """A short content hash of whole files (for small snapshot datasets)."""
    digest = hashlib.sha256()
    for path in paths:
        if path is not None:
            digest.update(Path(path).read_bytes())
    return digest.hexdigest()[:16]
