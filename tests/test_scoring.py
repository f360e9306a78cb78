"""Scoring helpers: risk bands, value tiers, the retention playbook, population stability."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnml.config import ActionRule, compose_config
from churnml.scoring import (
    CONTACT_COLUMNS,
    apply_playbook,
    choose_actions,
    condition_mask,
    contact_list,
    population_stability,
    rank_by_priority,
    risk_bands,
    short_contact_list_warning,
    value_tiers,
)


def test_risk_bands_are_deciles_of_the_scores():
    bands = risk_bands(np.linspace(1, 0, 100))
    assert list(bands[:10]) == ["R01"] * 10 and list(bands[-10:]) == ["R10"] * 10
    # A band never reads like a value tier.
    assert not set(bands) & {"A", "B", "C", "D"} and all(b.startswith("R") for b in bands)


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


def _default_playbook():
    cfg = compose_config("score", ["run_dir=/tmp/unused"])
    return cfg.scoring


def test_the_contract_action_fits_the_commitment_date():
    """Out of contract: a re-contract offer, never a renewal "before commitment end"."""
    settings = _default_playbook()
    days = [-1062.0, -1.0, 0.0, 45.0, 90.0, 400.0, None]
    features = pd.DataFrame({"days_to_commitment_end": days})
    cause = pd.Series(["contract_lifecycle"] * len(days))
    tier = pd.Series(["C"] * len(days))
    plan = apply_playbook(
        cause, tier, settings.actions, settings.default_action, settings.default_script, features
    )
    actions = plan["action"].tolist()
    assert actions[0] == actions[1] == "re-contract offer"
    assert actions[2] == actions[3] == actions[4] == "renewal offer before commitment end"
    assert "before commitment end" not in actions[5] and "before commitment end" not in actions[6]
    assert actions[6] == "contract offer"
    for day, action in zip(days, actions, strict=True):
        if day is not None and day < 0:
            assert "renewal" not in action
    assert (plan["script"].str.len() > 20).all(), "every default action carries a script line"


def test_the_exit_stage_after_a_port_out_query_gets_a_retention_offer():
    settings = _default_playbook()
    features = pd.DataFrame(
        {"days_to_commitment_end": [-400.0, -400.0], "port_out_queries_30d": [1.0, 0.0]}
    )
    actions = choose_actions(
        pd.Series(["contract_lifecycle"] * 2),
        pd.Series(["C", "C"]),
        settings.actions,
        settings.default_action,
        features,
    )
    assert actions.tolist() == ["retention offer", "re-contract offer"]


def test_every_default_action_has_a_script_and_low_value_arrears_get_no_action():
    settings = _default_playbook()
    assert all(rule.script for rule in settings.actions)
    cause = pd.Series(["billing_arrears", "billing_arrears"])
    tier = pd.Series(["D", "A"])
    actions = choose_actions(cause, tier, settings.actions, settings.default_action)
    assert actions.tolist() == ["no action", "billing review and payment plan"]


def test_playbook_conditions_test_feature_values():
    features = pd.DataFrame({"x": [-1.0, 0.0, np.nan], "plan": ["a", "b", None]})
    index = pd.RangeIndex(3)
    assert condition_mask("x < 0", features, index).tolist() == [True, False, False]
    assert condition_mask("x >= 0", features, index).tolist() == [False, True, False]
    assert condition_mask("x is null", features, index).tolist() == [False, False, True]
    assert condition_mask("x is not null", features, index).tolist() == [True, True, False]
    assert condition_mask("plan == b", features, index).tolist() == [False, True, False]
    # A feature the data lack never matches: the rule is skipped, not guessed.
    assert not condition_mask("missing_feature > 1", features, index).any()
    with pytest.raises(ValueError, match="playbook condition"):
        condition_mask("x between 1 and 2", features, index)


def _scores() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d", "e"],
            "churn_probability": [0.123456, 0.9, 0.5, 0.7, 0.2],
            "risk_band": ["R05", "R01", "R03", "R02", "R04"],
            "value_tier": ["D", "A", "B", "D", "C"],
            "monthly_revenue": [10.123, 99.999, 50.5, 20.0, 30.0],
            "revenue_at_risk": [2.4999, 179.9, 50.5, 28.0, 12.0],
            "expected_profit": [5.55555, 20.0, 30.0, 50.0, -1.0],
            "main_cause": ["price", "competitor", "usage_decline", "billing_arrears", "price"],
            "reason_1": ["r1"] * 5,
            "reason_2": ["r2"] * 5,
            "reason_3": [None] * 5,
            "action": ["plan review", "retention offer", "re-engagement bundle", "no action", "x"],
            "script": ["s"] * 5,
        }
    )


def test_priority_rank_is_the_contact_list_order():
    ranked = rank_by_priority(_scores())
    # Worth calling first (action and positive expected profit), by expected profit.
    assert ranked["customer_id"].tolist() == ["c", "b", "a", "d", "e"]
    assert ranked["priority_rank"].tolist() == [1, 2, 3, 4, 5]
    contacts = contact_list(ranked, size=10, currency="EUR")
    assert list(contacts.columns) == list(CONTACT_COLUMNS)
    assert contacts["priority"].tolist() == [1, 2, 3]
    assert contacts["customer_id"].tolist() == ["c", "b", "a"]
    assert contacts["churn_probability"].tolist() == [0.5, 0.9, 0.12]
    assert contacts["monthly_revenue"].tolist() == [50.5, 100.0, 10.12]
    assert contacts["main_cause"].tolist() == ["Usage decline", "Competitor pull", "Price"]
    assert (contacts["currency"] == "EUR").all()
    assert contact_list(ranked, size=2)["priority"].tolist() == [1, 2]


def test_a_short_contact_list_says_why():
    """Fewer customers worth calling than places: scoring says how many and why (with an
    uplift model: no positive incremental profit), and says nothing when the list is full."""
    settings = compose_config("score").scoring
    settings.contact_list_size = 3
    assert short_contact_list_warning(3, 5, settings) is None
    settings.contact_list_size = 10
    assert short_contact_list_warning(5, 5, settings) is None  # everyone is on it
    message = short_contact_list_warning(3, 5, settings)
    assert message.startswith("the contact list has 3 of its 10 places") and "action" in message
    message = short_contact_list_warning(0, 5, settings, pd.Series([-0.006, -0.004, -0.008]))
    assert "0 of its 10 places" in message and "mean uplift -0.006" in message
