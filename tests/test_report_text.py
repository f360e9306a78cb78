"""The loss-driver report's words: findings in units, causes compared fairly, what to do."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from churnml import explain
from churnml.report import ReportInputs, render_report
from churnml.scoring import retention_plan
from churnml.snapshot import guess_column_causes


@pytest.fixture
def contrib_and_labels() -> tuple[explain.Contributions, pd.Series]:
    """Dropped-call rate (a share) and days to commitment end drive churn; ten weak usage
    features add noise to one family."""
    rng = np.random.default_rng(0)
    n = 4000
    dropped = rng.uniform(0, 0.2, n)
    commitment = rng.uniform(-1200, 400, n)
    usage = {f"voice_out_calls_{w}d": rng.poisson(20, n).astype(float) for w in (7, 14, 30)}
    usage.update({f"sms_out_{w}d": rng.poisson(5, n).astype(float) for w in (7, 14, 30)})
    features = pd.DataFrame(
        {"dropped_call_rate_30d": dropped, "days_to_commitment_end": commitment, **usage}
    )
    logit = -2 + 12 * (dropped - 0.1) + 1.5 * (commitment < -365)
    labels = pd.Series((rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(int))
    values = pd.DataFrame(
        {
            "dropped_call_rate_30d": 12 * (dropped - dropped.mean()),
            "days_to_commitment_end": 1.5 * ((commitment < -365) - (commitment < -365).mean()),
            **{c: rng.normal(0, 0.25, n) for c in usage},
        }
    )
    return explain.Contributions(values=values, base_value=-2.0, features=features), labels


def test_findings_name_rounded_thresholds_in_units(contrib_and_labels):
    contrib, labels = contrib_and_labels
    drivers = explain.driver_table(contrib, labels)
    findings = explain.driver_findings(contrib, labels, drivers, top_n=4, currency="EUR")
    assert len(findings) == 4, "every top driver gets a line"
    by_feature = findings.set_index("feature")["finding"]
    dropped = by_feature["dropped_call_rate_30d"]
    assert re.search(r"≥ \d{1,2} %", dropped), dropped
    assert "0." not in dropped.split("churn")[0], dropped
    contract = by_feature["days_to_commitment_end"]
    assert re.search(r"contract ended \d+ (months?|years?) ago or earlier", contract), contract
    for text in findings["finding"]:
        assert not re.search(r"\d\.\d{3,}", text), f"unrounded number in {text!r}"
        assert "_" not in text, f"raw feature name in {text!r}"


def test_causes_are_compared_by_first_reasons_not_by_feature_count(contrib_and_labels):
    contrib, labels = contrib_and_labels
    drivers = explain.driver_table(contrib, labels)
    main = explain.customer_reasons(contrib)["main_cause"]
    families = explain.cause_family_table(contrib, drivers, main)
    # Usage decline has six noisy features; summing their mean |SHAP| would put it first.
    summed = drivers.groupby("cause_family")["mean_abs_shap"].sum().idxmax()
    assert summed == "usage_decline"
    assert set(families["cause_family"].head(2)) == {"network_quality", "contract_lifecycle"}
    assert families["share_of_top_reasons"].sum() <= 1.0 + 1e-9


def test_retention_plan_counts_customers_money_and_calls():
    plan = pd.DataFrame(
        {
            "main_cause": ["price", "price", "competitor", "billing_arrears"],
            "churn_probability": [0.5, 0.1, 0.8, 0.4],
            "revenue_at_risk": [10.0, 2.0, 40.0, 5.0],
            "expected_profit": [3.0, -1.0, 9.0, 2.0],
            "action": ["plan review", "plan review", "retention offer", "no action"],
            "weight": [1.0, 1.0, 2.0, 1.0],
        }
    )
    table = retention_plan(plan, contact_capacity=0.2, scale=10).set_index("cause_family")
    assert table.loc["competitor", "customers"] == 20
    assert table.loc["competitor", "revenue_at_risk"] == 800
    assert table.loc["price", "expected_churners"] == pytest.approx(6.0)
    assert table.loc["price", "calls_worth_making"] == 10
    assert table.loc["billing_arrears", "calls_worth_making"] == 0
    # capacity: 20 % of 50 customers = 10 calls
    assert table.loc["competitor", "share_of_capacity"] == pytest.approx(2.0)
    assert table.index[0] == "competitor"
    assert table.loc["price", "actions"] == "plan review (20)"


def test_report_says_what_to_do_with_units_and_a_primer(contrib_and_labels):
    contrib, labels = contrib_and_labels
    drivers = explain.driver_table(contrib, labels)
    main = explain.customer_reasons(contrib)["main_cause"]
    plan = retention_plan(
        pd.DataFrame(
            {
                "main_cause": main.fillna("none"),
                "churn_probability": 0.2,
                "revenue_at_risk": 3.0,
                "expected_profit": 1.0,
                "action": "technical callback",
                "weight": 1.0,
            }
        ),
        contact_capacity=0.1,
    )
    page = render_report(
        ReportInputs(
            title="t",
            model_card={"Model": "m"},
            metrics={"test_roc_auc": 0.8},
            drivers=drivers,
            families=explain.cause_family_table(contrib, drivers, main),
            findings=explain.driver_findings(contrib, labels, drivers, 3, currency="EUR"),
            segments=pd.DataFrame(),
            plan=plan,
            currency="EUR",
            horizon_days=60,
            contact_capacity=0.1,
        )
    )
    text = re.sub(r"<[^>]+>", " ", page)
    assert "How to read this report" in text and "log-odds" in text
    assert "What to do" in text and "technical callback" in text
    assert re.search(r"EUR [\d,]+ of revenue at risk", text)
    assert "Network quality" in text and "contact capacity" in text


def test_snapshot_columns_get_causes_guessed_and_overridable():
    causes = guess_column_causes(
        ["MonthlyCharges", "Contract", "TechSupport", "tenure", "Total day minutes", "zzz"],
        overrides={"tenure": "contract_lifecycle"},
    )
    assert causes == {
        "MonthlyCharges": "price",
        "Contract": "contract_lifecycle",
        "TechSupport": "service_complaints",
        "tenure": "contract_lifecycle",
        "Total day minutes": "usage_decline",
        "zzz": "other",
    }
    assert set(guess_column_causes(["Contract"], guess=False).values()) == {"other"}
    with pytest.raises(Exception, match="unknown cause family"):
        guess_column_causes(["a"], overrides={"a": "vibes"})


def test_snapshot_causes_reach_reasons_and_families():
    values = pd.DataFrame({"MonthlyCharges": [1.0, -1.0], "Contract": [-0.5, 2.0]})
    features = pd.DataFrame(
        {
            "MonthlyCharges": [99.5, 20.0],
            "Contract": pd.Categorical(["Two year", "Month-to-month"]),
        }
    )
    contrib = explain.Contributions(
        values=values,
        base_value=0.0,
        features=features,
        causes={"MonthlyCharges": "price", "Contract": "contract_lifecycle"},
    )
    reasons = explain.customer_reasons(contrib)
    assert reasons["main_cause"].tolist() == ["price", "contract_lifecycle"]
    assert reasons.loc[1, "reason_1"] == "Contract: Month-to-month"
    assert set(explain.cause_family_contributions(contrib).columns) == {
        "price",
        "contract_lifecycle",
    }


def test_a_missing_value_group_is_not_called_a_zero():
    words = explain._condition_words("top_competitor_out_share_30d", "is missing")
    assert not words.startswith("with no share"), words
    assert explain._condition_words("days_to_commitment_end", "is missing") == (
        "with no contract or lock-in period"
    )
