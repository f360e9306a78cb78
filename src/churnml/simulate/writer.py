"""Arrow schemas of the simulated tables and a sink writing them chunk by chunk, atomically."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from churnml.io import atomic_path
from churnml.simulate.catalog import ALL_CAUSES

_TS = pa.timestamp("us")

SCHEMAS: dict[str, pa.Schema] = {
    "customers": pa.schema(
        [
            ("customer_id", pa.string()),
            ("activated_at", pa.date32()),
            ("terminated_at", pa.date32()),
            ("termination_reason", pa.string()),
            ("initial_plan_id", pa.string()),
            ("payment_type", pa.string()),
            ("commitment_end", pa.date32()),
            ("region", pa.string()),
            ("birth_year", pa.int64()),
            ("gender", pa.string()),
        ]
    ),
    "calls": pa.schema(
        [
            ("customer_id", pa.string()),
            ("started_at", _TS),
            ("direction", pa.string()),
            ("kind", pa.string()),
            ("duration_s", pa.int64()),
            ("volume_mb", pa.float64()),
            ("peer_network", pa.string()),
            ("peer_operator", pa.string()),
            ("peer_id", pa.string()),
            ("dropped", pa.bool_()),
        ]
    ),
    "transfers": pa.schema(
        [
            ("customer_id", pa.string()),
            ("occurred_at", _TS),
            ("kind", pa.string()),
            ("from_plan_id", pa.string()),
            ("to_plan_id", pa.string()),
            ("monthly_fee", pa.float64()),
            ("operator", pa.string()),
            ("amount", pa.float64()),
        ]
    ),
    "complaints": pa.schema(
        [
            ("complaint_id", pa.string()),
            ("customer_id", pa.string()),
            ("opened_at", _TS),
            ("resolved_at", _TS),
            ("category", pa.string()),
            ("channel", pa.string()),
            ("severity", pa.int64()),
            ("satisfaction", pa.int64()),
        ]
    ),
    "bills": pa.schema(
        [
            ("bill_id", pa.string()),
            ("customer_id", pa.string()),
            ("period_start", pa.date32()),
            ("issued_at", pa.date32()),
            ("due_at", pa.date32()),
            ("amount_due", pa.float64()),
        ]
    ),
    "payments": pa.schema(
        [
            ("payment_id", pa.string()),
            ("customer_id", pa.string()),
            ("paid_at", _TS),
            ("amount", pa.float64()),
            ("bill_id", pa.string()),
        ]
    ),
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


def table_file(out_dir: Path, name: str) -> Path:
    """Where a table lands in the dataset folder."""
    if name == "truth":
        return out_dir / TRUTH_FILE
    if name == "campaign_truth":
        return out_dir / CAMPAIGN_TRUTH_FILE
    return out_dir / f"{name}.parquet"


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
