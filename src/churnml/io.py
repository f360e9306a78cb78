"""Reading raw datasets and writing outputs atomically.

A raw dataset is a folder of contract tables (`docs/data-contract.md`): `<name>.parquet`
(preferred) or `<name>.csv`, plus an optional `manifest.json` carrying `as_of`.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import functools
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq

from churnml.contract import CONTRACT_COLUMNS, EVENT_TIME_COLUMNS, TABLES

log = logging.getLogger(__name__)


class DatasetError(ValueError):
    """The dataset folder is unusable as a whole (missing folder or required table)."""


def table_path(dataset_dir: str | Path, table: str) -> Path | None:
    """Path of a table's file in a dataset folder (Parquet before CSV), or None when absent."""
    dataset_dir = Path(dataset_dir)
    for suffix in (".parquet", ".csv"):
        path = dataset_dir / f"{table}{suffix}"
        if path.is_file():
            return path
        if path.exists():
            raise DatasetError(f"{path} is not a regular file")
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


def quote_identifier(name: str) -> str:
    """A SQL identifier for any name (quotes doubled): names from data never become SQL."""
    return '"' + str(name).replace('"', '""') + '"'


def sql_string(value: str) -> str:
    """A SQL string literal for any text (single quotes doubled; DuckDB has no backslash escapes
    in plain literals)."""
    return "'" + str(value).replace("'", "''") + "'"


def _new_database() -> duckdb.DuckDBPyConnection:
    database = duckdb.connect()
    # DuckDB pushes a TRY_CAST of a CSV column into the CSV reader as a strict type, so one
    # bad value fails the whole read instead of giving NULL (the validator's type rules rely
    # on TRY_CAST); keep casts above the scan. (A database-wide setting.)
    database.execute("SET disabled_optimizers = 'type_pushdown'").fetchall()
    return database


@functools.cache
def _shared_database() -> duckdb.DuckDBPyConnection:
    return _new_database()


