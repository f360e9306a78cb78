"""Uplift: point-in-time campaign history, the Qini curve, learners against risk targeting,
and scoring with uplift."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnml import review, scoring, uplift
from churnml.features import FeatureParams
from churnml.simulate import SimulationParams, simulate_dataset

# Risk and persuadability differ: sleeping dogs are long-tenured customers out of contract,
# persuadables those whose risk comes from price, competitors, contracts or complaints. Half
# of each campaign is held out and half drawn at random, so the learners see enough of both.
UPLIFT_SIMULATION = SimulationParams(
    name="uplift",
    n_customers=8_000,
    n_months=24,
    seed=5,
    calls_per_month=4.0,
    price_rise_month=8,
    network_incident_month=4,
    campaign_start_month=3,
    campaign_share=0.12,
    campaign_control_share=0.5,
    campaign_explore_share=0.5,
)


def _campaign_rows() -> pd.DataFrame:
    t = pd.Timestamp
    return pd.DataFrame(
        {
            "campaign_id": ["A", "A", "B", "C"],
            "customer_id": ["c1", "c2", "c1", "c1"],
            "assigned_at": [
                t("2025-01-01 06:00"),
                t("2025-01-01 06:00"),
                t("2025-04-01 06:00"),
                t("2025-08-01 06:00"),
            ],
            "group": ["treatment", "control", "treatment", "treatment"],
            "contacted_at": [
                t("2025-01-01 09:00"),
                pd.NaT,
                t("2025-04-01 10:00"),
                t("2025-08-01 10:00"),
            ],
            "accepted": pd.array([True, pd.NA, False, True], dtype="boolean"),
        }
    )


def test_campaign_history_uses_only_contacts_before_the_cutoff():
    campaigns = _campaign_rows()
    spine = pd.DataFrame(
        {
            "customer_id": ["c1", "c1", "c2", "c1"],
            "cutoff": pd.to_datetime(["2025-01-01", "2025-04-01", "2025-04-01", "2025-05-01"]),
        }
    )
    got = uplift.campaign_history_features(campaigns, spine)
    # At the first campaign's own date nothing is known yet; at the second, one contact.
    assert got["campaign_contacts_180d"].tolist() == [0.0, 1.0, 0.0, 2.0]
    assert got["campaign_offers_accepted_365d"].tolist() == [0.0, 1.0, 0.0, 1.0]
    assert np.isnan(got["days_since_campaign_contact"].iloc[0])
    assert got["days_since_campaign_contact"].iloc[1] == pytest.approx(90 - 9 / 24)
    # A later campaign, whatever its group, changes nothing at an earlier cutoff.
    later = pd.concat(
        [
            campaigns,
            pd.DataFrame(
                {
                    "campaign_id": ["D", "D"],
                    "customer_id": ["c1", "c2"],
                    "assigned_at": pd.to_datetime(["2025-05-01 06:00"] * 2),
                    "group": ["treatment", "control"],
                    "contacted_at": pd.to_datetime(["2025-05-01 07:00", None]),
                    "accepted": pd.array([True, pd.NA], dtype="boolean"),
                }
            ),
        ],
        ignore_index=True,
    )
    pd.testing.assert_frame_equal(uplift.campaign_history_features(later, spine), got)


def test_qini_curve_by_hand():
    # Four treated, four control; the first two treated stayed, their two controls left.
    score = np.array([8, 7, 6, 5, 4, 3, 2, 1], dtype=float)
    treated = np.array([1, 0, 1, 0, 1, 0, 1, 0], dtype=bool)
    churned = np.array([0, 1, 0, 1, 1, 0, 1, 0], dtype=float)
    curve = uplift.qini_curve(score, treated, churned, points=4)
    # Top 2: control churners 1 x (1/1) - treated churners 0 = 1; top 4: 2 - 0 = 2;
    # top 6: 2 x 3/3 - 1 = 1; all: 2 - 2 = 0 (the campaign as a whole kept nobody).
    assert curve.share.tolist() == [0, 0.25, 0.5, 0.75, 1.0]
    assert (curve.gain * 8).tolist() == pytest.approx([0, 1, 2, 1, 0])
    assert curve.coefficient > 0
    reverse = uplift.qini_curve(-score, treated, churned, points=4)
    assert reverse.coefficient < 0


def test_apply_uplift_ranks_by_incremental_profit_and_spares_sleeping_dogs():
    scores = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d"],
            "churn_probability": [0.9, 0.5, 0.3, 0.2],
            "monthly_revenue": [50.0, 50.0, 50.0, 10.0],
            "expected_profit": [30.0, 10.0, 5.0, 1.0],
            "action": ["renewal offer"] * 4,
            "script": [""] * 4,
            "value_tier": ["A"] * 4,
            "risk_band": ["R01"] * 4,
            "revenue_at_risk": [1.0] * 4,
            "main_cause": ["price"] * 4,
            "reason_1": [""] * 4,
            "reason_2": [""] * 4,
            "reason_3": [""] * 4,
        }
    )
    out = uplift.apply_uplift(scores, np.array([-0.10, 0.05, 0.20, 0.30]), 12, 30, 0.5, 2, 0.01)
    # uplift x revenue x 12 - (0.5 x 30 + 2)
    assert out["expected_incremental_profit"].tolist() == pytest.approx(
        [-60 - 17, 30 - 17, 120 - 17, 36 - 17]
    )
    assert out.loc[0, "action"] == uplift.DO_NOT_CONTACT
    ranked = scoring.rank_by_priority(out)
    assert ranked["customer_id"].tolist() == ["c", "d", "b", "a"]
    contacts = scoring.contact_list(ranked, 10)
    assert contacts["customer_id"].tolist() == ["c", "d", "b"]  # never the sleeping dog
    assert {"uplift", "expected_incremental_profit"} <= set(contacts.columns)


@pytest.fixture(scope="module")
def uplift_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame, list]:
    out = tmp_path_factory.mktemp("raw") / "uplift"
    simulate_dataset(UPLIFT_SIMULATION, out)
    settings = review.Settings(months=(3,))
    rows = review.load_review_rows(out, ["voluntary", "port_out"], settings, FeatureParams())
    frame = uplift.campaign_training_rows(rows, 3)
    frame["monthly_revenue"] = rows.loc[rows["churned_3m"].notna(), "monthly_revenue"].to_numpy()
    campaigns = review.read_campaigns(out)
    features = uplift.uplift_features(
        out, frame[["customer_id", "cutoff"]], campaigns, FeatureParams()
    )
    columns = [c for c in features.columns if c not in ("customer_id", "cutoff", "value_tier")]
    data = pd.concat([frame.reset_index(drop=True), features[columns]], axis=1)
    return out, data, columns


@pytest.mark.slow
def test_uplift_model_targets_better_than_churn_risk(uplift_data):
    """On later campaigns than it learnt from, the chosen learner's Qini is clearly above the
    ranking by churn risk, and the customers it would contact keep more true value."""
    out, data, columns = uplift_data
    evaluation = uplift.evaluate_learners(data, columns, 0.3, 150, 1)
    metrics = evaluation.metrics
    chosen = metrics[f"test_qini_{evaluation.chosen}"]
    assert chosen > metrics["test_qini_risk"] + 0.002, metrics
    assert chosen > metrics["test_qini_random"], metrics
    truth = uplift._true_uplift(out, evaluation.scores, 3)
    value = evaluation.scores["monthly_revenue"].to_numpy(float) * 12
    compared = uplift.compare_targeting(evaluation, value, 0.3, truth)
    assert (
        compared["test_true_value_per_contact_uplift"]
        > compared["test_true_value_per_contact_risk"]
    ), compared
    # Earlier campaigns train, later ones test.
    assert max(evaluation.train_campaigns) < min(evaluation.test_campaigns)


@pytest.mark.slow
def test_uplift_job_registers_and_scoring_ranks_by_it(
    trained_project: Path, tiny_dataset: Path, tmp_path: Path
):
    """`churnml uplift` on the tiny data (campaigns from its 7th month; few controls, hence
    uplift.min_group_rows=5) registers an uplift
    model beside the churn champion; scoring then carries uplift and incremental profit, and
    no one it marks "do not contact" is on the contact list. The shared project's registry
    is copied, not changed."""
    import shutil

    from churnml.config import compose_config
    from churnml.jobs import run_scoring

    shutil.copy(trained_project / "mlflow.db", tmp_path / "mlflow.db")
    common = [
        f"paths.root_dir={tmp_path}",
        f"data.path={tiny_dataset}",
        "data.name=tiny",
        "validation.enabled=false",
    ]
    trained = uplift.run_uplift(
        compose_config(
            "uplift",
            [
                *common,
                f"run_dir={tmp_path}/logs/uplift",
                "uplift.rounds=30",
                "uplift.min_group_rows=5",
            ],
        )
    )
    assert trained.model_name == "churnml_tiny_uplift" and trained.version == "1"
    assert trained.alias in ("champion", "challenger")
    assert {"test_qini_t_learner", "test_qini_x_learner", "test_qini_risk"} <= set(trained.metrics)
    if trained.alias != "champion":  # too little data to beat risk: force it for scoring
        from dataclasses import replace

        from churnml import tracking

        cfg = compose_config("score", [*common, f"run_dir={tmp_path}/logs/s0"])
        named = replace(cfg.tracking, registered_model_name="churnml_tiny_uplift")
        tracking.set_alias(named, "champion", trained.version)
    result = run_scoring(compose_config("score", [*common, f"run_dir={tmp_path}/logs/score"]))
    scores = pd.read_parquet(result.scores_path)
    assert {"uplift", "expected_incremental_profit"} <= set(scores.columns)
    assert scores["uplift"].notna().all()
    assert scores["priority_rank"].tolist() == list(range(1, len(scores) + 1))
    harmful = scores["uplift"] < -0.01
    assert (scores.loc[harmful, "action"] == uplift.DO_NOT_CONTACT).all()
    contacts = pd.read_csv(result.contact_list_path)
    assert "uplift" in contacts.columns
    assert not contacts["customer_id"].isin(scores.loc[harmful, "customer_id"]).any()
    assert contacts["expected_incremental_profit"].is_monotonic_decreasing
