"""Scoring helpers: risk bands, value tiers, the retention playbook, population stability."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnml.config import ActionRule
from churnml.scoring import choose_actions, population_stability, risk_bands, value_tiers


def test_risk_bands_are_deciles_of_the_scores():
    bands = risk_bands(np.linspace(1, 0, 100))
    assert list(bands[:10]) == ["D01"] * 10 and list(bands[-10:]) == ["D10"] * 10


def test_value_tiers_follow_the_usual_cut():
    revenue = np.arange(1000, 0, -1, dtype=float)
    tiers = value_tiers(revenue, np.arange(1000), [0.01, 0.05, 0.20])
    counts = pd.Series(tiers).value_counts()
    assert counts.to_dict() == {"D": 800, "C": 150, "B": 40, "A": 10}
    assert tiers[0] == "A" and tiers[-1] == "D"


@pytest.mark.parametrize("distinct", [1, 3, 17])
def test_value_tiers_hold_exact_shares_under_heavy_ties(distinct):
    """Many customers on the same fee: the tiers still hold 1 / 4 / 15 / 80 % exactly."""
    rng = np.random.default_rng(distinct)
    revenue = rng.choice(np.linspace(10, 50, distinct), size=2000)
    ids = rng.permutation(2000)
    tiers = value_tiers(revenue, ids, [0.01, 0.05, 0.20])
    assert pd.Series(tiers).value_counts().to_dict() == {"D": 1600, "C": 300, "B": 80, "A": 20}
    # Revenue still decides across tiers: nobody in a higher tier earns less than a lower one.
    frame = pd.DataFrame({"tier": tiers, "revenue": revenue})
    by_tier = frame.groupby("tier")["revenue"].agg(["min", "max"])
    for upper, lower in (("A", "B"), ("B", "C"), ("C", "D")):
        assert by_tier.loc[upper, "min"] >= by_tier.loc[lower, "max"]
    # Deterministic: the same ids in another row order get the same tiers.
    order = rng.permutation(2000)
    again = value_tiers(revenue[order], ids[order], [0.01, 0.05, 0.20])
    assert (again == tiers[order]).all()


def test_value_tiers_leave_missing_revenue_untiered():
    tiers = value_tiers(np.array([5.0, np.nan, 3.0]), np.array(["a", "b", "c"]), [0.01, 0.05, 0.2])
    assert tiers[1] is None and tiers[0] == "A"


def test_first_matching_playbook_rule_wins():
    rules = [
        ActionRule(action="no action", cause="billing_arrears", tiers=["D"]),
        ActionRule(action="billing review", cause="billing_arrears"),
        ActionRule(action="retention call", cause="competitor", tiers=["A", "B"]),
    ]
    cause = pd.Series(["billing_arrears", "billing_arrears", "competitor", "competitor", "none"])
    tier = pd.Series(["D", "A", "A", "D", "A"])
    actions = choose_actions(cause, tier, rules, "monitor")
    assert actions.tolist() == [
        "no action",
        "billing review",
        "retention call",
        "monitor",
        "monitor",
    ]


def test_population_stability_is_zero_for_the_same_distribution_and_grows_with_shift():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=20_000)
    assert population_stability(reference, rng.normal(size=20_000)) < 0.01
    assert population_stability(reference, rng.normal(0.5, 1, 20_000)) > 0.1
    assert population_stability(reference, rng.normal(2, 1, 20_000)) > 1


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_population_stability_ignores_missing_values(value):
    reference = np.r_[np.arange(100.0), [value] * 10]
    assert population_stability(reference, np.arange(100.0)) < 0.01
