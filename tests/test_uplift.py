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
    """On later campaigns than it learnt from (the job's settings: the later 60 % of the
    campaigns in 3 rolling splits, 50 rounds), the chosen learner's Qini is above random
    targeting's line and clearly above the ranking by churn risk, and the customers it would
    contact keep more true value."""
    out, data, columns = uplift_data
    evaluation = uplift.evaluate_learners(data, columns, 0.6, 50, 1, blocks=3)
    metrics = evaluation.metrics
    chosen = metrics[f"test_qini_{evaluation.chosen}"]
    assert chosen > metrics["test_qini_risk"] + 0.001, metrics
    assert uplift.ranks_better(metrics, evaluation.chosen, calibration_slope=1.0), metrics
    truth = uplift._true_uplift(out, evaluation.scores, 3)
    value = evaluation.scores["monthly_revenue"].to_numpy(float) * 12
    # The contact list's own order: incremental profit of the calibrated, bounded uplift
    # (each half of the later campaigns calibrated on the other).
    held = uplift.calibrate_held_out(evaluation, evaluation.chosen, 10, 0.95, 0.01, truth)
    order = uplift.contact_list_order(
        held, evaluation.scores["monthly_revenue"].to_numpy(float), 12, 30.0, 0.4, 2.0
    )
    compared = uplift.compare_targeting(
        evaluation, value, 0.3, truth["uplift"], extra={"contact_list": order}
    )
    for ranking in ("uplift", "contact_list"):
        assert (
            compared[f"test_true_value_per_contact_{ranking}"]
            > compared["test_true_value_per_contact_risk"] + 3.0  # euros per contact
        ), compared
    # Earlier campaigns train, later ones test, and only those whose 3-month follow-up had
    # ended when the tested block began.
    start = data.groupby("campaign_id")["cutoff"].min()
    assert len(evaluation.splits) == 3
    for trained, tested in evaluation.splits:
        assert start[trained].max() + pd.DateOffset(months=3) <= start[tested].min()


@pytest.mark.slow
def test_uplift_job_registers_and_scoring_ranks_by_it(
    trained_project: Path, tiny_dataset: Path, tmp_path: Path
):
    """`churnml uplift` on the tiny data (campaigns from its 7th month, so churn within one
    month: a 3-month follow-up would end after the later campaigns began; few controls, hence
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
                "uplift.horizon_months=1",
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
    assert {"calibration_slope", "test_do_not_contact_share"} <= set(trained.metrics)
    # "do not contact" only below -harm_threshold (and on the evidence), never called.
    harmful = scores["action"] == uplift.DO_NOT_CONTACT
    assert (scores.loc[harmful, "uplift"] < -0.01).all()
    contacts = pd.read_csv(result.contact_list_path)
    assert "uplift" in contacts.columns
    assert not contacts["customer_id"].isin(scores.loc[harmful, "customer_id"]).any()
    assert contacts["expected_incremental_profit"].is_monotonic_decreasing
    # The review now values saved customers at the time-to-churn model's lifetime value.
    reviewed = review.run_review(
        compose_config(
            "review",
            [*common, f"run_dir={tmp_path}/logs/review", "review.causes_from_champion=false"],
        )
    )
    page = reviewed.report_path.read_text()
    assert "lifetime value (expected discounted margin over 12 months, from" in page
    assert "churnml_tiny_hazard v1" in page


def _over_confident_rows(n: int, seed: int, widen: float) -> pd.DataFrame:
    """Randomized rows whose true uplift is 0.04 x z (z standard normal) around a no-contact
    churn of 0.3, and a predictor `widen` times too wide plus noise of the same size."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(n)
    true = 0.04 * z
    treated = rng.random(n) < 0.5
    churned = rng.random(n) < np.where(treated, 0.3 - true, 0.3)
    raw = widen * true + rng.normal(0.0, widen * 0.04, n)
    return pd.DataFrame(
        {
            "raw": raw,
            "true": true,
            "treated": treated,
            "churned": churned.astype(float),
            "campaign_id": np.where(np.arange(n) % 2 == 0, "A", "B"),
            "customer_id": [f"c{i}" for i in range(n)],
        }
    )