def connect(*, own_database: bool = False) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection whose session time zone is UTC, whatever the process's TZ.

    Casts between TIMESTAMP and TIMESTAMPTZ use the session zone; fixing it keeps every result
    independent of the server's time zone. Every connection that reads tables comes from here.
    Connections share one in-process database (opening a database costs about 0.1 s, a
    connection to it nothing); `own_database` gives a private one to a caller that changes
    database-wide settings (threads, memory limit, insertion order).
    """
    con = _new_database() if own_database else _shared_database().cursor()
    con.execute("SET TimeZone = 'UTC'").fetchall()
    return con


# Errors that mean our SQL is wrong (a bug, exit 1), not that a file is bad.
_OUR_SQL_ERRORS = (
    duckdb.BinderException,
    duckdb.ParserException,
    duckdb.CatalogException,
    duckdb.SyntaxException,
    duckdb.NotImplementedException,
)


@contextmanager
def reading(path: Path, what: str = "read") -> Iterator[None]:
    """Turn DuckDB's errors about a file's content into a DatasetError naming the file.

    Only I/O and input errors: a binder or parser error is a bug in our SQL and stays one.
    """
    try:
        yield
    except _OUR_SQL_ERRORS:
        raise
    except duckdb.Error as err:  # I/O, invalid input, conversion, corrupt pages ("Error")
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise DatasetError(
            f"{path}: cannot be {what} fully ({first or type(err).__name__})"
        ) from err


def _csv_header(path: Path) -> list[str]:
    """The header of a contract CSV: UTF-8 (a BOM is allowed), comma-separated."""
    with open(path, "rb") as handle:
        line = handle.readline(1 << 20)  # the header only: DuckDB judges the rows' bytes
    try:
        header = next(csv.reader([line.decode("utf-8-sig")]), [])
    except UnicodeDecodeError as error:
        raise DatasetError(
            f"{path}: the header is not UTF-8 text ({error.reason} at byte {error.start}); "
            "the data contract's CSV files are UTF-8"
        ) from error
    if not header:
        raise DatasetError(f"{path}: empty file, no header row")
    if len(header) == 1 and any(sep in header[0] for sep in (";", "\t", "|")):
        raise DatasetError(
            f"{path}: the header has one column {header[0][:60]!r}: the data contract's CSV "
            "files are comma-separated"
        )
    return header


def raw_scan_sql(path: Path) -> str:
    """A DuckDB table function reading a table file as stored (ids as VARCHAR)."""
    if path.suffix == ".parquet":
        return f"read_parquet({sql_string(str(path))})"
    # Ids are strings by contract: keep every *_id column as VARCHAR whatever it looks like
    # (CSV sniffing would read "007" as the number 7). Contract stamps stay text too: the
    # sniffer would read a column holding one "Z" stamp as TIMESTAMPTZ and the naive ones in
    # the session's zone; `read_column` reads them (and the validator judges them) instead.
    # Names come from the file: quoted.
    stamps = {c.name for c in CONTRACT_COLUMNS.get(path.stem, ()) if c.kind == "timestamp"}
    ids = [name for name in _csv_header(path) if name.endswith("_id") or name in stamps]
    types = ", ".join(f"{sql_string(name)}: 'VARCHAR'" for name in ids)
    return (
        f"read_csv({sql_string(str(path))}, header=true, auto_detect=true, sample_size=-1, "
        f"delim=',', quote='\"', encoding='utf-8'" + (f", types={{{types}}}" if ids else "") + ")"
    )


def describe_raw(path: Path, con: duckdb.DuckDBPyConnection | None = None) -> dict[str, str]:
    """Column name -> DuckDB type of a table file as stored (on `con` when given).

    Not cached: a file rewritten within the file system's clock tick with the same size (a
    value edited in place) would keep stale types.
    """
    if path.stat().st_size == 0:
        raise DatasetError(f"{path}: empty file (0 bytes)")
    if con is None:
        with connect() as own:
            return describe_raw(path, own)
    with reading(path):
        rows = con.execute(f"DESCRIBE SELECT * FROM {raw_scan_sql(path)}").fetchall()
    return {row[0]: row[1] for row in rows}


# ---------------------------------------------------------------------------------------------
# Contract types: how a stored column (DuckDB type) is read as its contract type. The validator
# checks these very expressions and `scan_sql` reads with them, so what passes validation is
# exactly what the features see.

_INT_TYPES = {
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
}
_TS_TYPES = {"DATE", "TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS"}
_TZ_TYPES = {"TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ"}
# A text stamp with a time of day and then Z or a UTC offset (+02, +0200, +02:00); a date
# alone ("2024-01-15") has neither.
OFFSET_PATTERN = r"[T ][0-9]{2}(:?[0-9]{2}){0,2}([.,][0-9]+)? ?(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)$"


def column_family(duck_type: str) -> str:
    """The family of a DuckDB type (int, float, string, bool, timestamp, timestamptz, null)."""
    t = duck_type.upper()
    if t in _INT_TYPES:
        return "int"
    if t in ("FLOAT", "DOUBLE") or t.startswith("DECIMAL"):
        return "float"
    if t == "VARCHAR" or t.startswith("ENUM"):
        return "string"
    if t == "BOOLEAN":
        return "bool"
    if t in _TZ_TYPES:
        return "timestamptz"
    if t in _TS_TYPES:
        return "timestamp"
    if t == '"NULL"' or t == "NULL":
        return "null"
    return "other"


_S, _T, _I, _F, _B = "string", "timestamp", "int", "float", "bool"
_DUCK_TARGET = {_S: "VARCHAR", _T: "TIMESTAMP", _I: "BIGINT", _F: "DOUBLE", _B: "BOOLEAN"}


@dataclass(frozen=True)
class ColumnRead:
    """How one source column is read: `typed` is the SQL giving the contract-typed value; when
    `fallible`, a non-null source value may fail to convert (then `typed` is NULL and `ok`, the
    type verdict, is FALSE)."""

    typed: str
    ok: str
    fallible: bool


def read_column(q: str, family: str, kind: str) -> ColumnRead:
    """SQL reading quoted source column `q` of DuckDB type family `family` as contract `kind`."""
    target = _DUCK_TARGET[kind]
    if family == "null":
        return ColumnRead(f"CAST(NULL AS {target})", "TRUE", False)
    native = {
        _S: {"string", "int"},  # ids that look numeric (CSV sniffing) are still ids
        _T: {"timestamp"},
        _I: {"int"},
        _F: {"int", "float"},
        _B: {"bool"},
    }[kind]
    if family in native:
        return ColumnRead(f"CAST({q} AS {target})", "TRUE", False)
    if kind == _T and family == "timestamptz":
        # An instant: its UTC wall time, whatever the session's zone.
        return ColumnRead(f"timezone('UTC', {q})", "TRUE", False)
    typed: str | None = None
    if kind == _T and family == "string":
        # A cast to TIMESTAMP would drop an offset silently: offset stamps go through
        # TIMESTAMPTZ to UTC, naive ones stay as written.
        typed = (
            f"CASE WHEN regexp_matches({q}, '{OFFSET_PATTERN}') "
            f"THEN timezone('UTC', TRY_CAST({q} AS TIMESTAMPTZ)) "
            f"ELSE TRY_CAST({q} AS TIMESTAMP) END"
        )
    elif kind == _I and family in ("float", "string"):
        d = f"TRY_CAST({q} AS DOUBLE)"
        typed = f"CASE WHEN isfinite({d}) AND {d} = round({d}) THEN CAST({d} AS BIGINT) END"
    elif kind == _F and family == "string":
        typed = f"TRY_CAST({q} AS DOUBLE)"
    elif kind == _B and family == "string":
        typed = f"TRY_CAST({q} AS BOOLEAN)"
    elif kind == _B and family == "int":
        typed = f"CASE WHEN {q} IN (0, 1) THEN {q} = 1 END"
    if typed is None:  # incompatible type: every non-null value breaks the type rule
        return ColumnRead(f"CAST(NULL AS {target})", f"{q} IS NULL", True)
    return ColumnRead(typed, f"({q} IS NULL OR ({typed}) IS NOT NULL)", True)


def _read_extra(q: str, name: str, duck_type: str) -> str:
    """A column outside the contract: ids as text, zoned stamps as UTC, the rest as stored."""
    if name.endswith("_id"):
        return f"CAST({q} AS VARCHAR)"
    if column_family(duck_type) == "timestamptz":
        return f"timezone('UTC', {q})"
    return q


def scan_sql(path: Path) -> str:
    """A DuckDB subquery reading a table file with contract types: the one reader of tables.

    Contract columns are read as `read_column` reads them (the validator checks exactly these
    expressions); stamps with a UTC offset become naive UTC, independent of the session zone.
    """
    types = describe_raw(path)
    kinds = {c.name: c.kind for c in CONTRACT_COLUMNS.get(path.stem, ())}
    select = []
    for name, duck_type in types.items():
        q = quote_identifier(name)
        if name in kinds:
            expr = read_column(q, column_family(duck_type), kinds[name]).typed
        else:
            expr = _read_extra(q, name, duck_type)
        select.append(f"{expr} AS {q}")
    return f"(SELECT {', '.join(select)} FROM {raw_scan_sql(path)})"


def table_columns(path: Path) -> list[str]:
    """Column names of a table file without reading its rows."""
    return list(describe_raw(path))


def read_manifest(dataset_dir: str | Path) -> dict:
    """The dataset's manifest.json as a dict ({} when there is none); bad JSON is bad input."""
    path = Path(dataset_dir) / "manifest.json"
    if not path.exists():
        return {}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetError(f"{path}: not valid UTF-8 JSON ({error})") from error
    if not isinstance(manifest, dict):
        raise DatasetError(f'{path}: must hold a JSON object such as {{"as_of": "..."}}')
    return manifest


