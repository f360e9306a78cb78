"""Training, calibration, metrics, SHAP contributions and reasons on small synthetic data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnml import evaluation, explain
from churnml.config import Attribution, EvaluationConfig, ModelConfig, compose_config
from churnml.scoring import score_frame
from churnml.training import FeatureFrameSpec, TrainingError, fit_calibrator, train_model


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    queries = rng.poisson(0.3, n).astype(float)
    dropped = rng.beta(1, 20, n)
    region = rng.choice(["North", "South", "Lakes"], n)
    noise = rng.normal(size=n)
    logit = -3.2 + 1.2 * queries + 12 * dropped + (region == "Lakes") * 0.8
    label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame(
        {
            "customer_id": [f"C{i}" for i in range(n)],
            "port_out_queries_30d": queries,
            "dropped_call_rate_90d": dropped,
            "region": pd.Categorical(region),
            "noise": noise,
            "label": label,
            "weight": 1.0,
        }
    )


FEATURES = ["port_out_queries_30d", "dropped_call_rate_90d", "region", "noise"]


@pytest.fixture(scope="module")
def data():
    return _frame(6000, 1), _frame(3000, 2), _frame(3000, 3)


@pytest.fixture(scope="module", params=["lightgbm", "logreg"])
def model(request, data):
    train, validation, _ = data
    settings = compose_config("train", [f"model={request.param}", "run_dir=/tmp/unused"]).model
    return train_model(train, validation, FEATURES, settings, seed=1)


def test_model_ranks_and_is_calibrated(model, data):
    _, _, test = data
    p = model.predict_proba(test)
    metrics = evaluation.classification_metrics(test["label"].to_numpy(), p, "test")
    assert metrics["test_roc_auc"] > 0.7
    assert metrics["test_ece"] < 0.03
    assert abs(metrics["test_mean_probability"] - metrics["test_churn_rate"]) < 0.02


def test_calibration_keeps_the_ranking_and_never_says_0_or_100_percent(model, data):
    _, _, test = data
    raw, calibrated = model.predict_raw(test), model.predict_proba(test)
    assert ((calibrated > 0) & (calibrated < 1)).all()
    order = np.argsort(raw, kind="stable")
    assert (np.diff(calibrated[order]) >= 0).all()
    assert len(np.unique(calibrated)) == len(np.unique(raw))


def test_beta_calibration_repairs_a_distortion_platt_cannot():
    """Scores that squash low probabilities (raw = q^2): beta calibration bends that tail back."""
    rng = np.random.default_rng(7)
    q = rng.beta(1.2, 6.0, 200_000)
    y = (rng.random(len(q)) < q).astype(int)
    raw = q**2
    fit, check = slice(0, 100_000), slice(100_000, None)
    briers = {}
    for method in ("beta", "platt"):
        calibrated = fit_calibrator(raw[fit], y[fit], method).predict(raw[check])
        briers[method] = np.mean((calibrated - y[check]) ** 2)
        if method == "beta":
            assert np.abs(calibrated - q[check]).mean() < 0.003
    best_possible = np.mean((q[check] - y[check]) ** 2)
    assert briers["beta"] - best_possible < 0.25 * (briers["platt"] - best_possible)


def test_beta_calibration_refuses_scores_that_rank_backwards():
    rng = np.random.default_rng(8)
    raw = rng.uniform(0.01, 0.99, 5000)
    y = (rng.random(len(raw)) < 1 - raw).astype(int)
    with pytest.raises(TrainingError, match="no better than chance"):
        fit_calibrator(raw, y, "beta")


def test_more_port_out_queries_never_lower_risk(model, data):
    _, _, test = data
    more = test.assign(port_out_queries_30d=test["port_out_queries_30d"] + 2)
    assert (model.predict_proba(more) >= model.predict_proba(test) - 1e-9).all()


def test_customer_id_does_not_change_the_score(model, data):
    _, _, test = data
    renamed = test.assign(customer_id=[f"X{i}" for i in range(len(test))])
    np.testing.assert_array_equal(model.predict_proba(renamed), model.predict_proba(test))


@pytest.mark.parametrize("method", explain.ATTRIBUTION_METHODS)
def test_contributions_add_up_to_the_raw_score(model, data, method):
    _, _, test = data
    rows = test.head(500)
    contrib = explain.contributions(model, rows, method)
    raw = model.predict_raw(rows)
    logit = np.log(raw / (1 - raw))
    np.testing.assert_allclose(contrib.values.sum(axis=1) + contrib.base_value, logit, atol=1e-6)
    assert contrib.values.index.equals(rows.index)


@pytest.fixture(scope="module")
def lightgbm_model(data):
    train, validation, _ = data
    settings = compose_config("train", ["model=lightgbm", "run_dir=/tmp/unused"]).model
    return train_model(train, validation, FEATURES, settings, seed=1)


def test_path_attributions_share_treeshap_base_value_and_top_driver(lightgbm_model, data):
    model, test = lightgbm_model, data[2]
    exact = explain.contributions(model, test, "treeshap")
    path = explain.contributions(model, test, "path")
    assert path.base_value == pytest.approx(exact.base_value, abs=1e-9)
    same_top = (exact.values.idxmax(axis=1) == path.values.idxmax(axis=1)).mean()
    assert same_top > 0.85


def test_path_attributions_are_exact_shap_for_stumps(data):
    """With one split per tree a customer's path credits exactly its SHAP value."""
    train, validation, test = data
    settings = compose_config("train", ["model=lightgbm", "run_dir=/tmp/unused"]).model
    settings.params = {**settings.params, "num_leaves": 2}
    model = train_model(train, validation, FEATURES, settings, seed=1)
    exact = explain.contributions(model, test.head(300), "treeshap")
    path = explain.contributions(model, test.head(300), "path")
    np.testing.assert_allclose(path.values.to_numpy(), exact.values.to_numpy(), atol=1e-9)


