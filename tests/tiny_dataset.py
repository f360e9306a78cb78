"""A tiny, valid, hand-written raw dataset (data contract v2), and ways to break it rule by rule.

`write_tiny_dataset(path, fmt)` writes every contract table plus manifest.json. `BROKEN_RULES`
has one entry per contract rule: `mutate(path)` edits a written tiny dataset (Parquet or CSV) so
that exactly that rule is broken, by `n_rows` rows. The columns and their types come from
`churnml.contract`; the rules each mutation breaks are named here by hand, so that a rule the
validator adds, drops or renames fails the coverage test.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from churnml.contract import CONTRACT

AS_OF = "2024-06-30T00:00:00"
AFTER_AS_OF = pd.Timestamp("2024-07-01 09:00:00")

TS = pd.Timestamp
NA = None


def _customers() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ["C1", "C2", "C3", "C4", "C5", "C6"],
            "activated_at": [
                TS("2022-01-15"),
                TS("2021-06-01"),
                TS("2023-02-01"),
                TS("2020-09-09"),
                TS("2023-11-20"),
                TS("2024-06-01"),
            ],
            "terminated_at": [NA, TS("2024-03-10"), NA, TS("2024-05-01"), NA, NA],
            "termination_reason": [NA, "port_out", NA, "voluntary", NA, NA],
            "initial_plan_id": ["P1", "P2", "P1", "P3", "P2", "P1"],
            "payment_type": ["postpaid", "prepaid", "prepaid", "postpaid", "postpaid", "prepaid"],
            "commitment_end": [TS("2024-12-31"), NA, NA, TS("2023-09-09"), NA, NA],
            "region": ["north", NA, "south", "north", "south", NA],
            "birth_year": pd.array([1980, NA, 1995, 1970, 2001, NA], dtype="Int64"),
            "gender": ["F", "M", "U", NA, "F", "M"],
            # C6 is C4 come back: C4 left on 2024-05-01, C6 started on 2024-06-01.
            "previous_customer_id": [NA, NA, NA, NA, NA, "C4"],
        }
    )


def _calls() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ["C1", "C1", "C1", "C2", "C3", "C3", "C4", "C5"],
            "started_at": [
                TS("2024-06-01 10:00:00"),
                TS("2024-06-01 10:05:00"),
                TS("2024-06-02 08:00:00"),
                TS("2024-03-01 19:30:00"),
                TS("2024-06-20 12:00:00"),
                TS("2024-06-21 07:15:00"),
                TS("2024-04-11 22:01:00"),
                TS("2024-06-29 23:59:00"),
            ],
            "direction": ["out", "out", "out", "in", "out", "out", "in", "out"],
            "kind": ["voice", "sms", "data", "voice", "voice", "data", "sms", "voice"],
            "duration_s": [120, 0, 0, 30, 600, 0, 0, 45],
            "volume_mb": [NA, NA, 12.5, NA, NA, 0.0, NA, NA],
            "peer_network": [
                "on_net",
                "off_net",
                NA,
                "fixed",
                "international",
                NA,
                "off_net",
                "on_net",
            ],
            "peer_operator": [NA, "beta", NA, NA, NA, NA, "gamma", NA],
            "peer_id": ["Pa", "Pb", NA, "Pc", "Pd", NA, "Pe", "Pa"],
            "dropped": [False, False, False, True, False, False, False, False],
        }
    )


def _transfers() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ["C1", "C2", "C2", "C3", "C4", "C5"],
            "occurred_at": [
                TS("2023-05-01 09:00:00"),
                TS("2024-03-01 11:00:00"),
                TS("2024-03-05 11:00:00"),
                TS("2024-06-15 18:00:00"),
                TS("2024-01-03 10:00:00"),
                TS("2024-06-16 18:00:00"),
            ],
            "kind": [
                "plan_change",
                "port_out_query",
                "port_out_request",
                "balance_transfer_out",
                "sim_swap",
                "balance_transfer_in",
            ],
            "from_plan_id": ["P1", NA, NA, NA, NA, NA],
            "to_plan_id": ["P2", NA, NA, NA, NA, NA],
            "monthly_fee": [25.0, NA, NA, NA, NA, NA],
            "operator": [NA, "beta", "beta", NA, NA, NA],
            "amount": [NA, NA, NA, 5.0, NA, 2.5],
        }
    )


def _complaints() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "complaint_id": ["K1", "K2", "K3", "K4"],
            "customer_id": ["C1", "C2", "C4", "C5"],
            "opened_at": [
                TS("2024-05-02 09:00:00"),
                TS("2024-02-20 15:00:00"),
                TS("2024-04-01 10:00:00"),
                TS("2024-06-10 16:00:00"),
            ],
            "resolved_at": [
                TS("2024-05-04 12:00:00"),
                NA,
                TS("2024-04-03 10:00:00"),
                TS("2024-06-11 09:00:00"),
            ],
            "category": ["billing", "network", "price", "service"],
            "channel": ["call_center", "online", "store", "regulator"],
            "severity": [2, 3, 1, 2],
            "satisfaction": pd.array([4, NA, NA, 5], dtype="Int64"),
        }
    )


def _bills() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "bill_id": ["B1", "B2", "B3", "B4"],
            "customer_id": ["C1", "C1", "C4", "C5"],
            "period_start": [
                TS("2024-04-01"),
                TS("2024-05-01"),
                TS("2024-03-01"),
                TS("2024-05-01"),
            ],
            "issued_at": [TS("2024-05-01"), TS("2024-06-01"), TS("2024-04-01"), TS("2024-06-01")],
            # B2's due date lies after as_of: a promise about the future, allowed.
            "due_at": [TS("2024-05-15"), TS("2024-07-15"), TS("2024-04-15"), TS("2024-06-15")],
            "amount_due": [30.0, 30.0, 0.0, 45.5],
        }
    )


def _payments() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "payment_id": ["Y1", "Y2", "Y3", "Y4"],
            "customer_id": ["C1", "C3", "C2", "C5"],
            "paid_at": [
                TS("2024-05-10 08:00:00"),
                TS("2024-06-10 08:00:00"),
                TS("2024-02-01 08:00:00"),
                TS("2024-06-12 08:00:00"),
            ],
            "amount": [30.0, 10.0, 5.0, 45.5],
            "bill_id": ["B1", NA, NA, "B4"],
        }
    )


def _campaigns() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "campaign_id": ["K1", "K1", "K1", "K2"],
            "customer_id": ["C1", "C3", "C5", "C1"],
            "assigned_at": [
                TS("2024-05-01 00:00:00"),
                TS("2024-05-01 00:00:00"),
                TS("2024-05-01 00:00:00"),
                TS("2024-06-01 00:00:00"),
            ],
            "group": ["treatment", "control", "treatment", "treatment"],
            "channel": ["call_center", NA, "sms", "app"],
            "offer": ["discount", NA, "loyalty_points", "plan_upgrade"],
            "offer_cost": [20.0, NA, 5.0, 0.0],
            # C3 is in the control group (never contacted); C5 was not reached.
            "contacted_at": [TS("2024-05-03 10:00:00"), NA, NA, TS("2024-06-02 09:00:00")],
            "accepted": [True, NA, NA, False],
        }
    )


TINY_TABLES: dict[str, Callable[[], pd.DataFrame]] = {
    "customers": _customers,
    "calls": _calls,
    "transfers": _transfers,
    "complaints": _complaints,
    "bills": _bills,
    "payments": _payments,
    "campaigns": _campaigns,
}


def _write(df: pd.DataFrame, path: Path) -> None:
    if path.suffix == ".parquet":
        df.to_parquet(path, index=False)
    else:
        df.to_csv(path, index=False)


def write_tiny_dataset(path: Path, fmt: str = "parquet") -> Path:
    """Write the tiny valid dataset (six tables + manifest.json) into folder `path`."""
    if fmt not in ("parquet", "csv"):
        raise ValueError(f"fmt must be parquet or csv, not {fmt!r}")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for table, make in TINY_TABLES.items():
        _write(make(), path / f"{table}.{fmt}")
    (path / "manifest.json").write_text(json.dumps({"as_of": AS_OF}))
    return path


# ---------------------------------------------------------------------------------------------
# Editing a written dataset


def _table_file(path: Path, table: str) -> Path:
    for suffix in (".parquet", ".csv"):
        file = Path(path) / f"{table}{suffix}"
        if file.exists():
            return file
    raise FileNotFoundError(f"no {table} table in {path}")


def _read(file: Path) -> pd.DataFrame:
    if file.suffix == ".parquet":
        return pd.read_parquet(file)
    quoted = str(file).replace("'", "''")
    with duckdb.connect() as con:
        return con.execute(f"SELECT * FROM read_csv('{quoted}', header=true)").df()


def _edit(table: str, change: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Path], None]:
    """A mutation: read `table` of a written dataset, apply `change`, write it back in place."""

    def mutate(path: Path) -> None:
        file = _table_file(path, table)
        _write(change(_read(file).copy()), file)

    return mutate


def _set(column: str, row: int, value) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(df: pd.DataFrame) -> pd.DataFrame:
        values = df[column].astype(object).tolist()
        values[row] = value
        df[column] = pd.Series(values, index=df.index, dtype=object)
        if all(isinstance(v, pd.Timestamp) or v is None or v is pd.NaT for v in values):
            df[column] = pd.to_datetime(df[column])
        return df

    return change


def _drop(column: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    return lambda df: df.drop(columns=[column])


def _text(value) -> str | None:
    if value is None or value is pd.NaT or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def _garbage(column: str, row: int, junk: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """Store the column as text and make one value unreadable as the column's type."""

    def change(df: pd.DataFrame) -> pd.DataFrame:
        values = [_text(v) for v in df[column].astype(object).tolist()]
        values[row] = junk
        df[column] = pd.Series(values, index=df.index, dtype=object)
        return df

    return change