def parse_timestamp(value: object, what: str) -> pd.Timestamp:
    """Any ISO 8601 date or date-time as a naive timestamp; one with an offset or Z is
    converted to UTC (the time model of docs/data-contract.md). `what` names the source."""
    if not isinstance(value, str | pd.Timestamp) or (isinstance(value, str) and not value.strip()):
        raise DatasetError(f"{what}: expected an ISO 8601 date-time, got {value!r}")
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError) as error:
        raise DatasetError(f"{what}: {value!r} is not an ISO 8601 date-time ({error})") from error
    if stamp is pd.NaT:
        raise DatasetError(f"{what}: {value!r} is not an ISO 8601 date-time")
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp


def manifest_as_of(dataset_dir: str | Path) -> pd.Timestamp | None:
    """The manifest's `as_of` as a naive (UTC when it had an offset) timestamp, or None."""
    value = read_manifest(dataset_dir).get("as_of")
    if value is None:
        return None
    return parse_timestamp(value, f"{Path(dataset_dir) / 'manifest.json'}: as_of")


def dataset_as_of(dataset_dir: str | Path) -> pd.Timestamp:
    """When the data was extracted: the manifest's `as_of`, else the latest event time found."""
    as_of = manifest_as_of(dataset_dir)
    if as_of is not None:
        return as_of
    latest: list[pd.Timestamp] = []
    with connect() as con:
        for table, columns in EVENT_TIME_COLUMNS.items():
            path = table_path(dataset_dir, table)
            if path is None:
                continue
            present = set(table_columns(path))
            for column in columns:
                if column in present:
                    with reading(path):
                        value = con.execute(
                            f"SELECT max({quote_identifier(column)}) FROM {scan_sql(path)}"
                        ).fetchall()[0][0]
                    if value is not None:
                        latest.append(pd.Timestamp(value))
    if not latest:
        raise DatasetError(f"cannot tell the as_of date of {dataset_dir}: no event times found")
    return max(latest)


