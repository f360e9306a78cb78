"""Fixtures for the feature library: a tiny hand-checked dataset and a random one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from churnml.contract import TRANSFER_KINDS

CUTOFF = pd.Timestamp("2024-04-01")
T = pd.Timestamp


def _frame(rows: list[tuple], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=columns)


def tiny_tables() -> dict[str, pd.DataFrame]:
    """Six customers with hand-made events around the cutoff 2024-04-01 (values in the tests)."""
    customers = _frame(
        [
            ("A", T("2023-04-01"), None, None, "p1", "postpaid", T("2024-05-01"), "north", 1990),
            (
                "B",
                T("2022-01-01"),
                T("2024-03-15"),
                "port_out",
                "p1",
                "prepaid",
                None,
                "north",
                1980,
            ),
            ("C", T("2024-02-01"), None, None, "p1", "prepaid", None, None, None),
            ("D", T("2021-01-01"), None, None, "p0", "postpaid", None, "south", 1970),
            (
                "E",
                T("2020-01-01"),
                T("2024-06-01"),
                "voluntary",
                "p2",
                "postpaid",
                None,
                "south",
                1985,
            ),
            ("F", T("2023-10-01"), None, None, "p1", "prepaid", None, "north", 2000),
        ],
        [
            "customer_id",
            "activated_at",
            "terminated_at",
            "termination_reason",
            "initial_plan_id",
            "payment_type",
            "commitment_end",
            "region",
            "birth_year",
        ],
    )
    customers["terminated_at"] = pd.to_datetime(customers["terminated_at"])
    customers["commitment_end"] = pd.to_datetime(customers["commitment_end"])
    customers["birth_year"] = customers["birth_year"].astype("float64")
    calls = _frame(
        [
            ("A", T("2024-03-30 10:00"), "out", "voice", 120, None, "on_net", None, "B", False),
            ("A", T("2024-03-20 23:00"), "out", "voice", 60, None, "off_net", "OpX", "P1", True),
            ("A", T("2024-02-15 12:00"), "out", "voice", 300, None, "off_net", "OpX", "P1", False),
            ("A", T("2024-03-31 09:00"), "out", "sms", 0, None, "off_net", "OpY", "P2", False),
            ("A", T("2024-03-25 08:00"), "out", "data", 0, 100.0, None, None, None, False),
            ("A", T("2024-03-10 08:00"), "in", "voice", 180, None, "on_net", None, "B", False),
            # at or after the cutoff: never counted
            ("A", T("2024-04-01 00:00"), "out", "voice", 999, None, "off_net", "OpX", "P9", True),
            ("A", T("2024-04-05 00:00"), "out", "voice", 999, None, "on_net", None, "C", False),
            ("E", T("2024-04-02 00:00"), "out", "voice", 999, None, "on_net", None, "A", False),
        ],
        [
            "customer_id",
            "started_at",
            "direction",
            "kind",
            "duration_s",
            "volume_mb",
            "peer_network",
            "peer_operator",
            "peer_id",
            "dropped",
        ],
    )
    transfers = _frame(
        [
            ("A", T("2024-03-25"), "port_out_query", None, None, None, "OpX", None),
            ("A", T("2024-03-28"), "port_out_request", None, None, None, "OpX", None),
            ("A", T("2024-02-01"), "plan_change", "p1", "p2", 20.0, None, None),
            ("A", T("2024-03-01"), "plan_change", "p2", "p3", 15.0, None, None),
            ("A", T("2024-03-05"), "balance_transfer_out", None, None, None, None, 7.5),
            ("A", T("2024-03-06"), "balance_transfer_in", None, None, None, None, 2.5),
            ("A", T("2024-03-10"), "sim_swap", None, None, None, None, None),
            ("A", T("2024-04-02"), "port_out_cancel", None, None, None, "OpX", None),
            ("A", T("2024-04-03"), "plan_change", "p3", "p1", 10.0, None, None),
            ("D", T("2024-01-01"), "plan_change", "p0", "p1", 10.0, None, None),
        ],
        [
            "customer_id",
            "occurred_at",
            "kind",
            "from_plan_id",
            "to_plan_id",
            "monthly_fee",
            "operator",
            "amount",
        ],
    )
    complaints = _frame(
        [
            ("q1", "A", T("2024-03-20"), T("2024-03-22"), "billing", "call_center", 2, 1.0),
            ("q2", "A", T("2024-03-26"), None, "billing", "regulator", 3, None),
            ("q3", "A", T("2024-01-15"), T("2024-01-19"), "network", "online", 1, 4.0),
            ("q4", "A", T("2024-03-28"), T("2024-04-03"), "service", "store", 1, 1.0),
            ("q5", "A", T("2024-04-02"), None, "price", "regulator", 3, None),
        ],
        [
            "complaint_id",
            "customer_id",
            "opened_at",
            "resolved_at",
            "category",
            "channel",
            "severity",
            "satisfaction",
        ],
    )
    complaints["resolved_at"] = pd.to_datetime(complaints["resolved_at"])
    bills = _frame(
        [
            ("b1", "E", T("2023-12-01"), T("2024-01-05"), T("2024-01-20"), 30.0),
            ("b2", "E", T("2024-01-01"), T("2024-02-05"), T("2024-02-20"), 30.0),
            ("b3", "E", T("2024-02-01"), T("2024-03-05"), T("2024-03-20"), 30.0),
            ("b4", "E", T("2024-03-01"), T("2024-03-28"), T("2024-04-12"), 30.0),
            ("b5", "E", T("2024-04-01"), T("2024-04-05"), T("2024-04-20"), 30.0),
        ],
        ["bill_id", "customer_id", "period_start", "issued_at", "due_at", "amount_due"],
    )
    payments = _frame(
        [
            ("y1", "E", T("2024-01-19 10:00"), 30.0, "b1"),
            ("y2", "E", T("2024-03-01 10:00"), 30.0, "b2"),
            ("y3", "E", T("2024-03-30 10:00"), 10.0, "b3"),
            ("y4", "E", T("2024-04-02 10:00"), 80.0, "b3"),
            ("t1", "F", T("2024-03-25"), 10.0, None),
            ("t2", "F", T("2024-03-01"), 20.0, None),
            ("t3", "F", T("2024-02-10"), 20.0, None),
            ("t4", "F", T("2024-04-02"), 50.0, None),
        ],
        ["payment_id", "customer_id", "paid_at", "amount", "bill_id"],
    )
    return {
        "customers": customers,
        "calls": calls,
        "transfers": transfers,
        "complaints": complaints,
        "bills": bills,
        "payments": payments,
    }


def write_tables(tables: dict[str, pd.DataFrame], out: Path, fmt: str = "parquet") -> Path:
    out.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        if fmt == "csv":
            df.to_csv(out / f"{name}.csv", index=False)
        else:
            df.to_parquet(out / f"{name}.parquet", index=False)
    return out


def random_tables(n: int = 60, seed: int = 0) -> dict[str, pd.DataFrame]:
    """A random contract-format dataset spanning 2024-01-01 .. 2024-06-30."""
    rng = np.random.default_rng(seed)
    ids = [f"c{i:03d}" for i in range(n)]
    start = T("2024-01-01")

    def times(k: int) -> pd.Series:
        return start + pd.to_timedelta(rng.integers(0, 181 * 86400, k), unit="s")

    term = [
        None if rng.random() < 0.7 else start + pd.Timedelta(days=int(rng.integers(0, 181)))
        for _ in ids
    ]
    customers = pd.DataFrame(
        {
            "customer_id": ids,
            "activated_at": start - pd.to_timedelta(rng.integers(1, 1500, n), unit="D"),
            "terminated_at": pd.to_datetime(term),
            "termination_reason": [None if t is None else "voluntary" for t in term],
            "initial_plan_id": rng.choice(["p1", "p2", "p3"], n),
            "payment_type": rng.choice(["prepaid", "postpaid"], n),
            "commitment_end": start + pd.to_timedelta(rng.integers(-100, 400, n), unit="D"),
            "region": rng.choice(["north", "south"], n),
            "birth_year": rng.integers(1950, 2005, n).astype("float64"),
        }
    )
    m = n * 60
    kind = rng.choice(["voice", "sms", "data"], m, p=[0.6, 0.2, 0.2])
    net = rng.choice(["on_net", "off_net", "fixed", "international"], m)
    is_data = kind == "data"
    calls = pd.DataFrame(
        {
            "customer_id": rng.choice(ids, m),
            "started_at": times(m),
            "direction": rng.choice(["out", "in"], m),
            "kind": kind,
            "duration_s": np.where(kind == "voice", rng.integers(0, 600, m), 0),
            "volume_mb": np.where(is_data, rng.random(m) * 100, np.nan),
            "peer_network": np.where(is_data, None, net),
            "peer_operator": np.where(
                ~is_data & (net == "off_net"), rng.choice(["OpX", "OpY"], m), None
            ),
            "peer_id": np.where(
                is_data,
                None,
                np.where(net == "on_net", rng.choice(ids, m), rng.choice(["P1", "P2", "P3"], m)),
            ),
            "dropped": rng.random(m) < 0.1,
        }
    )
    k = n * 8
    tk = rng.choice(list(TRANSFER_KINDS), k)
    plan = rng.choice(["p1", "p2", "p3"], k)
    is_plan = tk == "plan_change"
    transfers = pd.DataFrame(
        {
            "customer_id": rng.choice(ids, k),
            "occurred_at": times(k),
            "kind": tk,
            "from_plan_id": np.where(is_plan, rng.choice(["p1", "p2", "p3"], k), None),
            "to_plan_id": np.where(is_plan, plan, None),
            "monthly_fee": np.where(is_plan, rng.integers(5, 40, k).astype(float), np.nan),
            "operator": rng.choice(["OpX", "OpY"], k),
            "amount": np.where(
                np.char.startswith(tk.astype(str), "balance"), rng.random(k) * 10, np.nan
            ),
        }
    )
    k = n * 3
    opened = times(k)
    resolved = opened + pd.to_timedelta(rng.integers(1, 40 * 24, k), unit="h")
    complaints = pd.DataFrame(
        {
            "complaint_id": [f"q{i}" for i in range(k)],
            "customer_id": rng.choice(ids, k),
            "opened_at": opened,
            "resolved_at": resolved.where(rng.random(k) < 0.8),
            "category": rng.choice(
                ["billing", "network", "service", "price", "product", "other"], k
            ),
            "channel": rng.choice(["call_center", "store", "online", "regulator"], k),
            "severity": rng.integers(1, 4, k),
            "satisfaction": np.where(rng.random(k) < 0.7, rng.integers(1, 6, k), np.nan),
        }
    )
    bills, pays = [], []
    for c in ids:
        for mth in range(6):
            ps = start + pd.DateOffset(months=mth)
            issued = ps + pd.Timedelta(days=int(rng.integers(0, 5)))
            due = issued + pd.Timedelta(days=14)
            bid = f"b{c}_{mth}"
            amount = float(rng.integers(10, 60))
            bills.append((bid, c, ps, issued, due, amount))
            if rng.random() < 0.8:
                paid = due + pd.Timedelta(hours=int(rng.integers(-300, 500)))
                pays.append((f"y{bid}", c, paid, amount * rng.choice([0.5, 1.0]), bid))
        for j in range(int(rng.integers(0, 6))):
            pays.append((f"t{c}_{j}", c, times(1)[0], float(rng.integers(5, 30)), None))
    return {
        "customers": customers,
        "calls": calls,
        "transfers": transfers,
        "complaints": complaints,
        "bills": pd.DataFrame(
            bills,
            columns=["bill_id", "customer_id", "period_start", "issued_at", "due_at", "amount_due"],
        ),
        "payments": pd.DataFrame(
            pays, columns=["payment_id", "customer_id", "paid_at", "amount", "bill_id"]
        ),
    }
