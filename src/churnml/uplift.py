"""Uplift: who a retention contact saves, who it does not move, and who it pushes away.

Ranking by churn risk is not ranking by who can be saved. With campaign history (the
contract's `campaigns` table: randomized treatment and control), an uplift model estimates
each customer's individual effect of a contact on churn within `uplift.horizon_months`:
`uplift` = P(churn | not contacted) - P(churn | contacted); negative: a contact pushes the
customer away. Two learners with LightGBM:

- T-learner: one churn model on the treatment rows, one on the control rows; the uplift is
  the difference of their predictions.
- X-learner (Kuenzel et al. 2019): the same two models impute each customer's effect (a
  treatment customer's control prediction minus what happened, and the reverse), two more
  models learn those imputed effects, and their mix weighted by the treatment share is the
  uplift.

Point in time: every row's features are built at its campaign's date from rows strictly
before it (the feature library's rule), and the campaign-history features count only
contacts made before that date, never a later campaign's group. The learner is chosen out of
time: trained on the earlier campaigns, judged on the later ones by the Qini coefficient (the
area between the Qini curve and random targeting), against random targeting and against
targeting by churn risk. The chosen learner is then refit on every campaign and registered
in MLflow as `<churn model name>_uplift`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import lightgbm as lgb
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from churnml.features import FeatureParams, build_features
from churnml.model import FeatureFrameSpec, TrainingError
from churnml.scoring import DO_NOT_CONTACT

log = logging.getLogger(__name__)

LEARNERS = ("t_learner", "x_learner")
# Ranked among the campaign's customers only, not the whole base: left out of the model.
_SPINE_RELATIVE = ("value_tier",)
HISTORY_FEATURES = (
    "campaign_contacts_180d",
    "campaign_offers_accepted_365d",
    "days_since_campaign_contact",
)
_LGB_PARAMS = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 40,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "verbose": -1,
    "num_threads": 1,  # more threads crawl on a busy 2-core machine (measured 14x slower)
}


def campaign_history_features(campaigns: pd.DataFrame, spine: pd.DataFrame) -> pd.DataFrame:
    """Per spine row (customer_id, cutoff): contacts of the 180 days and accepted offers of
    the 365 days before the cutoff, and days since the last contact (NaN: none), from
    campaign rows contacted strictly before the cutoff. Assignments and groups never enter:
    a later campaign cannot leak into an earlier cutoff."""
    keys = spine[["customer_id", "cutoff"]].reset_index(drop=True).copy()
    keys["customer_id"] = keys["customer_id"].astype(str)
    keys["cutoff"] = pd.to_datetime(keys["cutoff"])
    keys["_row"] = np.arange(len(keys))
    contacts = campaigns.loc[campaigns["contacted_at"].notna(), ["customer_id", "contacted_at"]]
    contacts = contacts.assign(
        customer_id=contacts["customer_id"].astype(str),
        contacted_at=pd.to_datetime(contacts["contacted_at"]),
        accepted=campaigns.loc[contacts.index, "accepted"].fillna(False).astype(bool).to_numpy(),
    )
    pairs = keys.merge(contacts, on="customer_id", how="inner")
    pairs = pairs[pairs["contacted_at"] < pairs["cutoff"]]
    age = (pairs["cutoff"] - pairs["contacted_at"]).dt.total_seconds() / 86400.0
    pairs = pairs.assign(
        _recent=(age <= 180).astype(float),
        _accepted=((age <= 365) & pairs["accepted"]).astype(float),
        _age=age,
    )
    grouped = pairs.groupby("_row").agg(
        campaign_contacts_180d=("_recent", "sum"),
        campaign_offers_accepted_365d=("_accepted", "sum"),
        days_since_campaign_contact=("_age", "min"),
    )
    out = pd.DataFrame(index=keys["_row"])
    out = out.join(grouped)
    out["campaign_contacts_180d"] = out["campaign_contacts_180d"].fillna(0.0)
    out["campaign_offers_accepted_365d"] = out["campaign_offers_accepted_365d"].fillna(0.0)
    out.index = spine.index
    return out[list(HISTORY_FEATURES)]


def uplift_features(
    dataset_dir: str | Path,
    spine: pd.DataFrame,
    campaigns: pd.DataFrame,
    params: FeatureParams,
    features: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The feature library's features at each row's cutoff plus the campaign history.

    `features`, when given, are the library's features already built for `spine` (scoring
    has them), so they are not built twice."""
    if features is None:
        features = build_features(dataset_dir, spine, params)
    history = campaign_history_features(campaigns, spine)
    history.index = features.index
    return pd.concat([features, history], axis=1)


