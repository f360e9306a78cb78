"""Value for money and per-operator features: hand-computed values on the tiny fixture
(cutoff 2024-04-01) and the training-time choice of operators."""

from __future__ import annotations

from dataclasses import asdict

import pandas as pd
import pytest
from feature_fixtures import CUTOFF, T, tiny_tables, write_tables

from churnml.features import FeatureParams, build_features, resolve_feature_params

# Plans are compared from a single subscriber and cover up to their heaviest user, so the
# cheapest covering plan can be worked out by hand.
PARAMS = FeatureParams(
    competitors=["OpX"], plan_coverage_quantile=1.0, plan_coverage_min_customers=1
)


@pytest.fixture(scope="module")
def features(tmp_path_factory) -> pd.DataFrame:
    out = write_tables(tiny_tables(), tmp_path_factory.mktemp("tiny"))
    spine = pd.DataFrame({"customer_id": list("ACDEF"), "cutoff": CUTOFF})
    return build_features(out, spine, PARAMS).set_index("customer_id")


# A: plan p3 at 15.0 since 03-01 (also 30 days before the cutoff); outgoing voice 3 min in
# the last 30 days, 5 min in the 60 before; 100 MB in the last 30 days, none before.
# Postpaid plans as of the cutoff: p3 (A: 15, covers 3 min / 100 MB), p1 (D: 10, covers
# nothing), p2 (E: initial plan, fee last seen 20, covers nothing).
EXPECTED = {
    "A": {
        "fee_per_voice_minute_30d": 15 / 3,
        "fee_per_gb_30d": 15 / (100 / 1024),
        # before: fee 15 over 5 min / 2 months = 6 a minute
        "fee_per_voice_minute_change_30d_vs_prev60d": (5 - 6) / (5 + 6),
        "fee_per_gb_change_30d_vs_prev60d": None,  # no data in the 60 days before
        "monthly_fee_over_cheapest_covering_plan": 0.0,  # only p3 covers its use
        "monthly_fee_to_cheapest_covering_plan_ratio": 1.0,
        "voice_out_share_to_opx_90d": 6 / 8,
        "port_out_contacts_to_opx_90d": 2.0,  # a query on 03-25, a request on 03-28
        # voice calls both ways: 1 of 3 dropped in 30 days, 0 of 1 in the 60 before
        "dropped_call_rate_change_30d_vs_prev60d": 1 / 3,
        "voice_in_out_minutes_ratio_30d": 3 / 6,
    },
    "D": {
        "fee_per_voice_minute_30d": None,  # no calls
        "monthly_fee_over_cheapest_covering_plan": 0.0,  # p1 at 10 is the cheapest
        "port_out_contacts_to_opx_90d": 0.0,
    },
    "E": {
        "monthly_fee_over_cheapest_covering_plan": 20.0 - 10.0,  # p1 covers no use too
        "monthly_fee_to_cheapest_covering_plan_ratio": 2.0,
        # bills of 30 issued 01-05, 02-05, 03-05, 03-28 (04-05 is after the cutoff)
        "last_bill_to_prev3_avg_ratio": 1.0,
    },
    "F": {"last_bill_to_prev3_avg_ratio": None},  # prepaid: no bills
}
CASES = [(c, n, v) for c, values in EXPECTED.items() for n, v in values.items()]


@pytest.mark.parametrize(("customer", "name", "expected"), CASES)
def test_hand_computed_value(features, customer, name, expected):
    got = features.loc[customer, name]
    if expected is None:
        assert pd.isna(got), f"{customer} {name} = {got}"
    else:
        assert got == pytest.approx(expected, abs=1e-6), f"{customer} {name}"


def test_value_features_are_in_the_registry_with_reasons():
    from churnml.features import feature_spec

    for name in EXPECTED["A"]:
        spec = feature_spec(name, PARAMS)
        assert spec.reason, name
        assert spec.cause_family in {"price", "competitor", "network_quality", "usage_decline"}
    assert feature_spec("last_bill_to_prev3_avg_ratio", PARAMS).cause_family == "price"


def _with_operators(tables: dict) -> dict:
    """Add OpY voice minutes before the cutoff and a huge OpZ after it."""
    calls = tables["calls"]
    extra = pd.DataFrame(
        [
            ("D", T("2024-03-10 10:00"), "out", "voice", 600, None, "off_net", "OpY", "P7", False),
            ("D", T("2024-04-02 10:00"), "out", "voice", 9000, None, "off_net", "OpZ", "P8", False),
            ("D", T("2024-04-03 10:00"), "in", "voice", 9000, None, "off_net", "OpW", "P8", False),
        ],
        columns=calls.columns,
    )
    return {**tables, "calls": pd.concat([calls, extra], ignore_index=True)}


def test_resolve_picks_top_operators_by_outgoing_minutes_before_the_cutoff(tmp_path):
    out = write_tables(_with_operators(tiny_tables()), tmp_path / "d")
    # Before the cutoff: OpY 10 min, OpX 6 min (OpY's SMS and anything after never count).
    two = resolve_feature_params(out, FeatureParams(competitor_top_k=2), CUTOFF)
    assert two.competitors == ["OpY", "OpX"]
    one = resolve_feature_params(out, FeatureParams(competitor_top_k=1), CUTOFF)
    assert one.competitors == ["OpY"]
    # Later, OpZ takes the most minutes: a later training cutoff chooses it.
    later = resolve_feature_params(out, FeatureParams(competitor_top_k=1), "2024-05-01")
    assert later.competitors == ["OpZ"]
    # A list in the config is the user's choice; K = 0 turns the features off.
    kept = resolve_feature_params(out, FeatureParams(competitors=["OpX"]), CUTOFF)
    assert kept.competitors == ["OpX"]
    assert resolve_feature_params(out, FeatureParams(competitor_top_k=0), CUTOFF).competitors == []


def test_resolved_params_survive_the_model_round_trip(tmp_path):
    """Scoring rebuilds FeatureParams from `asdict` of the recorded params: the same columns
    come out, whatever operators the scoring data hold."""
    out = write_tables(_with_operators(tiny_tables()), tmp_path / "d")
    resolved = resolve_feature_params(out, FeatureParams(), CUTOFF)
    assert resolved.competitors == ["OpY", "OpX"]
    spine = pd.DataFrame({"customer_id": list("AD"), "cutoff": T("2024-05-01")})
    trained = build_features(out, spine, resolved)
    scored = build_features(out, spine, FeatureParams(**asdict(resolved)))
    assert list(scored.columns) == list(trained.columns)
    assert "voice_out_share_to_opy_30d" in scored and "voice_out_share_to_opz_30d" not in scored


def test_bill_shock_compares_the_last_bill_with_the_three_before(tmp_path):
    tables = tiny_tables()
    bills = tables["bills"].copy()
    bills.loc[bills["bill_id"] == "b4", "amount_due"] = 75.0  # issued 03-28: the last one
    bills.loc[bills["bill_id"] == "b1", "amount_due"] = 60.0  # issued 01-05
    bills.loc[bills["bill_id"] == "b5", "amount_due"] = 999.0  # issued after the cutoff
    out = write_tables({**tables, "bills": bills}, tmp_path / "d")
    spine = pd.DataFrame({"customer_id": ["E"], "cutoff": [CUTOFF]})
    got = build_features(out, spine, PARAMS)["last_bill_to_prev3_avg_ratio"].iloc[0]
    assert got == pytest.approx(75.0 / ((60.0 + 30.0 + 30.0) / 3))
