"""Retention campaigns: the simulator's campaigns table and truth, and the three-month review."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnml import review
from churnml.features import FeatureParams
from churnml.simulate import SimulationParams, simulate_dataset
from churnml.simulate.campaigns import EFFECT_MONTHS

# Many campaigns on a small base: 24 months, a campaign every month from the 4th, 10 % of
# the base each, so the review has 57 campaign-months to check against the truth.
CAMPAIGN_SIMULATION = SimulationParams(
    name="campaigns",
    n_customers=6_000,
    n_months=24,
    seed=23,
    calls_per_month=4.0,
    price_rise_month=8,
    network_incident_month=4,
    campaign_start_month=3,
    campaign_share=0.10,
)
CONTRACT_COLUMNS = [
    "campaign_id",
    "customer_id",
    "assigned_at",
    "group",
    "channel",
    "offer",
    "offer_cost",
    "contacted_at",
    "accepted",
]


@pytest.fixture(scope="module")
def campaign_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("raw") / "campaigns"
    simulate_dataset(CAMPAIGN_SIMULATION, out)
    return out


@pytest.fixture(scope="module")
def review_rows(campaign_dataset: Path) -> pd.DataFrame:
    return review.load_review_rows(
        campaign_dataset, ["voluntary", "port_out"], review.Settings(), FeatureParams()
    )


@pytest.mark.slow
def test_campaigns_table_follows_the_contract(campaign_dataset: Path):
    table = pd.read_parquet(campaign_dataset / "campaigns.parquet")
    customers = pd.read_parquet(campaign_dataset / "customers.parquet")
    as_of = pd.Timestamp(json.loads((campaign_dataset / "manifest.json").read_text())["as_of"])
    assert list(table.columns) == CONTRACT_COLUMNS
    assert set(table["group"]) == {"treatment", "control"}
    assert not table.duplicated(["campaign_id", "customer_id"]).any()
    assert table["customer_id"].isin(customers["customer_id"]).all()
    assert (table["assigned_at"] <= as_of).all()
    assert set(table["channel"]) <= {"call_center", "sms", "email", "store", "app"}
    assert (table["offer_cost"] >= 0).all()
    contacted = table["contacted_at"].notna()
    assert not (contacted & (table["group"] == "control")).any(), "a control was contacted"
    assert (table.loc[contacted, "contacted_at"] >= table.loc[contacted, "assigned_at"]).all()
    assert (table.loc[contacted, "contacted_at"] <= as_of).all()
    assert table.loc[~contacted, "accepted"].isna().all()
    assert table.loc[contacted, "accepted"].notna().all()
    # Eligible at assignment: activated before it and not gone.
    c = customers.set_index("customer_id").loc[table["customer_id"]]
    assigned = table["assigned_at"].to_numpy()
    assert (pd.to_datetime(c["activated_at"]).to_numpy() < assigned).all()
    ended = pd.to_datetime(c["terminated_at"]).to_numpy()
    gone = ~np.isnat(ended)
    assert (ended[gone] > assigned[gone]).all()
    # A randomized control group of 10-20 % in every campaign; some contacts fail.
    share = table.groupby("campaign_id")["group"].apply(lambda g: (g == "control").mean())
    assert share.between(0.10, 0.20).all(), share
    treated = table[table["group"] == "treatment"]
    assert 0.4 < treated["contacted_at"].notna().mean() < 0.95


@pytest.mark.slow
def test_control_customers_stay_out_of_later_campaigns_during_follow_up(campaign_dataset: Path):
    table = pd.read_parquet(campaign_dataset / "campaigns.parquet").sort_values("assigned_at")
    gaps = table.groupby("customer_id")["assigned_at"].diff().dropna()
    assert (gaps >= pd.Timedelta(days=28 * EFFECT_MONTHS)).all()


@pytest.mark.slow
def test_truth_records_individual_and_campaign_effects(campaign_dataset: Path):
    truth = pd.read_parquet(campaign_dataset / "truth" / "campaign_effects.parquet")
    table = pd.read_parquet(campaign_dataset / "campaigns.parquet")
    assert len(truth) == len(table)
    assert set(truth["persuadability"]) == {"persuadable", "unaffected", "sleeping_dog"}
    done = truth[truth["months_followed"] == 3]
    kind = done.groupby("persuadability")["uplift_3m"]
    assert kind.min()["persuadable"] >= 0 and kind.mean()["persuadable"] > 0.02
    assert kind.max()["sleeping_dog"] <= 0 and kind.mean()["sleeping_dog"] < -0.02
    assert (done.loc[done["persuadability"] == "unaffected", "uplift_3m"].abs() < 1e-12).all()
    # By assignment: no effect without a contact.
    assert (done.loc[~done["would_be_reached"], "effect_3m"].abs() < 1e-12).all()
    summary = json.loads((campaign_dataset / "truth" / "campaigns.json").read_text())
    assert set(summary) == set(truth["campaign_id"])
    for cid, row in summary.items():
        if row["effect_3m"] is not None:
            expected = truth.loc[truth["campaign_id"] == cid, "effect_3m"].mean()
            assert row["effect_3m"] == pytest.approx(expected)


@pytest.mark.slow
def test_contacts_change_who_churns(campaign_dataset: Path, review_rows: pd.DataFrame):
    """The exits in `customers` follow the contacted hazards: among reached treatment
    customers the realized 3-month churn matches the truth with a contact, and sleeping dogs
    who were reached leave far more often than their untreated probability says."""
    truth = pd.read_parquet(campaign_dataset / "truth" / "campaign_effects.parquet")
    rows = review_rows.merge(truth, on=["campaign_id", "customer_id", "group"])
    rows = rows[rows["churned_3m"].notna() & (rows["months_followed"] == 3)]
    reached = rows[(rows["group"] == "treatment") & rows["contacted"]]
    p_contacted = reached["p_churn_3m_untreated"] - reached["uplift_3m"]
    z = (reached["churned_3m"].sum() - p_contacted.sum()) / np.sqrt(
        (p_contacted * (1 - p_contacted)).sum()
    )
    assert abs(z) < 4, z
    dogs = reached[reached["persuadability"] == "sleeping_dog"]
    p0 = dogs["p_churn_3m_untreated"]
    z_dogs = (dogs["churned_3m"].sum() - p0.sum()) / np.sqrt((p0 * (1 - p0)).sum())
    assert z_dogs > 3, z_dogs
    controls = rows[rows["group"] == "control"]
    p0 = controls["p_churn_3m_untreated"]
    z_control = (controls["churned_3m"].sum() - p0.sum()) / np.sqrt((p0 * (1 - p0)).sum())
    assert abs(z_control) < 4, z_control


@pytest.mark.slow
def test_review_intervals_cover_the_true_campaign_effects(
    campaign_dataset: Path, review_rows: pd.DataFrame
):
    tables = review.review_campaigns(review_rows, review.Settings())
    checked = review.compare_with_truth(tables["campaigns"], review.read_truth(campaign_dataset))
    covered = checked["covered"].dropna().astype(bool)
    assert len(covered) >= 55
    assert covered.mean() >= 0.9, checked[["campaign_id", "months", "difference", "ci_low",
                                           "ci_high", "true_difference"]]  # fmt: skip


def test_review_says_when_a_campaign_raised_churn_or_is_too_small():
    """Hand-built groups: churn 30 % with contact against 10 % without raises churn; ten
    customers a side are too few to tell; a zero difference on big groups is no effect."""
    settings = review.Settings(min_group_size=30)

    def rows(n_t: int, x_t: int, n_c: int, x_c: int) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "campaign_id": "C1",
                "group": ["treatment"] * n_t + ["control"] * n_c,
                "churned_3m": [1.0] * x_t + [0.0] * (n_t - x_t) + [1.0] * x_c + [0.0] * (n_c - x_c),
                "contacted": [True] * n_t + [False] * n_c,
            }
        )

    raised = review.compare_groups(rows(500, 150, 500, 50), 3, settings)
    assert raised["verdict"] == review.RAISED
    assert raised["difference"] == pytest.approx(0.2)
    assert raised["ci_low"] > 0
    assert "RAISED churn" in review.describe(raised, "Campaign C1")
    small = review.compare_groups(rows(10, 3, 10, 1), 3, settings)
    assert small["verdict"] == review.TOO_SMALL
    assert "too small to tell" in review.describe(small, "Campaign C1")
    none = review.compare_groups(rows(4000, 400, 4000, 400), 3, settings)
    assert none["verdict"] == review.NO_EFFECT
    assert none["ci_low"] < 0 < none["ci_high"]
    # Agresti-Caffo by hand: (151/502 - 51/502) +- 1.96 se.
    pt, pc = 151 / 502, 51 / 502
    se = np.sqrt(pt * (1 - pt) / 502 + pc * (1 - pc) / 502)
    assert raised["ci_low"] == pytest.approx(pt - pc - 1.959964 * se, abs=1e-6)
    # Per contact: half the treatment reached doubles the difference.
    half = rows(500, 150, 500, 50).assign(contacted=[True, False] * 250 + [False] * 500)
    assert review.compare_groups(half, 3, settings)["per_contact"] == pytest.approx(0.4)


def test_saved_customers_are_valued_at_lifetime_value_when_it_is_known():
    """Two customers saved of 100 treated: at 12 months of EUR 20, EUR 480; at a lifetime
    value of EUR 150 each, EUR 300. Costs do not depend on the basis."""
    n_t, n_c = 100, 100
    rows = pd.DataFrame(
        {
            "campaign_id": "C1",
            "group": ["treatment"] * n_t + ["control"] * n_c,
            "churned_3m": [1.0] * 8 + [0.0] * 92 + [1.0] * 10 + [0.0] * 90,
            "contacted": [True] * 50 + [False] * 150,
            "accepted": pd.array([True] * 10 + [False] * 40 + [pd.NA] * 150, dtype="boolean"),
            "offer_cost": 30.0,
            "monthly_revenue": 20.0,
            "lifetime_value": 150.0,
        }
    )
    months = review._money(rows, -0.02, review.Settings(months_kept=12, contact_cost=2))
    assert months["customers_saved"] == pytest.approx(2.0)
    assert months["revenue_saved"] == pytest.approx(480.0)
    assert months["cost"] == pytest.approx(10 * 30 + 50 * 2)
    lifetime = review.Settings(months_kept=12, contact_cost=2, value_basis=review.LIFETIME_VALUE)
    valued = review._money(rows, -0.02, lifetime)
    assert valued["revenue_saved"] == pytest.approx(300.0)
    assert valued["cost"] == months["cost"]
    assert "lifetime value" in review.value_basis_text(lifetime, "m_hazard v1", 12)
    assert "12 months of revenue" in review.value_basis_text(review.Settings(), None, None)


@pytest.mark.slow
def test_review_job_writes_an_escaped_report_and_skips_without_campaigns(
    campaign_dataset: Path, tmp_path: Path
):
    from churnml.config import compose_config

    def config(dataset: Path):
        return compose_config(
            "review",
            [
                f"paths.root_dir={tmp_path}",
                f"run_dir={tmp_path}/logs/review",
                f"data.path={dataset}",
                "data.name=campaigns",
                "validation.enabled=false",
                "review.causes_from_champion=false",
            ],
        )

    result = review.run_review(config(campaign_dataset))
    page = result.report_path.read_text()
    assert "RET-2024-04" in page and "too small to tell" in page
    assert result.coverage is not None and result.coverage >= 0.9
    assert any(s.startswith("All campaigns:") for s in result.sentences)
    # No time-to-churn model in this registry: 12 months of revenue, and the report says so.
    assert "12 months of revenue (no time-to-churn model registered)" in page
    assert (tmp_path / "reports" / f"campaign_review_{result.run_id}.html").exists()
    # Every value is escaped: a hostile campaign id stays text.
    tables = {
        "campaigns": pd.DataFrame({"campaign_id": ["<script>alert(1)</script>"]}),
        "segments": pd.DataFrame({"value": ["<b>x</b>"]}),
    }
    html_page = review.render_review(
        review.ReviewOutputs("t", {"<i>": "<i>"}, tables, ["<img src=x>"])
    )
    assert "<script>" not in html_page and "<img src=x>" not in html_page
    assert "&lt;script&gt;" in html_page
    # No campaigns table: skipped, nothing written.
    without = tmp_path / "plain"
    without.mkdir()
    for name in ("customers.parquet", "manifest.json"):
        (without / name).write_bytes((campaign_dataset / name).read_bytes())
    skipped = review.run_review(config(without))
    assert skipped.report_path is None and skipped.run_id is None


def test_docs_sample_size_table_comes_from_the_formula():
    text = (Path(__file__).parents[1] / "docs" / "campaigns.md").read_text()
    for p, d, k, column in ((0.10, 0.03, 85 / 15, 0), (0.06, 0.02, 1.0, 2), (0.20, 0.05, 4.0, 1)):
        n = review.control_size_needed(p, d, k)
        line = next(
            row
            for row in text.splitlines()
            if row.startswith(f"| {p * 100:.0f} % | {d * 100:.0f} point")
        )
        assert f"{n:,} ({round(n * (1 + k)):,})" == line.split("|")[3 + column].strip()


@pytest.mark.slow
def test_churnml_review_without_campaigns_logs_one_line_and_exits_0(
    campaign_dataset: Path, tmp_path: Path
):
    import os
    import subprocess
    import sys

    plain = tmp_path / "plain"
    plain.mkdir()
    for name in ("customers.parquet", "manifest.json"):
        (plain / name).write_bytes((campaign_dataset / name).read_bytes())
    done = subprocess.run(
        [sys.executable, "-m", "churnml", "review", f"data.path={plain}", "data.name=plain"],
        cwd=tmp_path,
        env={**os.environ, "CHURNML_ROOT": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "skipped, table campaigns not found" in done.stdout + done.stderr
    assert not (tmp_path / "reports").exists() and not (tmp_path / "mlflow.db").exists()