def test_calibration_shrinks_an_over_confident_predictor():
    """A predictor 5x too wide (and noisy) is shrunk onto the effects treatment and control
    show: the slope near the truth's (0.1: the truth over the raw, noise included), the spread
    of the calibrated uplift near the truth's, not the raw's."""
    rows = _over_confident_rows(20_000, 3, widen=5.0)
    table = uplift.calibration_table(
        rows["raw"], rows["treated"], rows["churned"], rows["campaign_id"], 10, rows["true"]
    )
    assert len(table) == 10 and table["rows"].sum() == len(rows)
    assert table["mean_prediction"].is_monotonic_increasing
    calibration = uplift.fit_calibration(table)
    # E[true | raw] = raw x var(true) / var(raw) = raw x 0.04^2 x 5 / (2 x 25 x 0.04^2) = 0.1 raw
    assert 0.03 < calibration.slope < 0.2, calibration
    assert calibration.slope == calibration.raw_slope
    assert abs(calibration.intercept) < 0.01
    calibrated = calibration.apply(rows["raw"])
    assert calibrated.std() < 0.3 * rows["raw"].std()
    # The calibrated bins sit on the truth, the raw ones five times off.
    bins = calibration.apply(table["mean_prediction"])
    assert np.abs(bins - table["true_effect"]).max() < 0.02
    assert np.abs(table["mean_prediction"] - table["true_effect"]).max() > 0.15
    # The error grows away from the bins' centre, and is small where the data are.
    se = calibration.standard_error(np.array([0.0, 1.0]))
    assert 0 < se[0] < se[1] and se[0] < 0.01


def test_calibration_never_widens_and_drops_a_wrong_sign():
    """A slope above 1 (a predictor too narrow) is held at 1, and a predictor of the wrong
    sign gets slope 0: every customer then has the held-out campaigns' mean effect."""
    narrow = _over_confident_rows(20_000, 4, widen=0.5)
    table = uplift.calibration_table(
        narrow["raw"], narrow["treated"], narrow["churned"], narrow["campaign_id"], 10
    )
    calibration = uplift.fit_calibration(table)
    assert calibration.raw_slope > 1 and calibration.slope == 1.0
    wrong = uplift.calibration_table(
        -narrow["raw"], narrow["treated"], narrow["churned"], narrow["campaign_id"], 10
    )
    flat = uplift.fit_calibration(wrong)
    assert flat.raw_slope < 0 and flat.slope == 0.0
    assert np.ptp(flat.apply(narrow["raw"])) == 0.0
    assert abs(flat.intercept) < 0.02  # the mean effect is zero
    with pytest.raises(uplift.TrainingError, match="at least 2 bins"):
        uplift.fit_calibration(table.head(1))


def test_uplift_is_bounded_by_the_no_contact_churn_probability():
    rng = np.random.default_rng(0)
    p0 = rng.random(1000)
    bounded = uplift.bound_uplift(rng.normal(0, 2, 1000), p0)
    assert (bounded <= p0).all() and (bounded >= p0 - 1).all()
    assert uplift.bound_uplift(np.array([0.5, -0.5, 0.05]), np.array([0.1, 0.2, 0.1])).tolist() == (
        pytest.approx([0.1, -0.5, 0.05])
    )
    # A fitted model's uplift, even under a calibration pushing it far up, stays possible.
    rows = _over_confident_rows(800, 5, widen=5.0)
    rows["x"] = rows["raw"]
    model = uplift.fit_uplift(rows, ["x"], "t_learner", rounds=5, seed=1)
    with pytest.raises(uplift.TrainingError, match="no out-of-time calibration"):
        model.predict_uplift(rows)
    model.calibration = uplift.UpliftCalibration(
        0.9, 1.0, 1.0, ((1e-4, 0.0), (0.0, 0.0)), pd.DataFrame()
    )
    effect, se = model.predict_effect(rows)
    p_no_contact = model.predict_outcomes(rows)[0]
    assert (effect <= p_no_contact + 1e-12).all() and (effect < 0.9).all()
    assert se == pytest.approx(0.01)


