"""The time-to-churn model: person-period rows and censoring, known hazards recovered,
monotone curves, lifetime value and the value segment, the survival measures."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from churnml.config import HazardConfig
from churnml.hazard import (
    DAYS_PER_MONTH,
    PersonPeriods,
    churn_probabilities,
    discount_factors,
    downsample,
    expected_remaining_months,
    fit_hazard,
    kaplan_meier_hazards,
    lifetime_value,
    lifetime_value_at_risk,
    person_periods,
    survival_at,
    survival_from_hazards,
)
from churnml.hazard_eval import concordance_td, evaluate_curves, integrated_brier, outcomes
from churnml.hazard_job import SEGMENTS, rank_by_value_at_risk, time_to_churn_columns

REASONS = ("voluntary", "port_out")
CUTS = [0.01, 0.05, 0.2]


def _customers(rows: list[tuple[str, str | None, str | None]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": [r[0] for r in rows],
            "terminated_at": pd.to_datetime([r[1] for r in rows]),
            "termination_reason": [r[2] for r in rows],
        }
    )


def _pp_table(pp, keys) -> dict[str, list[tuple[int, int, float]]]:
    out: dict[str, list[tuple[int, int, float]]] = {}
    for row, month, event, weight in zip(pp.row, pp.month, pp.event, pp.weight, strict=True):
        out.setdefault(keys["customer_id"].iloc[row], []).append(
            (int(month), int(event), float(weight))
        )
    return {k: sorted(v) for k, v in out.items()}


# --- censoring ---------------------------------------------------------------------------------


def test_censored_months_are_neither_survivals_nor_exits():
    """Censored at 2025-04-15: January to March are observed, April is not (it ends May 1).

    Fails if a month after the censoring date is counted as survived (A would get month 4), if
    an exit after it is counted (D would show an exit), if a month partly observed counts (C),
    or if a customer keeps months after leaving (B, E)."""
    customers = _customers(
        [
            ("A", None, None),  # still there
            ("B", "2025-02-10", "voluntary"),  # leaves in month 2
            ("C", "2025-04-10", "port_out"),  # leaves in month 4, which is not wholly observed
            ("D", "2025-06-01", "voluntary"),  # leaves after the censoring date: not seen
            ("E", "2025-02-10", "non_payment"),  # another exit: half a month at risk, no exit
        ]
    )
    keys = pd.DataFrame({"customer_id": list("ABCDE"), "cutoff": pd.Timestamp("2025-01-01")})
    pp = person_periods(keys, customers, pd.Timestamp("2025-04-15"), 12, REASONS)
    assert _pp_table(pp, keys) == {
        "A": [(1, 0, 1.0), (2, 0, 1.0), (3, 0, 1.0)],
        "B": [(1, 0, 1.0), (2, 1, 1.0)],
        "C": [(1, 0, 1.0), (2, 0, 1.0), (3, 0, 1.0)],
        "D": [(1, 0, 1.0), (2, 0, 1.0), (3, 0, 1.0)],
        "E": [(1, 0, 1.0), (2, 0, 0.5)],
    }


def test_rows_before_a_censoring_date_do_not_depend_on_what_happens_after_it():
    """Point in time: the person-period rows of a fold censored at T are the same whatever the
    data say after T (exits moved, reasons changed)."""
    rng = np.random.default_rng(3)
    n = 400
    ids = [f"c{i}" for i in range(n)]
    exits = pd.Timestamp("2024-03-01") + pd.to_timedelta(rng.integers(0, 700, n), unit="D")
    reasons = rng.choice(["voluntary", "port_out", "non_payment"], n)
    customers = _customers(list(zip(ids, exits.astype(str), reasons, strict=True)))
    keys = pd.DataFrame(
        {
            "customer_id": ids * 3,
            "cutoff": np.repeat(pd.to_datetime(["2024-02-01", "2024-05-01", "2024-08-01"]), n),
        }
    )
    keys = keys.join(customers.set_index("customer_id")["terminated_at"], on="customer_id")
    keys = keys[keys["terminated_at"] > keys["cutoff"]].drop(columns="terminated_at")
    censor = pd.Timestamp("2024-10-01")
    before = person_periods(keys, customers, censor, 12, REASONS)
    later = customers["terminated_at"] > censor
    changed = customers.copy()
    changed.loc[later, "terminated_at"] = changed.loc[later, "terminated_at"] + pd.Timedelta(
        days=45
    )
    changed.loc[later, "termination_reason"] = "voluntary"
    after = person_periods(keys, changed, censor, 12, REASONS)
    for name in ("row", "month", "event", "weight"):
        np.testing.assert_array_equal(getattr(before, name), getattr(after, name))


def test_kaplan_meier_recovers_a_constant_hazard_under_heavy_censoring():
    rng = np.random.default_rng(11)
    n, h = 20_000, 0.04
    cutoffs = pd.to_datetime(rng.choice(pd.date_range("2024-01-01", periods=10, freq="MS"), n))
    months_to_exit = rng.geometric(h, n)  # the month of the exit, 1-based
    exit_at = pd.DatetimeIndex(cutoffs) + pd.to_timedelta(
        (months_to_exit - 1) * DAYS_PER_MONTH + 10, unit="D"
    )
    ids = [f"c{i}" for i in range(n)]
    customers = _customers(list(zip(ids, exit_at.astype(str), ["voluntary"] * n, strict=True)))
    keys = pd.DataFrame({"customer_id": ids, "cutoff": cutoffs})
    pp = person_periods(keys, customers, pd.Timestamp("2024-12-01"), 12, REASONS)
    hazards = kaplan_meier_hazards(pp, 12)
    observed = np.bincount(pp.month - 1, minlength=12) > 500
    assert np.allclose(hazards[observed], h, atol=0.01)


# --- a population with known hazards -----------------------------------------------------------


def _known_population(n: int, seed: int):
    """Monthly hazard 1.5 % (x=0) or 4.5 % (x=1), times 6 in the month the commitment ends."""
    rng = np.random.default_rng(seed)
    cutoffs = pd.to_datetime(["2024-01-01", "2024-04-01", "2024-07-01"])
    x = rng.integers(0, 2, n)
    commitment_month = rng.integers(1, 13, n)  # the month (after the first cutoff) it ends
    base = np.where(x == 1, 0.045, 0.015)
    ids = np.array([f"c{i:05d}" for i in range(n)])
    exit_at = np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
    start = cutoffs[0]
    for month in range(1, 25):
        hazard = base * np.where(commitment_month == month, 6.0, 1.0)
        alive = np.isnat(exit_at)
        leave = alive & (rng.random(n) < hazard)
        day = (start + pd.DateOffset(months=month - 1)) + pd.Timedelta(days=9)
        exit_at[leave] = np.datetime64(day, "ns")
    customers = _customers(
        [
            (i, None if np.isnat(e) else str(pd.Timestamp(e)), None if np.isnat(e) else "voluntary")
            for i, e in zip(ids, exit_at, strict=True)
        ]
    )
    rows = []
    for c in cutoffs:
        alive = np.isnat(exit_at) | (exit_at > np.datetime64(c, "ns"))
        elapsed = (c.year - start.year) * 12 + c.month - start.month
        rows.append(
            pd.DataFrame(
                {
                    "customer_id": ids[alive],
                    "cutoff": c,
                    "x": x[alive].astype(float),
                    "noise": rng.normal(size=alive.sum()),
                    "days_to_commitment_end": (commitment_month[alive] - 1 - elapsed)
                    * DAYS_PER_MONTH
                    + 15,
                    "weight": 1.0,
                }
            )
        )
    return pd.concat(rows, ignore_index=True), customers, base


def test_known_hazards_are_recovered():
    frame, customers, _ = _known_population(10_000, seed=5)
    # One thread: small data, and no waiting on a busy second core.
    settings = HazardConfig(
        params={"learning_rate": 0.1, "num_leaves": 15, "verbose": -1, "num_threads": 1},
        num_boost_round=200,
        early_stopping_rounds=20,
    )
    fit = fit_hazard(
        frame,
        ["x", "noise", "days_to_commitment_end"],
        customers,
        pd.Timestamp("2025-01-01"),
        settings,
        REASONS,
        seed=1,
    )
    probe = pd.DataFrame(
        {
            "customer_id": ["p0", "p1", "p2"],
            "x": [0.0, 1.0, 1.0],
            "noise": [0.0, 0.0, 0.0],
            # p0, p1: commitment ended long ago; p2: it ends in month 4
            "days_to_commitment_end": [-400.0, -400.0, 3 * DAYS_PER_MONTH + 15],
        }
    )
    hazards = fit.model.hazards(probe)
    assert np.allclose(hazards[0], 0.015, atol=0.008)
    assert np.allclose(hazards[1, :6], 0.045, atol=0.015)
    assert hazards[2, 3] > 0.15  # the month the commitment ends: 6 x 4.5 % = 27 %
    assert hazards[2, 3] > 3 * max(hazards[2, 1], hazards[2, 6])


# --- curves, lifetime value, segments ----------------------------------------------------------


def test_curves_are_monotone_and_horizons_nondecreasing():
    rng = np.random.default_rng(0)
    hazards = rng.uniform(0, 0.3, size=(500, 12))
    survival = survival_from_hazards(hazards)
    assert (np.diff(survival, axis=1) <= 1e-12).all() and (survival <= 1).all()
    probabilities = churn_probabilities(survival, [365, 30, 180, 90])
    ordered = [probabilities[f"churn_probability_{d}d"] for d in (30, 90, 180, 365)]
    for short, long in itertools.pairwise(ordered):
        assert (short <= long).all()
    for k in range(1, 13):
        np.testing.assert_allclose(survival_at(survival, k), survival[:, k - 1])
    months = expected_remaining_months(survival)
    assert ((months >= 0) & (months <= 12)).all()
    assert expected_remaining_months(np.ones((1, 12)))[0] == pytest.approx(12.0)
    with pytest.raises(ValueError):
        survival_at(survival, 12.5)


def test_lifetime_value_and_value_at_risk():
    survival = np.array([[1.0] * 12, [0.5] * 12])
    revenue = np.array([100.0, 100.0])
    factors = discount_factors(12, 0.1)
    assert factors[11] == pytest.approx(1 / 1.1)
    ltv = lifetime_value(survival, revenue, 0.4, 0.1)
    assert ltv[0] == pytest.approx(100 * 0.4 * factors.sum())
    assert ltv[1] == pytest.approx(ltv[0] / 2)
    at_risk = lifetime_value_at_risk(survival, revenue, 0.4, 0.1)
    np.testing.assert_allclose(at_risk, [0.0, ltv[0] / 2])


def test_value_segments_are_the_cells_of_value_by_lifetime_value():
    n = 1000
    rng = np.random.default_rng(2)
    revenue = rng.uniform(5, 80, n)
    # The richest half leave fast, the rest stay: high value now but low lifetime value exists.
    hazards = np.where(revenue[:, None] > 60, 0.5, 0.01) * np.ones((n, 12))
    survival = survival_from_hazards(hazards)
    tiers = np.where(revenue >= np.quantile(revenue, 0.8), "B", "D")
    ids = np.array([f"c{i}" for i in range(n)])
    columns = time_to_churn_columns(survival, revenue, tiers, ids, HazardConfig(), CUTS)
    assert set(columns["value_segment"]) <= set(SEGMENTS.values())
    rich_leaving = (revenue > 60) & (tiers == "B")
    assert (columns.loc[rich_leaving, "value_segment"] == "protect").all()
    assert (columns["lifetime_value_tier"] == "A").sum() == 10  # the value tiers' own shares
    assert "churn_probability_90d" in columns and "expected_remaining_months" in columns


def test_contact_ranking_by_value_at_risk_keeps_callable_customers_first():
    scores = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d"],
            "action": ["retention offer", "no action", "retention offer", "retention offer"],
            "expected_profit": [5.0, 50.0, 1.0, -1.0],
            "churn_probability": [0.2, 0.9, 0.3, 0.1],
            "lifetime_value_at_risk": [10.0, 500.0, 80.0, 900.0],
            "priority_rank": [1, 2, 3, 4],
        }
    )
    ranked = rank_by_value_at_risk(scores)
    assert list(ranked["customer_id"]) == ["c", "a", "d", "b"]
    assert list(ranked["priority_rank"]) == [1, 2, 3, 4]


# --- measures ----------------------------------------------------------------------------------


def test_measures_reward_the_true_curves_over_kaplan_meier():
    frame, customers, _base = _known_population(6_000, seed=9)
    test_cutoff = pd.Timestamp("2024-07-01")
    keys = frame[frame["cutoff"] == test_cutoff].reset_index(drop=True)
    as_of = pd.Timestamp("2025-07-01")
    out = outcomes(keys, customers, as_of, 12, REASONS)
    # The true curves of the test customers (commitment bump included).
    x = keys["x"].to_numpy()
    end_month = np.round((keys["days_to_commitment_end"].to_numpy() - 15) / DAYS_PER_MONTH) + 1
    hazards = np.where(x[:, None] == 1, 0.045, 0.015) * np.where(
        end_month[:, None] == np.arange(1, 13), 6.0, 1.0
    )
    survival = survival_from_hazards(hazards)
    pooled = np.full(12, float(np.average(hazards.mean(axis=0))))
    evaluation = evaluate_curves(survival, pooled, out, [30, 90, 180, 365], "t_")
    m = evaluation.metrics
    assert m["t_concordance"] > 0.6
    assert m["t_ibs"] < m["t_ibs_kaplan_meier"] and m["t_ibs_skill"] > 0
    assert m["t_auc_90d"] > 0.6
    assert m["t_mean_probability_365d"] == pytest.approx(m["t_realised_rate_365d"], rel=0.1)
    assert concordance_td(survival, out) == pytest.approx(m["t_concordance"])
    assert integrated_brier(survival, out) == pytest.approx(m["t_ibs"])
    flipped = concordance_td(1 - survival, out)
    assert flipped < 0.5


def test_downsampling_keeps_exits_and_weights_back_to_the_full_counts():
    rng = np.random.default_rng(4)
    n = 200_000
    event = (rng.random(n) < 0.03).astype(np.int8)
    competing = (event == 0) & (rng.random(n) < 0.01)
    pp = PersonPeriods(np.arange(n), np.ones(n, dtype=np.int16), event, np.ones(n), competing)
    small, rate = downsample(pp, 20_000, seed=1)
    assert abs(len(small) - 20_000) < 600 and rate < 0.1
    assert small.event.sum() == event.sum()  # every exit kept while they fit in half
    assert small.weight.sum() == pytest.approx(n, rel=0.02)
    assert (small.weight * small.event).sum() == pytest.approx(event.sum())
    # A base where exits alone would fill the rows: quiet months keep half of them.
    tiny, _ = downsample(pp, 4_000, seed=1)
    assert (tiny.event == 0).sum() > 1_500
    assert (tiny.weight * tiny.event).sum() == pytest.approx(event.sum(), rel=0.1)
    assert tiny.weight.sum() == pytest.approx(n, rel=0.05)