def test_scoring_gives_the_top_of_the_call_lists_exact_reasons(lightgbm_model, data):
    rng = np.random.default_rng(4)
    test = data[2].assign(arpu_monthly_3m=rng.gamma(2.0, 15.0, len(data[2])))
    cfg = compose_config("score", ["run_dir=/tmp/unused", "scoring.exact_reasons_rows=100"])
    args = (pd.Timestamp("2025-01-01"), "churnml", "1", "run", cfg.scoring, cfg.evaluation)
    mixed = score_frame(lightgbm_model, test, *args)
    cfg.scoring.attribution = Attribution.treeshap
    exact = score_frame(lightgbm_model, test, *args).set_index("customer_id")

    assert (mixed.head(100)["reason_method"] == "shap").all()
    top_profit = mixed.nlargest(100, "expected_profit")
    assert (top_profit["reason_method"] == "shap").all()
    assert (mixed["reason_method"] == "path").sum() >= len(test) - 200
    assert (exact["reason_method"] == "shap").all()
    reason_columns = ["reason_1", "reason_2", "reason_3", "main_cause", "action"]
    shap_rows = mixed[mixed["reason_method"] == "shap"].set_index("customer_id")
    pd.testing.assert_frame_equal(
        shap_rows[reason_columns], exact.loc[shap_rows.index, reason_columns]
    )
    path_rows = mixed[mixed["reason_method"] == "path"].set_index("customer_id")
    agreement = (path_rows["main_cause"] == exact.loc[path_rows.index, "main_cause"]).mean()
    assert agreement > 0.8
    numbers = ["churn_probability", "revenue_at_risk", "expected_profit", "priority_rank"]
    pd.testing.assert_frame_equal(mixed[numbers], exact.reset_index()[numbers])


def test_unknown_attribution_method_is_refused(model, data):
    with pytest.raises(ValueError, match="saabas"):
        explain.contributions(model, data[2].head(5), "saabas")


@pytest.mark.parametrize("method", explain.ATTRIBUTION_METHODS)
def test_drivers_and_reasons_name_the_planted_causes(model, data, method):
    _, _, test = data
    contrib = explain.contributions(model, test, method)
    drivers = explain.driver_table(contrib, test["label"])
    assert set(drivers["feature"].head(2)) == {"port_out_queries_30d", "dropped_call_rate_90d"}
    assert drivers.loc[drivers["feature"] == "noise", "rank"].item() >= 3
    families = explain.cause_family_table(contrib, drivers)
    assert set(families["cause_family"].head(2)) == {"competitor", "network_quality"}
    reasons = explain.customer_reasons(contrib)
    heavy = test["port_out_queries_30d"] >= 2
    assert reasons.loc[heavy, "reason_1"].str.contains("port-out quer").mean() > 0.8
    assert (reasons.loc[heavy, "main_cause"] == "competitor").mean() > 0.8
    findings = explain.driver_findings(contrib, test["label"], drivers, top_n=2)
    assert findings["ratio"].min() > 1.2
    assert findings["finding"].str.contains("churn").all()


def test_fixed_categories_handle_unseen_levels(data):
    train, _, test = data
    spec = FeatureFrameSpec.infer(train, FEATURES)
    prepared = spec.prepare(test.assign(region="Atlantis"))
    assert prepared["region"].isna().all()
    assert list(prepared["region"].cat.categories) == ["Lakes", "North", "South"]
    with pytest.raises(TrainingError, match="lacks the model's columns"):
        spec.prepare(test.drop(columns=["noise"]))


def test_same_config_and_seed_give_the_same_model(data):
    train, validation, test = data
    settings = compose_config("train", ["run_dir=/tmp/unused", "model=lightgbm"]).model
    first = train_model(train, validation, FEATURES, settings, seed=5)
    second = train_model(train, validation, FEATURES, settings, seed=5)
    np.testing.assert_array_equal(first.predict_proba(test), second.predict_proba(test))


def test_single_class_training_data_is_refused(data):
    train, validation, _ = data
    with pytest.raises(TrainingError, match="single class"):
        train_model(train.assign(label=0), validation, FEATURES, ModelConfig(), seed=1)


def test_metrics_on_hand_computed_cases():
    y = np.array([0, 0, 0, 0, 0, 0, 0, 0, 1, 1])
    p = np.linspace(0.0, 0.9, 10)
    assert evaluation.lift_at(y, p, 0.1) == pytest.approx(1.0 / 0.2)
    assert evaluation.lift_at(y, p, 0.2) == pytest.approx(5.0)
    perfect = np.array([0.0] * 8 + [1.0] * 2)
    assert evaluation.expected_calibration_error(y.astype(float), perfect, bins=2) == 0.0


def test_profit_curve_respects_capacity():
    y = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    p = np.linspace(0.9, 0.0, 10)
    settings = EvaluationConfig(
        offer_cost=10, contact_cost=2, save_rate=0.5, months_kept=10, contact_capacity=0.3
    )
    curve = evaluation.profit_curve(y, p, np.full(10, 10.0), settings)
    # Each churner saved is worth 0.5 * (100 - 10) = 45, each contact costs 2.
    assert curve.profit[2] == pytest.approx(2 * 45 - 4)
    assert curve.best_fraction == pytest.approx(0.2)
    assert curve.best_fraction <= settings.contact_capacity