def test_do_not_contact_needs_evidence_not_a_negative_point_estimate():
    u = np.array([-0.05, -0.05, -0.005, 0.02])
    se = np.array([0.01, 0.05, 0.001, 0.01])
    # Harm of 5 points sure to 1.6 sd: yes; the same with an error of 5 points: no; a harm
    # below harm_threshold: no; a gain: no.
    assert uplift.do_not_contact(u, se, 0.95, 0.01).tolist() == [True, False, False, False]


@pytest.mark.slow
def test_do_not_contact_share_near_the_truth_when_contacts_change_nothing(
    tmp_path_factory: pytest.TempPathFactory,
):
    """Campaigns whose contacts change nothing (campaign_effect_scale=0): the truth pushes
    no one out. A negative raw uplift marks a large share "do not contact"; the calibrated
    uplift with its evidence rule marks (nearly) none, and its spread is a fraction of the
    raw one. Measured on the later campaigns, each half calibrated on the other."""
    from dataclasses import replace

    out = tmp_path_factory.mktemp("raw") / "no_effect"
    simulate_dataset(
        replace(UPLIFT_SIMULATION, name="no_effect", n_customers=5_000, campaign_effect_scale=0.0),
        out,
    )
    rows = review.load_review_rows(
        out, ["voluntary", "port_out"], review.Settings(months=(3,)), FeatureParams()
    )
    frame = uplift.campaign_training_rows(rows, 3)
    features = uplift.uplift_features(
        out, frame[["customer_id", "cutoff"]], review.read_campaigns(out), FeatureParams()
    )
    columns = [c for c in features.columns if c not in ("customer_id", "cutoff", "value_tier")]
    data = pd.concat([frame.reset_index(drop=True), features[columns]], axis=1)
    evaluation = uplift.evaluate_learners(data, columns, 0.3, 50, 1)
    truth = uplift._true_uplift(out, evaluation.scores, 3)
    held = uplift.calibrate_held_out(evaluation, evaluation.chosen, 10, 0.95, 0.01, truth)
    m = held.metrics
    assert m["test_true_pushed_out_share"] == 0.0
    assert m["test_do_not_contact_share_raw"] > 0.2, m
    assert m["test_do_not_contact_share"] <= 0.05, m
    # Shrunk (the halves' slopes are noisy: about 0.35 of standard error each).
    assert held.calibration.slope < 0.8, m
    assert m["test_uplift_sd_calibrated"] < 0.75 * m["test_uplift_sd_raw"], m
    assert held.uplift.shape == (len(evaluation.scores),)


def test_a_model_whose_calibration_is_flat_does_not_steer_the_contact_list():
    from churnml.uplift import ranks_better

    metrics = {"test_qini_x_learner": 0.01, "test_qini_risk": -0.004, "test_qini_random": 0.0}
    assert ranks_better(metrics, "x_learner", calibration_slope=0.6)
    assert not ranks_better(metrics, "x_learner", calibration_slope=0.0)
    assert not ranks_better({**metrics, "test_qini_risk": 0.02}, "x_learner", 0.6)
    # Not above random targeting's line (a Qini coefficient of 0), whatever one random
    # draw scored.
    assert not ranks_better(
        {**metrics, "test_qini_x_learner": -0.001, "test_qini_risk": -0.004}, "x_learner", 0.6
    )
    assert ranks_better({**metrics, "test_qini_random": 0.02}, "x_learner", 0.6)


def test_uplift_is_bounded_by_the_time_to_churn_models_churn_within_the_horizon():
    """With a time-to-churn model, no customer's uplift exceeds its probability of churning
    within the uplift horizon: the learner's no-contact model, learnt from campaign
    customers, overstates the churn of the rest of the base."""
    from types import SimpleNamespace

    survival = np.array([[0.99, 0.98, 0.97, 0.96], [0.9, 0.8, 0.7, 0.6]])
    hazard = SimpleNamespace(model=SimpleNamespace(survival=lambda features: survival))
    features = pd.DataFrame({"customer_id": ["a", "b"]})
    base = uplift._base_churn(hazard, features, np.array(["b", "a"]), 3.0)
    assert base == pytest.approx([0.3, 0.03])
    # A learner's uplift of 0.1 for both: b keeps it, a is held at 0.03.
    assert uplift.bound_uplift(np.array([0.1, 0.1]), base) == pytest.approx([0.1, 0.03])