def campaign_training_rows(rows: pd.DataFrame, horizon_months: int) -> pd.DataFrame:
    """Review rows (`review.campaign_outcomes`) whose follow-up of `horizon_months` is complete,
    as (customer_id, cutoff = the campaign's date, treated, churned, campaign_id)."""
    outcome = f"churned_{horizon_months}m"
    done = rows[rows[outcome].notna()]
    return pd.DataFrame(
        {
            "customer_id": done["customer_id"].astype(str).to_numpy(),
            "cutoff": pd.to_datetime(done["assigned_at"]).dt.normalize().astype("datetime64[us]"),
            "treated": (done["group"] == "treatment").to_numpy(),
            "churned": done[outcome].to_numpy(float),
            "campaign_id": done["campaign_id"].astype(str).to_numpy(),
        }
    )


class UpliftModel:
    """A fitted T- or X-learner; `predict_uplift`: P(churn | no contact) - P(churn | contact)."""

    def __init__(self, learner: str, spec: FeatureFrameSpec, treatment_share: float) -> None:
        if learner not in LEARNERS:
            raise ValueError(f"unknown uplift learner {learner!r}; known: {LEARNERS}")
        self.learner = learner
        self.spec = spec
        self.treatment_share = treatment_share
        self.models: dict[str, lgb.Booster] = {}
        self.settings: dict = {}

    @property
    def feature_names(self) -> list[str]:
        return self.spec.columns

    def predict_outcomes(self, features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """P(churn | control) and P(churn | treatment) from the two outcome models."""
        x = self.spec.prepare(features)
        return self.models["control"].predict(x), self.models["treatment"].predict(x)

    def predict_uplift(self, features: pd.DataFrame) -> np.ndarray:
        x = self.spec.prepare(features)
        if self.learner == "t_learner":
            return self.models["control"].predict(x) - self.models["treatment"].predict(x)
        tau_t = self.models["effect_treatment"].predict(x)
        tau_c = self.models["effect_control"].predict(x)
        e = self.treatment_share
        return e * tau_c + (1.0 - e) * tau_t


def _fit_classifier(x: pd.DataFrame, y: np.ndarray, rounds: int, seed: int) -> lgb.Booster:
    return lgb.train({**_LGB_PARAMS, "seed": seed}, lgb.Dataset(x, y), num_boost_round=rounds)


def _fit_regressor(x: pd.DataFrame, y: np.ndarray, rounds: int, seed: int) -> lgb.Booster:
    params = {**_LGB_PARAMS, "objective": "regression", "seed": seed}
    return lgb.train(params, lgb.Dataset(x, y), num_boost_round=rounds)


def fit_uplift(
    frame: pd.DataFrame,
    feature_columns: list[str],
    learner: str,
    rounds: int,
    seed: int,
    min_group_rows: int = 20,
) -> UpliftModel:
    """Fit a T- or X-learner on rows with `treated` and `churned`."""
    treated = frame["treated"].to_numpy(bool)
    y = frame["churned"].to_numpy(float)
    if min(treated.sum(), (~treated).sum()) < min_group_rows:
        raise TrainingError(
            f"uplift needs at least {min_group_rows} treatment and {min_group_rows} control "
            f"customers with a complete follow-up (uplift.min_group_rows); found "
            f"{int(treated.sum())} and {int((~treated).sum())}"
        )
    spec = FeatureFrameSpec.infer(frame, feature_columns)
    x = spec.prepare(frame)
    model = UpliftModel(learner, spec, float(treated.mean()))
    model.models["treatment"] = _fit_classifier(x[treated], y[treated], rounds, seed)
    model.models["control"] = _fit_classifier(x[~treated], y[~treated], rounds, seed + 1)
    if learner == "x_learner":
        # Imputed effects as reductions of churn: what the customer would have done without
        # a contact minus what they did (treated), and the reverse (control).
        d_t = model.models["control"].predict(x[treated]) - y[treated]
        d_c = y[~treated] - model.models["treatment"].predict(x[~treated])
        model.models["effect_treatment"] = _fit_regressor(x[treated], d_t, rounds, seed + 2)
        model.models["effect_control"] = _fit_regressor(x[~treated], d_c, rounds, seed + 3)
    return model


@dataclass
class QiniCurve:
    """Incremental customers kept by contacting the top share of a ranking."""

    share: np.ndarray
    gain: np.ndarray  # per customer of the evaluated rows
    coefficient: float  # area between the curve and random targeting


def qini_curve(
    score: np.ndarray,
    treated: np.ndarray,
    churned: np.ndarray,
    value: np.ndarray | None = None,
    points: int = 50,
) -> QiniCurve:
    """The Qini curve of a ranking (highest score first) on randomized rows.

    At each share of the ranking, the customers kept = control churners of the top, scaled to
    the top's treatment size, minus treatment churners of the top (with `value`, money kept
    instead). Divided by the number of rows; the coefficient is the mean height above the
    straight line of random targeting.
    """
    order = np.argsort(-np.asarray(score), kind="stable")
    t = np.asarray(treated, bool)[order]
    y = np.asarray(churned, float)[order]
    v = np.ones(len(y)) if value is None else np.nan_to_num(np.asarray(value, float)[order])
    n_t, n_c = np.cumsum(t), np.cumsum(~t)
    y_t, y_c = np.cumsum(y * v * t), np.cumsum(y * v * ~t)
    gain = np.where(n_c > 0, y_c * n_t / np.maximum(n_c, 1), 0.0) - y_t
    cuts = np.unique(np.linspace(0, len(y), points + 1).round().astype(int))
    share = cuts / max(len(y), 1)
    heights = np.concatenate([[0.0], gain[cuts[1:] - 1]]) / max(len(y), 1)
    random_line = share * heights[-1]
    coefficient = float(np.trapezoid(heights - random_line, share))
    return QiniCurve(share, heights, coefficient)


def top_share_value(
    score: np.ndarray, true_uplift: np.ndarray, value: np.ndarray, share: float
) -> float:
    """Mean true value kept per contact when contacting the top `share` of a ranking (for
    simulated data, where each customer's true uplift is known)."""
    k = max(1, round(share * len(score)))
    top = np.argsort(-np.asarray(score), kind="stable")[:k]
    return float(np.mean(np.asarray(true_uplift)[top] * np.asarray(value)[top]))


def plot_qini(curves: dict[str, QiniCurve], title: str) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, curve in curves.items():
        ax.plot(100 * curve.share, 100 * curve.gain, label=f"{name} (Qini {curve.coefficient:.4f})")
    last = next(iter(curves.values()))
    ax.plot([0, 100], [0, 100 * last.gain[-1]], "--", color="#888", label="random")
    ax.set_xlabel("customers contacted (% of the ranking)")
    ax.set_ylabel("customers kept (% of all)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


@dataclass
class UpliftEvaluation:
    """Out-of-time comparison of the learners, random targeting and churn-risk targeting."""

    train_campaigns: list[str]
    test_campaigns: list[str]
    curves: dict[str, QiniCurve]
    chosen: str
    metrics: dict[str, float] = field(default_factory=dict)
    scores: pd.DataFrame | None = None  # the held-out rows with every ranking's score


def split_campaigns(frame: pd.DataFrame, test_share: float) -> tuple[list[str], list[str]]:
    """The earlier campaigns train, the later `test_share` of them (at least one) test."""
    order = frame.groupby("campaign_id")["cutoff"].min().sort_values().index.astype(str).tolist()
    if len(order) < 2:
        raise TrainingError(
            f"an out-of-time uplift evaluation needs at least 2 campaigns with a complete "
            f"follow-up; found {len(order)}"
        )
    n_test = min(len(order) - 1, max(1, round(test_share * len(order))))
    return order[:-n_test], order[-n_test:]


def evaluate_learners(
    frame: pd.DataFrame,
    feature_columns: list[str],
    test_share: float,
    rounds: int,
    seed: int,
    risk_column: str = "churn_risk",
    min_group_rows: int = 20,
) -> UpliftEvaluation:
    """Train each learner on the earlier campaigns, compare them on the later ones.

    The risk ranking is `risk_column` when the rows carry it (the champion's probability),
    else a churn model fitted on the same earlier campaigns (both groups).
    """
    train_ids, test_ids = split_campaigns(frame, test_share)
    train = frame[frame["campaign_id"].isin(train_ids)]
    test = frame[frame["campaign_id"].isin(test_ids)].copy()
    curves, metrics = {}, {}
    for learner in LEARNERS:
        model = fit_uplift(train, feature_columns, learner, rounds, seed, min_group_rows)
        test[f"score_{learner}"] = model.predict_uplift(test)
    if risk_column not in test:
        spec = FeatureFrameSpec.infer(train, feature_columns)
        risk = _fit_classifier(
            spec.prepare(train), train["churned"].to_numpy(float), rounds, seed + 7
        )
        test[risk_column] = risk.predict(spec.prepare(test))
    treated, churned = test["treated"].to_numpy(bool), test["churned"].to_numpy(float)
    for name in (*LEARNERS, "risk"):
        column = risk_column if name == "risk" else f"score_{name}"
        curves[name] = qini_curve(test[column].to_numpy(float), treated, churned)
        metrics[f"test_qini_{name}"] = curves[name].coefficient
    rng = np.random.default_rng(seed)
    curves["random"] = qini_curve(rng.random(len(test)), treated, churned)
    metrics["test_qini_random"] = curves["random"].coefficient
    chosen = max(LEARNERS, key=lambda name: curves[name].coefficient)
    metrics["test_rows"] = float(len(test))
    metrics["train_rows"] = float(len(train))
    return UpliftEvaluation(train_ids, test_ids, curves, chosen, metrics, test)


def expected_incremental_profit(
    uplift: np.ndarray,
    monthly_revenue: np.ndarray,
    months_kept: float,
    offer_cost: float,
    acceptance_rate: float,
    contact_cost: float,
) -> np.ndarray:
    """uplift x value saved - expected offer cost (the offer is paid when accepted, the
    contact always)."""
    value = np.nan_to_num(np.asarray(monthly_revenue, float), nan=0.0) * months_kept
    return np.asarray(uplift, float) * value - (acceptance_rate * offer_cost + contact_cost)


def apply_uplift(
    scores: pd.DataFrame,
    uplift: np.ndarray,
    months_kept: float,
    offer_cost: float,
    acceptance_rate: float,
    contact_cost: float,
    harm_threshold: float,
) -> pd.DataFrame:
    """Scores with `uplift` and `expected_incremental_profit`; customers a contact would push
    away (uplift below -harm_threshold) get the action "do not contact"."""
    out = scores.copy()
    out["uplift"] = np.asarray(uplift, float)
    out["expected_incremental_profit"] = expected_incremental_profit(
        out["uplift"].to_numpy(),
        out["monthly_revenue"].to_numpy(float),
        months_kept,
        offer_cost,
        acceptance_rate,
        contact_cost,
    )
    harmful = out["uplift"] < -harm_threshold
    out.loc[harmful, "action"] = DO_NOT_CONTACT
    out.loc[harmful, "script"] = "A contact is expected to raise this customer's churn."
    return out


def uplift_model_name(cfg) -> str:
    return f"{cfg.tracking.registered_model_name}{cfg.uplift.model_suffix}"


def _champion(cfg):
    """The churn champion (model, version) or None."""
    from churnml.tracking import NoChampionError, load_registered_model

    try:
        model, version, _ = load_registered_model(cfg.tracking, alias=cfg.tracking.champion_alias)
    except NoChampionError as error:
        log.info("uplift: no churn champion (%s)", error)
        return None
    return (model, version) if model.settings.get("data_kind", "events") == "events" else None


def _value_at_share(curve: QiniCurve, share: float) -> float:
    """Value kept per contacted customer when contacting `share` of the ranking."""
    i = int(np.argmin(np.abs(curve.share - share)))
    return float(curve.gain[i] / curve.share[i]) if curve.share[i] > 0 else float("nan")


def compare_targeting(
    evaluation: UpliftEvaluation, value: np.ndarray, share: float, truth: pd.Series | None
) -> dict[str, float]:
    """Retained value per contact on the held-out campaigns when contacting the top `share`
    by uplift or by churn risk: estimated from treatment and control (randomized), and, on
    simulated data, from each customer's true uplift."""
    test = evaluation.scores
    treated, churned = test["treated"].to_numpy(bool), test["churned"].to_numpy(float)
    scores = {"uplift": test[f"score_{evaluation.chosen}"].to_numpy(), "risk": test["churn_risk"]}
    out = {}
    for name, score in scores.items():
        curve = qini_curve(np.asarray(score, float), treated, churned, value, points=100)
        out[f"test_value_per_contact_{name}"] = _value_at_share(curve, share)
        if truth is not None:
            out[f"test_true_value_per_contact_{name}"] = top_share_value(
                np.asarray(score, float), truth.to_numpy(float), value, share
            )
    return out


@dataclass
class UpliftResult:
    run_id: str | None
    model_name: str | None
    version: str | None
    alias: str | None
    chosen: str | None
    metrics: dict[str, float]
    message: str


def run_uplift(cfg) -> UpliftResult:
    """Train, judge out of time, and register the uplift model (skipped without campaigns)."""
    from churnml import review, tracking
    from churnml.features.resolve import resolve_feature_params
    from churnml.jobs import _job_run

    dataset_dir = Path(cfg.data.path)
    campaigns = review.read_campaigns(review.require_dataset(dataset_dir))
    if campaigns is None:
        log.info("uplift: skipped, table campaigns not found in %s", dataset_dir)
        return UpliftResult(None, None, None, None, None, {}, "no campaigns table: skipped")
    settings = review.settings_from(cfg)
    settings = review.Settings(**{**settings.__dict__, "months": (cfg.uplift.horizon_months,)})
    with _job_run(cfg, "uplift") as run_id:
        rows = review.load_review_rows(dataset_dir, list(cfg.label.reasons), settings, cfg.features)
        frame = campaign_training_rows(rows, cfg.uplift.horizon_months)
        revenue = rows.loc[rows[f"churned_{cfg.uplift.horizon_months}m"].notna(), "monthly_revenue"]
        frame["monthly_revenue"] = revenue.to_numpy(float)
        champion = _champion(cfg)
        if champion is not None:
            params = FeatureParams(**champion[0].settings["features"])
        else:
            params = resolve_feature_params(dataset_dir, cfg.features, frame["cutoff"].max())
        spine = frame[["customer_id", "cutoff"]]
        library = build_features(dataset_dir, spine, params)
        features = uplift_features(dataset_dir, spine, campaigns, params, library)
        columns = [
            c for c in features.columns if c not in ("customer_id", "cutoff", *_SPINE_RELATIVE)
        ]
        data = pd.concat(
            [frame.reset_index(drop=True), features[columns].reset_index(drop=True)], axis=1
        )
        if champion is not None:
            data["churn_risk"] = champion[0].predict_proba(library.reset_index(drop=True))
        evaluation = evaluate_learners(
            data,
            columns,
            cfg.uplift.test_share,
            cfg.uplift.rounds,
            cfg.seed,
            min_group_rows=cfg.uplift.min_group_rows,
        )
        chosen = evaluation.chosen if cfg.uplift.learner == "auto" else cfg.uplift.learner
        metrics = dict(evaluation.metrics)
        truth = _true_uplift(dataset_dir, evaluation.scores, cfg.uplift.horizon_months)
        value = evaluation.scores["monthly_revenue"].to_numpy(float) * cfg.evaluation.months_kept
        metrics.update(compare_targeting(evaluation, value, cfg.uplift.capacity_share, truth))
        model = fit_uplift(
            data, columns, chosen, cfg.uplift.rounds, cfg.seed, cfg.uplift.min_group_rows
        )
        contacted = campaigns["contacted_at"].notna() & (campaigns["group"] == "treatment")
        accepted = campaigns.loc[contacted, "accepted"].fillna(False).astype(bool)
        model.settings = {
            "features": dict(params.__dict__),
            "horizon_months": cfg.uplift.horizon_months,
            "acceptance_rate": float(accepted.mean()) if len(accepted) else 0.0,
            "offer_cost": float(
                campaigns.loc[contacted, "offer_cost"][accepted.to_numpy()].fillna(0).mean()
            )
            if accepted.any()
            else float(cfg.evaluation.offer_cost),
            "learner": chosen,
            "trained_through": str(frame["cutoff"].max().date()),
            "churn_champion_version": champion[1] if champion else None,
        }
        beats = (
            metrics[f"test_qini_{chosen}"] > metrics["test_qini_risk"]
            and metrics[f"test_qini_{chosen}"] > metrics["test_qini_random"]
        )
        tracking.log_params(
            {
                "learner": chosen,
                "learner_setting": cfg.uplift.learner,
                "horizon_months": cfg.uplift.horizon_months,
                "train_campaigns": ",".join(evaluation.train_campaigns),
                "test_campaigns": ",".join(evaluation.test_campaigns),
                "rounds": cfg.uplift.rounds,
                "features": len(columns),
            }
        )
        tracking.log_metrics({k: v for k, v in metrics.items() if np.isfinite(v)})
        tracking.log_figure(
            plot_qini(
                {k: v for k, v in evaluation.curves.items() if k != "random"},
                "Qini on the held-out (later) campaigns",
            ),
            "uplift/qini.png",
        )
        name = uplift_model_name(cfg)
        example = data[columns].head(5)
        version = tracking.log_uplift_model(model, example, name)
        alias = cfg.tracking.champion_alias if beats else cfg.tracking.challenger_alias
        why = (
            f"{chosen}: Qini {metrics[f'test_qini_{chosen}']:.4f} on the later campaigns against "
            f"{metrics['test_qini_risk']:.4f} for churn-risk targeting and "
            f"{metrics['test_qini_random']:.4f} for random"
        )
        message = (
            f"{name} v{version} is the uplift {alias}: {why}"
            if beats
            else f"{name} v{version} registered as {alias}, not used by scoring: {why}"
        )
        tracking.set_alias(_named(cfg.tracking, name), alias, version)
        tracking.describe_run(message)
        tracking.set_tags({"exit_code": 0, "uplift_decision": message[:5000]})
    log.info(message)
    return UpliftResult(run_id, name, version, alias, chosen, metrics, message)


def _named(tracking_cfg, name: str):
    from dataclasses import replace

    return replace(tracking_cfg, registered_model_name=name)


def _true_uplift(dataset_dir: Path, scores: pd.DataFrame, horizon: int) -> pd.Series | None:
    """Each held-out row's true uplift (simulated data only)."""
    from churnml.simulate.truth import CAMPAIGN_EFFECTS_FILE

    path = dataset_dir / CAMPAIGN_EFFECTS_FILE
    if not path.exists():
        return None
    truth = pd.read_parquet(path, columns=["campaign_id", "customer_id", f"uplift_{horizon}m"])
    merged = scores[["campaign_id", "customer_id"]].merge(
        truth, on=["campaign_id", "customer_id"], how="left"
    )
    return merged[f"uplift_{horizon}m"]


def score_uplift(
    cfg, dataset_dir: Path, scores: pd.DataFrame, features: pd.DataFrame
) -> pd.DataFrame:
    """Scores with uplift, expected incremental profit and "do not contact", re-ranked, when an
    uplift model is registered as champion; the scores unchanged otherwise (one log line)."""
    from churnml import review, tracking
    from churnml.scoring import rank_by_priority

    name = uplift_model_name(cfg)
    loaded = tracking.load_registered_uplift(cfg.tracking, name, cfg.tracking.champion_alias)
    if loaded is None:
        log.info("scoring: no uplift model %s@%s: ranked by churn risk", name, "champion")
        return scores
    model, version = loaded
    campaigns = review.read_campaigns(dataset_dir)
    if campaigns is None:
        campaigns = pd.DataFrame(columns=["customer_id", "contacted_at", "accepted"])
    params = FeatureParams(**model.settings["features"])
    spine = features[["customer_id", "cutoff"]]
    same = all(c in features.columns for c in model.feature_names if c not in HISTORY_FEATURES)
    library = features if same else build_features(dataset_dir, spine, params)
    x = uplift_features(dataset_dir, spine, campaigns, params, library)
    by_id = pd.Series(model.predict_uplift(x), index=x["customer_id"].astype(str).to_numpy())
    out = apply_uplift(
        scores,
        by_id.reindex(scores["customer_id"].astype(str)).to_numpy(float),
        cfg.evaluation.months_kept,
        model.settings.get("offer_cost", cfg.evaluation.offer_cost),
        model.settings.get("acceptance_rate", 1.0),
        cfg.evaluation.contact_cost,
        cfg.uplift.harm_threshold,
    )
    pushed_away = int((out["action"] == DO_NOT_CONTACT).sum())
    log.info(
        "scoring: uplift from %s v%s; %d customers a contact would push away get %r",
        name,
        version,
        pushed_away,
        DO_NOT_CONTACT,
    )
    tracking.set_tags({"uplift_model": f"{name} v{version}"})
    tracking.log_metrics(
        {"do_not_contact": float(pushed_away), "mean_uplift": float(out["uplift"].mean())}
    )
    return rank_by_priority(out)