def _as_booleans(column: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """Turn a string column into a boolean one (not a string type, in Parquet and CSV alike)."""

    def change(df: pd.DataFrame) -> pd.DataFrame:
        values = [None if _text(v) is None else i % 2 == 0 for i, v in enumerate(df[column])]
        df[column] = pd.Series(values, index=df.index, dtype=object)
        return df

    return change


# ---------------------------------------------------------------------------------------------
# The contract's columns: (column, type, required) per table; required = present and never null.

COLUMNS: dict[str, list[tuple[str, str, bool]]] = {
    name: [(c.name, c.kind, c.required) for c in table.columns] for name, table in CONTRACT.items()
}

# A row whose emptying or type damage breaks no other rule: in customers, C6 has no events.
SAFE_ROW = {
    "customers": 5,
    "calls": 0,
    "transfers": 0,
    "complaints": 0,
    "bills": 0,
    "payments": 0,
    "campaigns": 0,
}
# Rows to damage per (table, column) when SAFE_ROW's value is null or would break another rule.
TYPE_ROW = {
    ("customers", "terminated_at"): 1,
    ("customers", "commitment_end"): 0,
    ("customers", "birth_year"): 0,
    ("calls", "volume_mb"): 2,  # a data session (volume on another kind breaks a rule)
    ("transfers", "monthly_fee"): 0,
    ("transfers", "amount"): 3,
    ("complaints", "resolved_at"): 0,
    ("complaints", "satisfaction"): 0,
    ("campaigns", "offer_cost"): 0,
}
JUNK = {"timestamp": "not a date", "int": "lots", "float": "lots", "bool": "maybe"}
UNIQUE = {
    name: column.name
    for name, table in CONTRACT.items()
    for column in table.columns
    if column.unique
}


@dataclass(frozen=True)
class BrokenRule:
    """A mutation of the tiny dataset that breaks exactly one contract rule, by `n_rows` rows."""

    id: str
    table: str
    column: str
    rule: str
    mutate: Callable[[Path], None]
    n_rows: int = 1


def _broken_rules() -> list[BrokenRule]:
    out: list[BrokenRule] = []

    def add(table: str, column: str, rule: str, change, n_rows: int = 1, tag: str = "") -> None:
        slug = rule.replace(" ", "_").replace(",", "").replace(">=", "ge").replace(">", "gt")
        ident = f"{table}.{column}.{slug}" + (f".{tag}" if tag else "")
        out.append(BrokenRule(ident, table, column, rule, _edit(table, change), n_rows))

    for table, columns in COLUMNS.items():
        n_table = len(TINY_TABLES[table]())
        frame = TINY_TABLES[table]()
        for column, kind, required in columns:
            if required:
                add(table, column, "required column present", _drop(column), n_table)
                add(table, column, "not null", _set(column, SAFE_ROW[table], None))
            if kind == "string":
                n_values = int(frame[column].notna().sum())
                add(table, column, "type string", _as_booleans(column), n_values)
            else:
                row = TYPE_ROW.get((table, column), SAFE_ROW[table])
                add(table, column, f"type {kind}", _garbage(column, row, JUNK[kind]))
        id_column = UNIQUE.get(table)
        if id_column:
            first = frame[id_column].iloc[0]
            add(table, id_column, "unique", _set(id_column, SAFE_ROW[table] or 1, first), 2)
        if table != "customers":
            add(table, "customer_id", "present in customers", _set("customer_id", 0, "C99"))

    # Allowed values (row chosen so that no conditional rule on another column trips).
    for table, column, row, rule in [
        ("customers", "termination_reason", 1, "one of voluntary, port_out, non_payment, other"),
        ("customers", "payment_type", 0, "one of prepaid, postpaid"),
        ("customers", "gender", 0, "one of F, M, U"),
        ("calls", "direction", 0, "one of out, in"),
        ("calls", "kind", 0, "one of voice, sms, data"),
        ("calls", "peer_network", 0, "one of on_net, off_net, fixed, international"),
        (
            "transfers",
            "kind",
            4,
            "one of port_out_query, port_out_request, port_out_cancel, plan_change, "
            "ownership_change, sim_swap, balance_transfer_out, balance_transfer_in",
        ),
        ("complaints", "category", 0, "one of billing, network, service, price, product, other"),
        ("complaints", "channel", 0, "one of call_center, store, online, regulator"),
        ("campaigns", "group", 0, "one of treatment, control"),
        ("campaigns", "channel", 0, "one of call_center, sms, email, store, app"),
    ]:
        add(table, column, rule, _set(column, row, "bogus"))

    # Ranges.
    for table, column, row, value, rule in [
        ("customers", "birth_year", 0, 1850, "between 1900 and 2015"),
        ("calls", "duration_s", 0, -5, ">= 0"),
        ("calls", "volume_mb", 2, -1.0, ">= 0"),
        ("transfers", "monthly_fee", 0, -10.0, ">= 0"),
        ("transfers", "amount", 3, -1.0, ">= 0"),
        ("complaints", "severity", 0, 4, "between 1 and 3"),
        ("complaints", "satisfaction", 0, 6, "between 1 and 5"),
        ("bills", "amount_due", 0, -1.0, ">= 0"),
        ("payments", "amount", 0, 0.0, "> 0"),
        ("campaigns", "offer_cost", 0, -1.0, ">= 0"),
    ]:
        add(table, column, rule, _set(column, row, value))
    add("customers", "birth_year", "between 1900 and 2015", _set("birth_year", 2, 2020), tag="late")

    # Amounts, durations and volumes: finite and within the plausible ranges (settings).
    for table, column, row in [
        ("calls", "volume_mb", 2),
        ("transfers", "monthly_fee", 0),
        ("transfers", "amount", 3),
        ("bills", "amount_due", 0),
        ("payments", "amount", 0),
        ("campaigns", "offer_cost", 0),
    ]:
        add(table, column, "finite (no inf or nan)", _set(column, row, float("inf")))
    for table, column, row, value, rule in [
        ("calls", "duration_s", 0, 100_000, "<= 86,400 (validation.max_call_duration_s)"),
        ("calls", "volume_mb", 2, 2e6, "<= 1,000,000 (validation.max_volume_mb)"),
        ("transfers", "monthly_fee", 0, 1e300, "<= 1,000,000 (validation.max_amount)"),
        ("transfers", "amount", 3, 1e7, "<= 1,000,000 (validation.max_amount)"),
        ("bills", "amount_due", 0, 1e300, "<= 1,000,000 (validation.max_amount)"),
        ("payments", "amount", 0, 2e6, "<= 1,000,000 (validation.max_amount)"),
        ("campaigns", "offer_cost", 0, 2e6, "<= 1,000,000 (validation.max_amount)"),
    ]:
        add(table, column, rule, _set(column, row, value))

    # Timestamp order.
    add("customers", "terminated_at", ">= activated_at", _set("terminated_at", 1, TS("2021-01-01")))
    add("complaints", "resolved_at", ">= opened_at", _set("resolved_at", 0, TS("2024-05-01")))
    add("bills", "due_at", ">= issued_at", _set("due_at", 0, TS("2024-04-20")))
    add("campaigns", "contacted_at", ">= assigned_at", _set("contacted_at", 0, TS("2024-04-01")))

    # A campaign assigns a customer once; its control group is never contacted, and only a
    # contacted customer can accept the offer.
    add("campaigns", "customer_id", "unique within campaign_id", _set("customer_id", 2, "C1"), 2)
    add(
        "campaigns",
        "contacted_at",
        "null for control rows",
        _set("contacted_at", 1, TS("2024-05-02")),
    )
    add("campaigns", "accepted", "null when not contacted", _set("accepted", 2, True))

    # A returning customer's earlier subscription exists and had ended when the new one began.
    add(
        "customers",
        "previous_customer_id",
        "present in customers",
        _set("previous_customer_id", 5, "C99"),
    )
    add(
        "customers",
        "previous_customer_id",
        "the earlier subscription ended by activated_at",
        _set("previous_customer_id", 5, "C1"),
    )

    # termination_reason is null exactly when terminated_at is null.
    iff = "null iff terminated_at is null"
    add(
        "customers", "termination_reason", iff, _set("termination_reason", 0, "other"), tag="active"
    )
    add(
        "customers",
        "termination_reason",
        iff,
        _set("termination_reason", 1, None),
        tag="terminated",
    )

    # Conditional rules of calls, and the first day of a billed month.
    add("calls", "duration_s", "0 for sms and data", _set("duration_s", 1, 30))
    add("calls", "volume_mb", "null unless kind is data", _set("volume_mb", 0, 3.0))
    add("calls", "peer_network", "null for data", _set("peer_network", 2, "on_net"))
    add("bills", "period_start", "first day of a month", _set("period_start", 0, TS("2024-04-15")))

    # Nothing after as_of, for each event-time column.
    for table, column, row in [
        ("customers", "activated_at", 5),
        ("customers", "terminated_at", 1),
        ("calls", "started_at", 0),
        ("transfers", "occurred_at", 0),
        ("complaints", "opened_at", 1),
        ("complaints", "resolved_at", 0),
        ("bills", "issued_at", 1),
        ("payments", "paid_at", 0),
        ("campaigns", "assigned_at", 1),
        ("campaigns", "contacted_at", 0),
    ]:
        add(table, column, "not after as_of", _set(column, row, AFTER_AS_OF))
    return out


BROKEN_RULES: list[BrokenRule] = _broken_rules()


# A customer whose data volumes (MB, 2 decimals) make the data trend exactly 17/128 =
# 0.1328125, half a unit of the 6th decimal: found at 200k subscribers (customer C0176153 of
# benchmarks/bench_spark.py), where float sums in different orders rounded to either side
# (0.132812 on one engine or run, 0.132813 on the other). Last 30 days: 304.50 MB in 9 sessions;
# the 60 days before: 466.20 MB in 13 (exact: (304.5 - 233.1) / (304.5 + 233.1) = 17 / 128).
BOUNDARY_CUTOFF = pd.Timestamp("2024-07-01")
BOUNDARY_MB_30D = (8.34, 24.97, 24.62, 15.22, 154.66, 33.59, 27.72, 6.64, 8.74)
BOUNDARY_MB_PREV60D = (
    37.68, 20.04, 18.63, 8.25, 29.89, 40.7, 55.09, 60.67, 8.87, 128.55, 33.19, 18.17, 6.47,
)  # fmt: skip


def write_boundary_dataset(path: Path, order: list[int]) -> Path:
    """The one-customer dataset of the rounding boundary above, its 22 data sessions written in
    `order` (a permutation of range(22)): the row order a single-threaded sum follows."""
    volumes = [*BOUNDARY_MB_30D, *BOUNDARY_MB_PREV60D]
    # 30-day sessions 1..9 days before the cutoff; the 60 days before: 31..43 days before.
    days = [*range(1, 10), *range(31, 31 + len(BOUNDARY_MB_PREV60D))]
    rows = [
        {
            "customer_id": "X1",
            "started_at": BOUNDARY_CUTOFF - pd.Timedelta(days=d, hours=3),
            "direction": "out",
            "kind": "data",
            "duration_s": 0,
            "volume_mb": volumes[i],
            "peer_network": None,
            "peer_operator": None,
            "peer_id": None,
            "dropped": False,
        }
        for i, d in enumerate(days)
    ]
    customers = pd.DataFrame(
        {
            "customer_id": ["X1"],
            "activated_at": [pd.Timestamp("2023-01-01")],
            "terminated_at": [pd.NaT],
            "termination_reason": [None],
            "initial_plan_id": ["P1"],
            "payment_type": ["prepaid"],
            "commitment_end": [pd.NaT],
            "region": ["north"],
            "birth_year": [1980],
            "gender": ["F"],
        }
    )
    path.mkdir(parents=True, exist_ok=True)
    customers.to_parquet(path / "customers.parquet", index=False)
    calls = pd.DataFrame([rows[i] for i in order])
    for column in ("peer_network", "peer_operator", "peer_id"):
        calls[column] = calls[column].astype("string")
    calls.to_parquet(path / "calls.parquet", index=False)
    return path
