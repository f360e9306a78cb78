"""Arrow schemas of the simulated tables and a sink writing them chunk by chunk, atomically."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from churnml import contract
from churnml.io import atomic_path
from churnml.simulate.catalog import ALL_CAUSES

_TS = pa.timestamp("us")
_ARROW_TYPES = {
    contract.STRING: pa.string(),
    contract.TIMESTAMP: _TS,
    contract.INT: pa.int64(),
    contract.FLOAT: pa.float64(),
    contract.BOOL: pa.bool_(),
}


def contract_schema(table: str, version: int = 1) -> pa.Schema:
    """The Arrow schema of a contract table's columns up to contract `version` (days are
    date32, as the contract's "date" columns)."""
    return pa.schema(
        [
            (c.name, pa.date32() if c.doc_type == "date" else _ARROW_TYPES[c.kind])
            for c in contract.CONTRACT[table].columns
            if c.since <= version
        ]
    )


SCHEMAS: dict[str, pa.Schema] = {
    # Version 2: customers carry previous_customer_id (a returning customer).
    **{table: contract_schema(table, version=2) for table in contract.FEATURE_TABLES},
    "truth": pa.schema(
        [
            ("customer_id", pa.string()),
            ("month", _TS),
            ("p_voluntary", pa.float64()),
            ("p_involuntary", pa.float64()),
            ("p_voluntary_recorded", pa.float64()),
            ("main_cause", pa.string()),
            *[(f"hazard_{cause}", pa.float64()) for cause in ALL_CAUSES],
        ]
    ),
    # One row per exit in the window: the true cause, the return hazard and the return
    # (simulate.winback).
    "winback": pa.schema(
        [
            ("customer_id", pa.string()),
            ("terminated_at", pa.date32()),
            ("termination_reason", pa.string()),
            ("exit_cause", pa.string()),
            ("destination_operator", pa.string()),
            ("monthly_fee", pa.float64()),
            ("return_hazard_first_month", pa.float64()),
            ("p_return_3m", pa.float64()),
            ("p_return_6m", pa.float64()),
            ("p_return_12m", pa.float64()),
            ("returned_customer_id", pa.string()),
            ("returned_at", pa.date32()),
        ]
    ),
}
# The contract's optional campaigns table and its truth: written only when campaigns run.
SCHEMAS["campaigns"] = pa.schema(
    [
        ("campaign_id", pa.string()),
        ("customer_id", pa.string()),
        ("assigned_at", _TS),
        ("group", pa.string()),
        ("channel", pa.string()),
        ("offer", pa.string()),
        ("offer_cost", pa.float64()),
        ("contacted_at", _TS),
        ("accepted", pa.bool_()),
    ]
)
SCHEMAS["campaign_truth"] = pa.schema(
    [
        ("campaign_id", pa.string()),
        ("customer_id", pa.string()),
        ("group", pa.string()),
        ("persuadability", pa.string()),
        ("would_be_reached", pa.bool_()),
        ("would_accept", pa.bool_()),
        ("offer", pa.string()),
        ("channel", pa.string()),
        ("months_followed", pa.int64()),
        *[
            (f"{what}_{k}m{suffix}", pa.float64())
            for k in (1, 2, 3)
            for what, suffix in (("p_churn", "_untreated"), ("effect", ""), ("uplift", ""))
        ],
    ]
)
CAMPAIGN_TABLES = ("campaigns", "campaign_truth")
TRUTH_FILE = Path("truth") / "churn_probability.parquet"
CAMPAIGN_TRUTH_FILE = Path("truth") / "campaign_effects.parquet"
TRUTH_FILES = {
    "truth": TRUTH_FILE,
    "winback": Path("truth") / "winback.parquet",
    "campaign_truth": CAMPAIGN_TRUTH_FILE,
}


def table_file(out_dir: Path, name: str) -> Path:
    """Where a table lands in the dataset folder."""
    return out_dir / TRUTH_FILES[name] if name in TRUTH_FILES else out_dir / f"{name}.parquet"


def take_str(values: np.ndarray, codes: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    """Strings looked up by integer code; rows where `null` is true (or code < 0) are null."""
    codes = np.asarray(codes, dtype=np.int64)
    mask = codes < 0 if null is None else (null | (codes < 0))
    safe = np.where(mask, 0, codes)
    dictionary = values if isinstance(values, pa.Array) else pa.array(values, pa.string())
    return dictionary.take(pa.array(safe, mask=mask))


def to_ts(seconds: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    """Naive microsecond timestamps from seconds since 1970-01-01."""
    return pa.array(np.asarray(seconds, dtype=np.int64) * 1_000_000, _TS, mask=null)


def to_date(days: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    """date32 from days since 1970-01-01."""
    return pa.array(np.asarray(days, dtype=np.int32), pa.date32(), mask=null)


def to_float(values: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    return pa.array(np.asarray(values, dtype=np.float64), pa.float64(), mask=null)


def to_int(values: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    return pa.array(np.asarray(values, dtype=np.int64), pa.int64(), mask=null)


def prefixed_ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """Ids such as C0000042: a prefix and a zero-padded number, built in Arrow."""
    import pyarrow.compute as pc

    digits = pc.utf8_lpad(
        pa.array(np.asarray(numbers, dtype=np.int64)).cast(pa.string()), width, "0"
    )
    return pc.binary_join_element_wise(pa.scalar(prefix), digits, pa.scalar(""))


class DatasetSink:
    """Open Parquet writers, one per table; each `write` adds row groups to one table."""

    def __init__(self, writers: dict[str, pq.ParquetWriter]) -> None:
        self._writers = writers
        self.row_counts = dict.fromkeys(writers, 0)

    def write(self, name: str, columns: dict[str, pa.Array]) -> None:
        schema = SCHEMAS[name]
        table = pa.Table.from_arrays([columns[f.name] for f in schema], schema=schema)
        if table.num_rows:
            self._writers[name].write_table(table)
            self.row_counts[name] += table.num_rows


@contextmanager
def open_sink(out_dir: Path, tables: list[str] | None = None) -> Iterator[DatasetSink]:
    """Writers on temporary files, renamed onto their final names only if the block succeeds.

    `tables` names the tables to write (default: every one in SCHEMAS).
    """
    with ExitStack() as stack:
        writers: dict[str, pq.ParquetWriter] = {}
        try:
            for name, schema in SCHEMAS.items():
                if tables is not None and name not in tables:
                    continue
                tmp = stack.enter_context(atomic_path(table_file(out_dir, name)))
                writers[name] = pq.ParquetWriter(tmp, schema, compression="snappy")
            yield DatasetSink(writers)
        finally:
            for writer in writers.values():
                writer.close()
