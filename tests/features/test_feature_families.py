"""Hand-computed feature values on the tiny fixture (cutoff 2024-04-01)."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from feature_fixtures import CUTOFF, tiny_tables, write_tables

from churnml.features import FeatureParams, build_features

EXPECTED = {
    "A": {
        # calls: out voice 2 min (03-30), 1 min (03-20), 5 min (02-15); in voice 3 min (03-10)
        "voice_out_minutes_7d": 2.0,
        "voice_out_minutes_30d": 3.0,
        "voice_out_minutes_90d": 8.0,
        "voice_out_calls_30d": 2.0,
        "voice_out_calls_90d": 3.0,
        "voice_in_minutes_30d": 3.0,
        "voice_in_calls_30d": 1.0,
        "sms_out_7d": 1.0,
        "sms_in_30d": 0.0,
        "data_mb_30d": 100.0,
        "distinct_contacts_7d": 2.0,
        "distinct_contacts_30d": 3.0,
        "offnet_out_share_30d": 1 / 3,
        "offnet_out_share_90d": 6 / 8,
        "international_out_minutes_30d": 0.0,
        "dropped_call_rate_30d": 1 / 3,
        "voice_out_minutes_trend_30d_vs_prev60d": (3 - 2.5) / (3 + 2.5),
        "voice_out_minutes_weekly_slope_12w": (5.5 * 2 + 4.5 * 1 - 0.5 * 5) / 143,
        "voice_out_night_share_30d": 1 / 3,
        "voice_out_weekend_share_30d": 2 / 3,
        "offnet_out_share_change_30d_vs_prev60d": 1 / 3 - 1.0,
        "top_competitor_out_share_30d": 1 / 3,
        "top_competitor_out_share_change_30d_vs_prev60d": 1 / 3 - 1.0,
        "voice_out_share_to_opx_30d": 1 / 3,
        "days_since_last_out_activity": 15 / 24,
        "onnet_contacts_left_90d": 1.0,
        "onnet_contacts_left_share_90d": 1.0,
        # transfers
        "port_out_queries_7d": 1.0,
        "port_out_requests_7d": 1.0,
        "port_out_cancels_90d": 0.0,
        "days_since_port_out_query": 7.0,
        "days_since_port_out_request": 4.0,
        "port_out_request_open": 1.0,
        "plan_upgrades_90d": 1.0,
        "plan_downgrades_90d": 1.0,
        "monthly_fee_change_90d": 5.0,
        "sim_swaps_30d": 1.0,
        "ownership_changes_90d": 0.0,
        "balance_transfer_out_amount_90d": 7.5,
        "balance_transfer_in_amount_90d": 2.5,
        "balance_transfer_net_out_90d": 5.0,
        # complaints: q1 03-20 billing, q2 03-26 billing open, q3 01-15 network, q4 03-28
        # service resolved after the cutoff
        "complaints_7d": 2.0,
        "complaints_30d": 3.0,
        "complaints_90d": 4.0,
        "complaints_billing_30d": 2.0,
        "complaints_network_90d": 1.0,
        "complaints_price_90d": 0.0,
        "complaints_unresolved": 2.0,
        "repeat_complaints_90d": 1.0,
        "complaint_resolution_days_mean_90d": 3.0,
        "complaint_max_severity_90d": 3.0,
        "low_satisfaction_complaints_90d": 1.0,
        "regulator_escalations_90d": 1.0,
        "days_since_last_complaint": 4.0,
        # account
        "tenure_days": 366.0,
        "days_to_commitment_end": 30.0,
        "monthly_fee": 15.0,
        "age_years": 34.0,
        "revenue_3m": 0.0,
    },
    "E": {
        # bills 30 each due 01-20, 02-20, 03-20 (b4 due 04-12); paid 30 (01-19), 30 (03-01),
        # 10 (03-30): 20 overdue, b3 12 days past due, b2 and b3 late
        "overdue_amount": 20.0,
        "days_past_due_oldest_unpaid": 12.0,
        "bills_paid_late_90d": 2.0,
        "bills_paid_late_180d": 2.0,
        "paid_to_due_ratio_180d": 70 / 120,
        "revenue_3m": 120.0,
        "arpu_monthly_3m": 40.0,
        "topups_30d": 0.0,
        "monthly_fee": 20.0,  # initial plan p2: fee last seen for p2 (A's change on 02-01)
    },
    "F": {
        "topups_30d": 1.0,
        "topup_amount_30d": 10.0,
        "topups_90d": 3.0,
        "topup_amount_90d": 50.0,
        "topup_amount_trend_30d_vs_prev60d": (10 - 20) / (10 + 20),
        "days_since_last_topup": 7.0,
        "revenue_3m": 50.0,
        "overdue_amount": 0.0,
        "tenure_days": 183.0,
    },
    "C": {
        # no events at all: counts 0, rates and days-since null
        "voice_out_minutes_30d": 0.0,
        "distinct_contacts_30d": 0.0,
        "offnet_out_share_30d": math.nan,
        "dropped_call_rate_30d": math.nan,
        "days_since_last_out_activity": math.nan,
        "voice_out_minutes_trend_30d_vs_prev60d": math.nan,
        "voice_out_minutes_weekly_slope_12w": 0.0,
        "port_out_queries_30d": 0.0,
        "days_since_port_out_query": math.nan,
        "monthly_fee_change_90d": 0.0,
        "complaints_30d": 0.0,
        "complaints_unresolved": 0.0,
        "complaint_max_severity_90d": 0.0,
        "complaint_resolution_days_mean_90d": math.nan,
        "days_since_last_complaint": math.nan,
        "overdue_amount": 0.0,
        "paid_to_due_ratio_180d": math.nan,
        "topups_30d": 0.0,
        "days_since_last_topup": math.nan,
        "monthly_fee": 10.0,  # initial plan p1: fee last seen for p1 (D's change on 01-01)
        "tenure_days": 60.0,
        "age_years": math.nan,
    },
    "D": {
        # D's plan change (01-01) is 91 days before the cutoff: outside the 90-day window
        "plan_upgrades_90d": 0.0,
        "monthly_fee_change_90d": 0.0,
        "monthly_fee": 10.0,
    },
}

CATEGORICAL = {
    "A": {"lifecycle_stage": "exit_risk", "plan_id": "p3", "value_tier": "D", "region": "north"},
    "C": {"lifecycle_stage": "acquisition", "plan_id": "p1", "payment_type": "prepaid"},
    "D": {"plan_id": "p1", "lifecycle_stage": "maturity"},
    "E": {"value_tier": "A", "lifecycle_stage": "maturity", "plan_id": "p2"},
    "F": {"value_tier": "C", "lifecycle_stage": "build_up"},
}


@pytest.fixture(scope="module")
def features(tmp_path_factory) -> pd.DataFrame:
    out = write_tables(tiny_tables(), tmp_path_factory.mktemp("tiny"))
    spine = pd.DataFrame(
        {"customer_id": list("ABCDEF"), "cutoff": [pd.Timestamp("2024-04-01")] * 6}
    )
    return build_features(out, spine, FeatureParams(competitors=["OpX"])).set_index("customer_id")


@pytest.mark.parametrize(
    ("customer", "name", "expected"),
    [(c, n, v) for c, vals in EXPECTED.items() for n, v in vals.items()],
)
def test_hand_computed_value(features, customer, name, expected):
    got = features.loc[customer, name]
    if math.isnan(expected):
        assert pd.isna(got), f"{customer} {name}: expected null, got {got}"
    else:
        assert got == pytest.approx(expected, rel=1e-6, abs=1e-6), f"{customer} {name}"


@pytest.mark.parametrize(
    ("customer", "name", "expected"),
    [(c, n, v) for c, vals in CATEGORICAL.items() for n, v in vals.items()],
)
def test_hand_computed_category(features, customer, name, expected):
    assert features.loc[customer, name] == expected


def test_dtypes_are_model_ready(features):
    for name, dtype in features.dtypes.items():
        if name == "cutoff":
            continue
        assert dtype == "float64" or isinstance(dtype, pd.CategoricalDtype), (name, dtype)


def test_csv_dataset_gives_the_same_features(tmp_path, features):
    out = write_tables(tiny_tables(), tmp_path / "csv", fmt="csv")
    spine = pd.DataFrame(
        {"customer_id": list("ABCDEF"), "cutoff": [pd.Timestamp("2024-04-01")] * 6}
    )
    got = build_features(out, spine, FeatureParams(competitors=["OpX"])).set_index("customer_id")
    pd.testing.assert_frame_equal(
        got.drop(columns="cutoff"),
        features.drop(columns="cutoff"),
        check_categorical=False,
        check_dtype=False,
    )


def _ranked_revenue_tables(n: int) -> dict[str, pd.DataFrame]:
    """`n` postpaid customers, customer i with one bill of 1000 - i issued 10 days before."""
    ids = [f"R{i:03d}" for i in range(1, n + 1)]
    customers = pd.DataFrame(
        {
            "customer_id": ids,
            "activated_at": pd.Timestamp("2022-01-01"),
            "terminated_at": pd.NaT,
            "termination_reason": None,
            "initial_plan_id": "p1",
            "payment_type": "postpaid",
            "commitment_end": pd.NaT,
            "region": "north",
            "birth_year": 1980.0,
        }
    )
    bills = pd.DataFrame(
        {
            "bill_id": [f"b{i}" for i in range(n)],
            "customer_id": ids,
            "period_start": pd.Timestamp("2024-02-01"),
            "issued_at": pd.Timestamp("2024-03-22"),
            "due_at": pd.Timestamp("2024-04-10"),
            "amount_due": [1000.0 - i for i in range(1, n + 1)],
        }
    )
    return {"customers": customers, "bills": bills}


def test_value_tier_counts_down_sampled_rows_by_their_weight(tmp_path):
    """Rows kept by negative down-sampling stand for 1 / rate customers: their tier must be the
    one the whole base gives, or training and scoring would cut the tiers differently."""
    out = write_tables(_ranked_revenue_tables(400), tmp_path / "ranked")
    params = FeatureParams(families=["account", "arrears"])
    spine = pd.DataFrame({"customer_id": [f"R{i:03d}" for i in range(1, 401)], "cutoff": CUTOFF})
    whole = build_features(out, spine, params).set_index("customer_id")["value_tier"]
    assert whole.value_counts().to_dict() == {"A": 4, "B": 16, "C": 60, "D": 320}
    # The top 100 by revenue are down-sampled to every other one, kept at weight 2.
    rank = pd.Series(range(1, 401), index=spine.index)
    sampled = spine[(rank > 100) | (rank % 2 == 0)].assign(weight=lambda s: 1.0)
    sampled.loc[rank[sampled.index] <= 100, "weight"] = 2.0
    weighted = build_features(out, sampled, params).set_index("customer_id")["value_tier"]
    pd.testing.assert_series_equal(weighted.astype(str), whole[weighted.index].astype(str))
    unweighted = build_features(out, sampled.drop(columns="weight"), params)
    assert (unweighted["value_tier"].astype(str) != weighted.astype(str).to_numpy()).sum() > 5
