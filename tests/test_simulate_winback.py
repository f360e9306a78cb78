"""The simulator's win-backs: returners are new subscriptions that name the old one, the
truth records every exit's return probability, and the other customers' tables do not move."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnml.simulate import SimulationParams, simulate_dataset

SMALL = {"n_customers": 800, "n_months": 12, "chunk_size": 400, "seed": 5, "calls_per_month": 8.0}


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("winback")
    on = simulate_dataset(SimulationParams(winback_rate=0.15, **SMALL), root / "on")
    off = simulate_dataset(SimulationParams(winback_rate=0.0, **SMALL), root / "off")
    return on, off


def test_returners_name_an_earlier_subscription_that_had_ended(pair):
    on, _ = pair
    customers = pd.read_parquet(on / "customers.parquet")
    back = customers[customers["previous_customer_id"].notna()]
    assert len(back) > 10
    assert customers["customer_id"].is_unique
    previous = customers.set_index("customer_id").loc[back["previous_customer_id"]]
    assert back["previous_customer_id"].isin(customers["customer_id"]).all()
    ended = pd.to_datetime(previous["terminated_at"]).to_numpy()
    assert (ended < pd.to_datetime(back["activated_at"]).to_numpy()).all()
    # The same person: region, birth year and payment type carry over.
    for column in ("region", "birth_year", "gender", "payment_type"):
        same = previous[column].to_numpy() == back[column].to_numpy()
        both_null = previous[column].isna().to_numpy() & back[column].isna().to_numpy()
        assert (same | both_null).all(), column
    # A returner is a subscription like any other: it has calls.
    calls = pd.read_parquet(on / "calls.parquet", columns=["customer_id"])
    assert back["customer_id"].isin(calls["customer_id"]).mean() > 0.8


def test_truth_records_every_exit_and_its_return(pair):
    on, _ = pair
    customers = pd.read_parquet(on / "customers.parquet")
    truth = pd.read_parquet(on / "truth" / "winback.parquet")
    ended = customers[customers["terminated_at"].notna()]
    assert set(truth["customer_id"]) == set(ended["customer_id"])
    assert truth["customer_id"].is_unique
    back = customers[customers["previous_customer_id"].notna()]
    returned = truth.dropna(subset=["returned_customer_id"])
    assert dict(zip(returned["customer_id"], returned["returned_customer_id"], strict=True)) == (
        dict(zip(back["previous_customer_id"], back["customer_id"], strict=True))
    )
    assert (truth["p_return_3m"] <= truth["p_return_6m"]).all()
    assert (truth["p_return_6m"] <= truth["p_return_12m"]).all()
    # Cause, reason and destination shape the return: non-payment hardly ever comes back,
    # the low-cost brand's new customers most of the port-outs.
    mean = truth.groupby("termination_reason")["p_return_6m"].mean()
    assert mean["non_payment"] < 0.2 * mean["voluntary"]
    ports = truth[truth["termination_reason"] == "port_out"]
    by_destination = ports.groupby("destination_operator")["p_return_6m"].mean()
    assert by_destination["PulseCom"] > by_destination["OrbitMobile"]
    by_cause = truth.groupby("exit_cause")["p_return_6m"].mean()
    assert by_cause["competitor"] > by_cause["billing_arrears"]


def test_returns_leave_the_other_customers_tables_as_they_were(pair):
    on, off = pair
    for table in ("calls", "transfers", "bills", "payments"):
        a = pd.read_parquet(on / f"{table}.parquet")
        b = pd.read_parquet(off / f"{table}.parquet")
        original = a["customer_id"].str.len() == b["customer_id"].str.len().max()
        kept = a[original.to_numpy()].drop(
            columns=[c for c in a if c.endswith("_id") and c != "customer_id"]
        )
        pd.testing.assert_frame_equal(
            kept.reset_index(drop=True),
            b.drop(columns=[c for c in b if c.endswith("_id") and c != "customer_id"]),
        )
    off_customers = pd.read_parquet(off / "customers.parquet")
    assert off_customers["previous_customer_id"].isna().all()
    assert len(off_customers) == SMALL["n_customers"]
    assert np.isclose(pd.read_parquet(off / "truth" / "winback.parquet")["p_return_12m"], 0).all()