def read_table(
    dataset_dir: str | Path, table: str, columns: list[str] | None = None
) -> pd.DataFrame | None:
    """Read a whole (small) table into pandas with contract types, or None when it is absent.

    Meant for `customers` and other tables that fit in memory; event tables are queried
    through DuckDB instead.
    """
    path = table_path(dataset_dir, table)
    if path is None:
        return None
    select = ", ".join(quote_identifier(c) for c in columns) if columns else "*"
    with connect() as con, reading(path):
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


def _make_dirs(folder: Path) -> list[Path]:
    """mkdir -p that returns the folders it created, deepest last."""
    created = []
    for parent in reversed([folder, *folder.parents]):
        if not parent.exists():
            parent.mkdir()
            created.append(parent)
    return created


def _remove_empty(folders: list[Path]) -> None:
    for folder in reversed(folders):
        with contextlib.suppress(OSError):  # not empty (another run wrote into it): keep it
            folder.rmdir()


def lock_path(folder: str | Path) -> Path:
    """The lock file of an output folder: beside it, so the folder only ever holds outputs."""
    folder = Path(folder)
    return folder.parent / f".{folder.name}.lock"


@contextmanager
def output_lock(folder: str | Path) -> Iterator[None]:
    """Hold an exclusive, non-blocking lock on one output folder for the whole run.

    The lock file is removed on release and any parent folder this run created is removed if
    still empty, so a failed run leaves nothing behind. The OS drops the lock when the process
    dies, so a kill never leaves it stuck; the inode check makes removing the file safe (a run
    that locked a file another run has just removed tries again on the new one).
    """
    from churnml.errors import RunLockedError

    folder = Path(folder)
    created = _make_dirs(folder.parent)
    path = lock_path(folder)
    try:
        while True:
            handle = open(path, "a+")  # noqa: SIM115 - closed below, after the lock is released
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as error:
                handle.close()
                raise RunLockedError(
                    f"another run holds {path} for {folder}; wait for it to finish"
                ) from error
            try:
                same = os.fstat(handle.fileno()).st_ino == path.stat().st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            handle.close()
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            yield
        finally:
            path.unlink(missing_ok=True)
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            handle.close()
    finally:
        if not folder.exists():
            _remove_empty(created)


def publish_folder(target: str | Path, files: dict[str, Callable[[Path], None]]) -> Path:
    """Write a folder of files and publish them together: all of them or none.

    Each `files[name](path)` writes one file into a hidden staging folder beside `target`; only
    when all are written is the staging folder renamed onto `target` (an earlier `target` is
    moved aside first and removed after). A failure at any point leaves the earlier folder as
    it was and no staging folder. Readers see the old set, the new set, or (for the instant
    between the two renames) no folder: never a mix.
    """
    target = Path(target)
    _make_dirs(target.parent)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)  # mkdtemp makes it private; outputs get the usual mode
    try:
        for name, writer in files.items():
            if Path(name).name != name or name.startswith("."):
                raise ValueError(f"publish_folder: {name!r} is not a plain file name")
            writer(staging / name)
        for name in files:
            if not (staging / name).is_file():
                raise OSError(f"publish_folder: the writer of {name} wrote no file")
        _swap_into(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return target


def _swap_into(staging: Path, target: Path) -> None:
    if not target.exists():
        os.rename(staging, target)
        return
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    if old.exists():
        shutil.rmtree(old)
    os.rename(target, old)
    try:
        os.rename(staging, target)
    except OSError:
        os.rename(old, target)  # put the earlier set back
        raise
    shutil.rmtree(old)


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


def output_folder(output_dir: str | Path, dataset: str, production: str, leaf: str) -> Path:
    """An output folder keyed by the dataset that made it: the production dataset keeps
    `<output_dir>/<leaf>`, any other writes to `<output_dir>/dataset=<name>/<leaf>`."""
    if not dataset or "/" in dataset or "\\" in dataset or dataset.startswith("."):
        raise DatasetError(f"data.name {dataset!r} cannot name a folder")
    base = Path(output_dir)
    return base / leaf if dataset == production else base / f"dataset={dataset}" / leaf
