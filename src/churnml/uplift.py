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

A learner's raw uplift is several times too wide (two noisy churn models subtracted). The
chosen learner, as trained on the earlier campaigns, is calibrated on the later ones: a
linear shrinkage (slope in [0, 1]) of its predictions onto the treatment-minus-control
effects observed per bin of predicted uplift, registered with the model. Scoring's uplift is
that calibrated value bounded by what is possible ([p0 - 1, p0], p0 the churn probability
without a contact), and "do not contact" needs evidence: the calibrated uplift below
-harm_threshold with its one-sided upper bound below zero.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from itertools import pairwise
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
        self.calibration: UpliftCalibration | None = None

    @property
    def feature_names(self) -> list[str]:
        return self.spec.columns

    def predict_outcomes(self, features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """P(churn | control) and P(churn | treatment) from the two outcome models."""
        x = self.spec.prepare(features)
        return self.models["control"].predict(x), self.models["treatment"].predict(x)

    def predict_raw(self, features: pd.DataFrame) -> np.ndarray:
        """The learner's own uplift, neither calibrated nor bounded (for choosing learners)."""
        x = self.spec.prepare(features)
        if self.learner == "t_learner":
            return self.models["control"].predict(x) - self.models["treatment"].predict(x)
        tau_t = self.models["effect_treatment"].predict(x)
        tau_c = self.models["effect_control"].predict(x)
        e = self.treatment_share
        return e * tau_c + (1.0 - e) * tau_t

    def predict_effect(self, features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """The calibrated uplift, bounded by what is possible, and its standard error.

        Refuses a model without a calibration (registered before calibration existed): its
        raw uplift is several times too wide to act on."""
        calibration = getattr(self, "calibration", None)
        if calibration is None:
            raise TrainingError(
                "this uplift model has no out-of-time calibration (trained before it "
                "existed): run `churnml uplift` again"
            )
        raw = self.predict_raw(features)
        p_no_contact = self.models["control"].predict(self.spec.prepare(features))
        return bound_uplift(calibration.apply(raw), p_no_contact), calibration.standard_error(raw)

    def predict_uplift(self, features: pd.DataFrame) -> np.ndarray:
        """The calibrated, bounded uplift (what scoring and serving use)."""
        return self.predict_effect(features)[0]


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


# --- calibration and bounds ------------------------------------------------------------------


def bound_uplift(uplift: np.ndarray, p_no_contact: np.ndarray) -> np.ndarray:
    """Uplift within what is possible: a contact cannot lower churn by more than the churn
    probability without one (p0), nor raise it by more than 1 - p0."""
    p0 = np.clip(np.asarray(p_no_contact, float), 0.0, 1.0)
    return np.clip(np.asarray(uplift, float), p0 - 1.0, p0)


@dataclass
class UpliftCalibration:
    """A linear shrinkage of the raw uplift onto the effects observed on held-out campaigns:
    `intercept + slope x raw`, with the covariance of the two for each prediction's error.

    The slope is kept in [0, 1]: calibration may shrink a learner's spread, never widen it
    (a slope above 1 on a few hundred control customers is noise, not a signal to amplify).
    `raw_slope` is the fitted slope before that; `table` the bins it was fitted on."""

    intercept: float
    slope: float
    raw_slope: float
    covariance: tuple[tuple[float, float], tuple[float, float]]
    table: pd.DataFrame

    def apply(self, raw: np.ndarray) -> np.ndarray:
        return self.intercept + self.slope * np.asarray(raw, float)

    def standard_error(self, raw: np.ndarray) -> np.ndarray:
        """Standard error of the calibrated uplift (of the mean effect at that raw score)."""
        u = np.asarray(raw, float)
        (c00, c01), (_, c11) = self.covariance
        return np.sqrt(np.maximum(c00 + 2.0 * c01 * u + c11 * u * u, 0.0))


def _bin_effect(part: pd.DataFrame) -> tuple[float, float, int, int]:
    """Observed uplift (control churn - treatment churn) of one bin and its variance, within
    each campaign and weighted by campaign size (as the review pools), so campaigns with
    different control shares never mix their base rates."""
    from churnml.review import _stratum

    frame = part.assign(group=np.where(part["treated"], "treatment", "control"))
    strata = [
        s for _, p in frame.groupby("campaign_id", sort=False) if (s := _stratum(p, "churned"))
    ]
    if not strata:
        return np.nan, np.nan, 0, 0
    w = np.array([s["n_t"] + s["n_c"] for s in strata], float)
    w /= w.sum()
    effect = -float(sum(wi * s["raw"] for wi, s in zip(w, strata, strict=True)))
    var = float(sum(wi**2 * s["var"] for wi, s in zip(w, strata, strict=True)))
    return effect, var, sum(s["n_t"] for s in strata), sum(s["n_c"] for s in strata)


def calibration_table(
    raw: np.ndarray,
    treated: np.ndarray,
    churned: np.ndarray,
    campaign_id: np.ndarray,
    bins: int,
    truth: np.ndarray | None = None,
) -> pd.DataFrame:
    """Held-out rows binned by raw predicted uplift (equal counts): per bin the mean
    prediction, the observed treatment-minus-control effect (as a reduction) and its standard
    error; with `truth` (simulated data), the mean true effect by assignment."""
    frame = pd.DataFrame(
        {
            "raw": np.asarray(raw, float),
            "treated": np.asarray(treated, bool),
            "churned": np.asarray(churned, float),
            "campaign_id": np.asarray(campaign_id).astype(str),
        }
    )
    n_bins = min(bins, max(2, len(frame) // 50))  # about 50 rows a bin, at least 2 bins
    order = np.argsort(frame["raw"].to_numpy(), kind="stable")
    frame["bin"] = 0
    frame.loc[frame.index[order], "bin"] = np.arange(len(frame)) * n_bins // max(len(frame), 1)
    if truth is not None:
        frame["truth"] = np.asarray(truth, float)
    rows = []
    for b, part in frame.groupby("bin", sort=True):
        effect, var, n_t, n_c = _bin_effect(part)
        row = {
            "bin": int(b) + 1,
            "rows": len(part),
            "treatment": n_t,
            "control": n_c,
            "mean_prediction": float(part["raw"].mean()),
            "observed_effect": effect,
            "observed_se": float(np.sqrt(var)) if np.isfinite(var) else np.nan,
        }
        if truth is not None:
            row["true_effect"] = float(part["truth"].mean())
        rows.append(row)
    return pd.DataFrame(rows)


def fit_calibration(table: pd.DataFrame) -> UpliftCalibration:
    """Weighted least squares of the observed effect on the mean prediction over the bins
    (weights 1 / variance), its covariance widened by the bins' over-dispersion when the
    points scatter more than their errors say; the slope kept in [0, 1]."""
    usable = table[np.isfinite(table["observed_effect"]) & (table["observed_se"] > 0)]
    if len(usable) < 2:
        raise TrainingError(
            f"the uplift calibration needs at least 2 bins of held-out customers with both "
            f"treatment and control; found {len(usable)}"
        )
    x = usable["mean_prediction"].to_numpy(float)
    y = usable["observed_effect"].to_numpy(float)
    w = 1.0 / usable["observed_se"].to_numpy(float) ** 2
    design = np.column_stack([np.ones_like(x), x])
    information = design.T @ (design * w[:, None])
    if np.linalg.cond(information) > 1e12:  # one raw value in every bin: no slope to fit
        beta, covariance = np.array([np.average(y, weights=w), 0.0]), np.zeros((2, 2))
        covariance[0, 0] = 1.0 / w.sum()
        return UpliftCalibration(
            float(beta[0]), 0.0, 0.0, _pair(covariance), table.reset_index(drop=True)
        )
    covariance = np.linalg.inv(information)
    beta = covariance @ (design.T @ (w * y))
    dof = len(y) - 2
    dispersion = max(1.0, float(np.sum(w * (y - design @ beta) ** 2)) / dof) if dof > 0 else 1.0
    raw_slope = float(beta[1])
    slope = min(max(raw_slope, 0.0), 1.0)
    if slope != raw_slope:  # the slope held at a bound: refit the intercept alone
        intercept = float(np.average(y - slope * x, weights=w))
        covariance = np.array([[1.0 / w.sum(), 0.0], [0.0, 0.0]])
    else:
        intercept = float(beta[0])
    return UpliftCalibration(
        intercept, slope, raw_slope, _pair(covariance * dispersion), table.reset_index(drop=True)
    )


def _pair(matrix: np.ndarray) -> tuple[tuple[float, float], tuple[float, float]]:
    return (
        (float(matrix[0, 0]), float(matrix[0, 1])),
        (float(matrix[1, 0]), float(matrix[1, 1])),
    )


def do_not_contact(
    uplift: np.ndarray, standard_error: np.ndarray, confidence: float, harm_threshold: float
) -> np.ndarray:
    """Who a contact harms on the evidence: the calibrated uplift below -harm_threshold and
    its one-sided `confidence` upper bound below zero. A negative point estimate alone is
    not evidence."""
    from scipy.stats import norm

    u = np.asarray(uplift, float)
    upper = u + norm.ppf(confidence) * np.asarray(standard_error, float)
    return (u < -harm_threshold) & (upper < 0.0)


def cross_fitted_uplift(
    raw: np.ndarray,
    p_no_contact: np.ndarray,
    treated: np.ndarray,
    churned: np.ndarray,
    campaign_id: np.ndarray,
    customer_id: np.ndarray,
    bins: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated, bounded uplift and its standard error for held-out rows, each half's
    calibration fitted on the other half (halves by a hash of the customer id): figures on
    the rows a calibration learnt from would flatter it."""
    half = (
        pd.util.hash_pandas_object(
            pd.Series(np.asarray(customer_id).astype(str)), index=False
        ).to_numpy()
        % 2
    ).astype(bool)
    uplift, se = np.full(len(raw), np.nan), np.full(len(raw), np.nan)
    raw, treated, churned = np.asarray(raw, float), np.asarray(treated), np.asarray(churned)
    campaign_id, p0 = np.asarray(campaign_id), np.asarray(p_no_contact, float)
    for fit_on in (half, ~half):
        table = calibration_table(
            raw[fit_on], treated[fit_on], churned[fit_on], campaign_id[fit_on], bins
        )
        calibration = fit_calibration(table)
        other = ~fit_on
        uplift[other] = bound_uplift(calibration.apply(raw[other]), p0[other])
        se[other] = calibration.standard_error(raw[other])
    return uplift, se


def plot_uplift_calibration(table: pd.DataFrame, calibration: UpliftCalibration) -> plt.Figure:
    """Observed effect per bin of predicted uplift (with 95 % bars), the fitted line, the
    diagonal, and (simulated data) the true effect per bin."""
    fig, ax = plt.subplots(figsize=(6, 4))
    x = 100 * table["mean_prediction"]
    ax.errorbar(
        x, 100 * table["observed_effect"], yerr=196 * table["observed_se"], fmt="o",
        label="observed (control - treatment churn)",
    )  # fmt: skip
    if "true_effect" in table:
        ax.plot(x, 100 * table["true_effect"], "x", color="#d62728", label="simulator's truth")
    grid = np.linspace(table["mean_prediction"].min(), table["mean_prediction"].max(), 20)
    ax.plot(100 * grid, 100 * calibration.apply(grid), "-", color="#2ca02c",
            label=f"calibration (slope {calibration.slope:.2f})")  # fmt: skip
    ax.plot(100 * grid, 100 * grid, "--", color="#888", label="raw = observed")
    ax.axhline(0, color="#bbb", lw=1)
    ax.set_xlabel("predicted uplift, raw (points of churn)")
    ax.set_ylabel("effect on the held-out campaigns (points)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


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
    """Out-of-time comparison of the learners, random targeting and churn-risk targeting,
    pooled over rolling splits: each block of later campaigns predicted by learners trained
    on the campaigns whose follow-up had ended before the block began."""

    splits: list[tuple[list[str], list[str]]]  # (training campaigns, tested campaigns)
    curves: dict[str, QiniCurve]
    chosen: str
    metrics: dict[str, float] = field(default_factory=dict)
    # The tested rows with every ranking's score (`score_<learner>`, `churn_risk`) and each
    # learner's no-contact churn probability (`p0_<learner>`), from its block's models.
    scores: pd.DataFrame | None = None

    @property
    def test_campaigns(self) -> list[str]:
        return [c for _, tested in self.splits for c in tested]

    def describe_splits(self) -> str:
        """`K01..K04 -> K08..K10; ...`: which campaigns trained the learners that tested which."""
        return "; ".join(f"{tr[0]}..{tr[-1]} -> {te[0]}..{te[-1]}" for tr, te in self.splits)


def rolling_splits(
    frame: pd.DataFrame, test_share: float, blocks: int, horizon_months: int
) -> list[tuple[list[str], list[str]]]:
    """The later `test_share` of the campaigns (at least one) in up to `blocks` consecutive
    blocks; each block is judged by learners trained on the campaigns whose follow-up of
    `horizon_months` had ended when the block's first campaign began, as they would have
    been in production. Pooling the blocks judges on most campaigns instead of the last few
    (a few hundred control customers make one split's Qini mostly noise)."""
    start = frame.groupby("campaign_id")["cutoff"].min().sort_values()
    order = start.index.astype(str).tolist()
    if len(order) < 2:
        raise TrainingError(
            f"an out-of-time uplift evaluation needs at least 2 campaigns with a complete "
            f"follow-up; found {len(order)}"
        )
    n_test = min(len(order) - 1, max(1, round(test_share * len(order))))
    first = len(order) - n_test
    edges = np.linspace(first, len(order), min(blocks, n_test) + 1).round().astype(int)
    splits = []
    for lo, hi in pairwise(edges):
        begins = start.iloc[lo] - pd.DateOffset(months=horizon_months)
        trained = [c for c in order[:lo] if start[c] <= begins]
        if trained:
            splits.append((trained, order[lo:hi]))
    if not splits:
        raise TrainingError(
            f"an out-of-time uplift evaluation needs campaigns whose {horizon_months}-month "
            f"follow-up ended before a later campaign began; the {len(order)} campaigns run "
            f"from {start.iloc[0].date()} to {start.iloc[-1].date()} "
            f"(uplift.horizon_months, uplift.test_share)"
        )
    return splits


def evaluate_learners(
    frame: pd.DataFrame,
    feature_columns: list[str],
    test_share: float,
    rounds: int,
    seed: int,
    risk_column: str = "churn_risk",
    min_group_rows: int = 20,
    blocks: int = 3,
    horizon_months: int = 3,
) -> UpliftEvaluation:
    """Train each learner on earlier campaigns, compare them on later ones (`rolling_splits`).

    The risk ranking is `risk_column` when the rows carry it (the champion's probability),
    else a churn model fitted on each split's training campaigns (both groups).
    """
    splits = rolling_splits(frame, test_share, blocks, horizon_months)
    has_risk = risk_column in frame
    parts, train_rows = [], []
    for trained, tested in splits:
        train = frame[frame["campaign_id"].isin(trained)]
        test = frame[frame["campaign_id"].isin(tested)].copy()
        for learner in LEARNERS:
            model = fit_uplift(train, feature_columns, learner, rounds, seed, min_group_rows)
            test[f"score_{learner}"] = model.predict_raw(test)
            test[f"p0_{learner}"] = model.predict_outcomes(test)[0]
        if not has_risk:
            spec = FeatureFrameSpec.infer(train, feature_columns)
            risk = _fit_classifier(
                spec.prepare(train), train["churned"].to_numpy(float), rounds, seed + 7
            )
            test[risk_column] = risk.predict(spec.prepare(test))
        parts.append(test)
        train_rows.append(len(train))
    test = pd.concat(parts)
    treated, churned = test["treated"].to_numpy(bool), test["churned"].to_numpy(float)
    curves, metrics = {}, {}
    for name in (*LEARNERS, "risk"):
        column = risk_column if name == "risk" else f"score_{name}"
        curves[name] = qini_curve(test[column].to_numpy(float), treated, churned)
        metrics[f"test_qini_{name}"] = curves[name].coefficient
    rng = np.random.default_rng(seed)
    curves["random"] = qini_curve(rng.random(len(test)), treated, churned)
    metrics["test_qini_random"] = curves["random"].coefficient
    chosen = max(LEARNERS, key=lambda name: curves[name].coefficient)
    metrics["test_rows"] = float(len(test))
    metrics["test_control_rows"] = float((~treated).sum())
    metrics["test_blocks"] = float(len(splits))
    metrics["train_rows_first_block"] = float(train_rows[0])
    metrics["train_rows_last_block"] = float(train_rows[-1])
    return UpliftEvaluation(splits, curves, chosen, metrics, test)


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
    standard_error: np.ndarray | None = None,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Scores with `uplift` and `expected_incremental_profit`; customers a contact harms on
    the evidence (`do_not_contact`: below -harm_threshold, and its upper bound below zero;
    without `standard_error`, the point estimate alone) get the action "do not contact"."""
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
    se = np.zeros(len(out)) if standard_error is None else np.asarray(standard_error, float)
    harmful = do_not_contact(out["uplift"].to_numpy(), se, confidence, harm_threshold)
    out.loc[harmful, "action"] = DO_NOT_CONTACT
    out.loc[harmful, "script"] = "A contact is expected to raise this customer's churn."
    return out


def uplift_model_name(cfg) -> str:
    return f"{cfg.tracking.registered_model_name}{cfg.uplift.model_suffix}"


def uplift_tracking(cfg):
    """The churn model's tracking settings with the uplift model's registered name."""
    from dataclasses import replace

    return replace(cfg.tracking, registered_model_name=uplift_model_name(cfg))


def ranks_better(metrics: dict[str, float], learner: str, calibration_slope: float) -> bool:
    """Whether an uplift model should steer the contact list: its Qini on the later campaigns
    is above random targeting (the Qini coefficient is the area above that line, so above 0)
    and above churn-risk targeting, and its calibration there kept some of its spread. A
    slope of 0 means the later campaigns showed no link between its predictions and the
    effects observed: calibrated, it gives everyone the same uplift and ranks no one. (One
    random ranking's Qini, `test_qini_random`, is a single draw around 0: a reference for the
    plot, not a bar to clear.)"""
    qini = metrics[f"test_qini_{learner}"]
    return qini > max(metrics["test_qini_risk"], 0.0) and calibration_slope > 0


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
    evaluation: UpliftEvaluation,
    value: np.ndarray,
    share: float,
    truth: pd.Series | None,
    learner: str | None = None,
    extra: dict[str, np.ndarray] | None = None,
) -> dict[str, float]:
    """Retained value per contact on the held-out campaigns when contacting the top `share`
    by uplift, by churn risk, or by each `extra` ranking (the contact list's own order):
    estimated from treatment and control (randomized), and, on simulated data, from each
    customer's true uplift."""
    test = evaluation.scores
    treated, churned = test["treated"].to_numpy(bool), test["churned"].to_numpy(float)
    scores = {
        "uplift": test[f"score_{learner or evaluation.chosen}"].to_numpy(),
        "risk": test["churn_risk"],
        **(extra or {}),
    }
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
class HeldOutCalibration:
    """The calibration registered with the model (fitted on every held-out row) and, for
    honest figures, each held-out row's cross-fitted calibrated uplift and its error."""

    calibration: UpliftCalibration
    uplift: np.ndarray
    standard_error: np.ndarray
    do_not_contact: np.ndarray
    metrics: dict[str, float]


def calibrate_held_out(
    evaluation: UpliftEvaluation,
    learner: str,
    bins: int,
    confidence: float,
    harm_threshold: float,
    truth: pd.DataFrame | None = None,
) -> HeldOutCalibration:
    """Calibrate `learner` (as fitted on the earlier campaigns) on the later ones; measure
    the spread, the "do not contact" share before (negative point estimate) and after (the
    evidence rule), and on simulated data the same against the truth (`truth`: `uplift`, a
    contact's true effect, and `itt`, the true effect of an assignment)."""
    test = evaluation.scores
    raw = test[f"score_{learner}"].to_numpy(float)
    p0 = test[f"p0_{learner}"].to_numpy(float)
    treated, churned = test["treated"].to_numpy(bool), test["churned"].to_numpy(float)
    campaign = test["campaign_id"].to_numpy()
    itt = None if truth is None else truth["itt"].to_numpy(float)
    table = calibration_table(raw, treated, churned, campaign, bins, itt)
    calibration = fit_calibration(table)
    uplift, se = cross_fitted_uplift(
        raw, p0, treated, churned, campaign, test["customer_id"].to_numpy(), bins
    )
    flagged = do_not_contact(uplift, se, confidence, harm_threshold)
    raw_flagged = raw < -harm_threshold
    metrics = {
        "calibration_slope": calibration.slope,
        "calibration_raw_slope": calibration.raw_slope,
        "calibration_intercept": calibration.intercept,
        "calibration_slope_se": float(np.sqrt(calibration.covariance[1][1])),
        "test_uplift_sd_raw": float(raw.std()),
        "test_uplift_sd_calibrated": float(uplift.std()),
        "test_uplift_min_calibrated": float(uplift.min()),
        "test_uplift_max_calibrated": float(uplift.max()),
        "test_do_not_contact_share_raw": float(raw_flagged.mean()),
        "test_do_not_contact_share": float(flagged.mean()),
    }
    if truth is not None:
        harmed = truth["uplift"].to_numpy(float) < 0
        metrics["test_true_pushed_out_share"] = float(harmed.mean())
        if raw_flagged.any():
            metrics["test_do_not_contact_precision_raw"] = float(harmed[raw_flagged].mean())
        if flagged.any():
            metrics["test_do_not_contact_precision"] = float(harmed[flagged].mean())
        if table["true_effect"].notna().sum() >= 2:
            metrics["calibration_true_slope"] = float(
                np.polyfit(table["mean_prediction"], table["true_effect"], 1)[0]
            )
    return HeldOutCalibration(calibration, uplift, se, flagged, metrics)


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
    from churnml.jobs import _check_events, _job_run

    dataset_dir = Path(cfg.data.path)
    campaigns = review.read_campaigns(review.require_dataset(dataset_dir))
    if campaigns is None:
        log.info("uplift: skipped, table campaigns not found in %s", dataset_dir)
        return UpliftResult(None, None, None, None, None, {}, "no campaigns table: skipped")
    if cfg.validation.enabled:  # before anything is written
        _check_events(cfg, dataset_dir, Path(cfg.run_dir))
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
            blocks=cfg.uplift.test_blocks,
            horizon_months=cfg.uplift.horizon_months,
        )
        chosen = evaluation.chosen if cfg.uplift.learner == "auto" else cfg.uplift.learner
        metrics = dict(evaluation.metrics)
        truth = _true_uplift(dataset_dir, evaluation.scores, cfg.uplift.horizon_months)
        held_out = calibrate_held_out(
            evaluation,
            chosen,
            cfg.uplift.calibration_bins,
            cfg.uplift.harm_confidence,
            cfg.uplift.harm_threshold,
            truth,
        )
        metrics.update(held_out.metrics)
        contacted = campaigns["contacted_at"].notna() & (campaigns["group"] == "treatment")
        accepted = campaigns.loc[contacted, "accepted"].fillna(False).astype(bool)
        acceptance_rate = float(accepted.mean()) if len(accepted) else 0.0
        offer_cost = (
            float(campaigns.loc[contacted, "offer_cost"][accepted.to_numpy()].fillna(0).mean())
            if accepted.any()
            else float(cfg.evaluation.offer_cost)
        )
        value = evaluation.scores["monthly_revenue"].to_numpy(float) * cfg.evaluation.months_kept
        contact_order = contact_list_order(
            held_out,
            evaluation.scores["monthly_revenue"].to_numpy(float),
            cfg.evaluation.months_kept,
            offer_cost,
            acceptance_rate,
            cfg.evaluation.contact_cost,
        )
        metrics["test_qini_contact_list"] = qini_curve(
            contact_order, *_outcomes(evaluation.scores)
        ).coefficient
        metrics.update(
            compare_targeting(
                evaluation,
                value,
                cfg.uplift.capacity_share,
                None if truth is None else truth["uplift"],
                chosen,
                {"contact_list": contact_order},
            )
        )
        metrics.update(_worth_calling_metrics(contact_order, evaluation.scores, value, truth))
        model = fit_uplift(
            data, columns, chosen, cfg.uplift.rounds, cfg.seed, cfg.uplift.min_group_rows
        )
        # Fitted for the model learnt on the earlier campaigns, applied to the refit on all
        # of them (same learner and settings, a little more data: if anything, narrower).
        model.calibration = held_out.calibration
        model.settings = {
            "features": dict(params.__dict__),
            "horizon_months": cfg.uplift.horizon_months,
            "acceptance_rate": acceptance_rate,
            "offer_cost": offer_cost,
            "learner": chosen,
            "trained_through": str(frame["cutoff"].max().date()),
            "churn_champion_version": champion[1] if champion else None,
            "calibration_slope": held_out.calibration.slope,
        }
        beats = ranks_better(metrics, chosen, held_out.calibration.slope)
        tracking.log_params(
            {
                "learner": chosen,
                "learner_setting": cfg.uplift.learner,
                "horizon_months": cfg.uplift.horizon_months,
                "evaluation_splits": evaluation.describe_splits()[:6000],
                "rounds": cfg.uplift.rounds,
                "features": len(columns),
                "calibration_bins": cfg.uplift.calibration_bins,
                "harm_confidence": cfg.uplift.harm_confidence,
                "harm_threshold": cfg.uplift.harm_threshold,
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
        tracking.log_frame(held_out.calibration.table, "uplift/calibration.csv")
        tracking.log_figure(
            plot_uplift_calibration(held_out.calibration.table, held_out.calibration),
            "uplift/calibration.png",
        )
        name = uplift_model_name(cfg)
        example = data[columns].head(5)
        version = tracking.log_uplift_model(model, example, name)
        alias = cfg.tracking.champion_alias if beats else cfg.tracking.challenger_alias
        why = (
            f"{chosen}: Qini {metrics[f'test_qini_{chosen}']:.4f} on "
            f"{int(metrics['test_rows'])} customers of {len(evaluation.test_campaigns)} later "
            f"campaigns ({int(metrics['test_blocks'])} rolling splits) against "
            f"{metrics['test_qini_risk']:.4f} for churn-risk targeting and 0 for random; "
            f"calibration slope "
            f"{held_out.calibration.slope:.2f} (raw predictions shrunk to that share of their "
            f"spread), {metrics['test_do_not_contact_share']:.1%} of the later campaigns' "
            f'customers "do not contact" on the evidence '
            f"(a negative point estimate alone: {metrics['test_do_not_contact_share_raw']:.1%})"
        )
        message = (
            f"{name} v{version} is the uplift {alias}: {why}"
            if beats
            else f"{name} v{version} registered as {alias}, not used by scoring: {why}"
        )
        tracking.set_alias(uplift_tracking(cfg), alias, version)
        tracking.describe_run(message)
        tracking.set_tags({"exit_code": 0, "uplift_decision": message[:5000]})
    log.info(message)
    return UpliftResult(run_id, name, version, alias, chosen, metrics, message)


def _worth_calling_metrics(
    contact_order: np.ndarray, tested: pd.DataFrame, value: np.ndarray, truth: pd.DataFrame | None
) -> dict[str, float]:
    """What the contact list itself would do on the tested campaigns: it calls only customers
    with a positive expected incremental profit, so its share of them, and on simulated data
    the true value kept per call beside the same number of calls by churn risk."""
    worth = np.asarray(contact_order) > 0
    out = {"test_worth_calling_share": float(worth.mean())}
    if truth is None or not worth.any():
        return out
    kept = truth["uplift"].to_numpy(float) * value
    by_risk = np.argsort(-tested["churn_risk"].to_numpy(float), kind="stable")[: worth.sum()]
    out["test_true_value_per_call_worth_calling"] = float(kept[worth].mean())
    out["test_true_value_per_call_risk_same_calls"] = float(kept[by_risk].mean())
    return out


def _outcomes(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    return rows["treated"].to_numpy(bool), rows["churned"].to_numpy(float)


def contact_list_order(
    held_out: HeldOutCalibration,
    monthly_revenue: np.ndarray,
    months_kept: float,
    offer_cost: float,
    acceptance_rate: float,
    contact_cost: float,
) -> np.ndarray:
    """The contact list's own order on the held-out rows (higher first): the incremental
    profit of the cross-fitted calibrated uplift, "do not contact" last."""
    profit = expected_incremental_profit(
        held_out.uplift, monthly_revenue, months_kept, offer_cost, acceptance_rate, contact_cost
    )
    return np.where(held_out.do_not_contact, -np.inf, profit)


def _base_churn(hazard, features: pd.DataFrame, ids: np.ndarray, months: float) -> np.ndarray:
    """The time-to-churn model's probability of churning within `months`, for `ids`."""
    from churnml.hazard import survival_at

    p = 1.0 - survival_at(hazard.model.survival(features), months)
    by_id = pd.Series(p, index=features["customer_id"].astype(str).to_numpy())
    return by_id.reindex(ids).to_numpy(float)


def _true_uplift(dataset_dir: Path, scores: pd.DataFrame, horizon: int) -> pd.DataFrame | None:
    """Each held-out row's true effect (simulated data only): `uplift`, of a contact, and
    `itt`, of an assignment to treatment (a contact when the customer would be reached)."""
    from churnml.simulate.truth import CAMPAIGN_EFFECTS_FILE

    path = dataset_dir / CAMPAIGN_EFFECTS_FILE
    if not path.exists():
        return None
    columns = ["campaign_id", "customer_id", "would_be_reached", f"uplift_{horizon}m"]
    truth = pd.read_parquet(path, columns=columns)
    merged = scores[["campaign_id", "customer_id"]].merge(
        truth, on=["campaign_id", "customer_id"], how="left"
    )
    uplift = merged[f"uplift_{horizon}m"].to_numpy(float)
    reached = merged["would_be_reached"].astype("boolean").fillna(False).to_numpy(bool)
    return pd.DataFrame({"uplift": uplift, "itt": np.where(reached, uplift, 0.0)})


def score_uplift(
    cfg,
    dataset_dir: Path,
    scores: pd.DataFrame,
    features: pd.DataFrame,
    hazard=None,
    hazard_features: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Scores with uplift, expected incremental profit and "do not contact", re-ranked, when an
    uplift model is registered as champion; the scores unchanged otherwise (one log line).

    With a time-to-churn model (`hazard`, a `hazard_job.ScoringHazard`, and the features it
    scored), uplift is also bounded by its probability of churning within the uplift horizon:
    the learner's own no-contact model learnt from campaign customers, the riskiest, and
    overstates the churn of the rest of the base, where the time-to-churn model learnt from
    everyone."""
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
    if getattr(model, "calibration", None) is None:
        log.warning(
            "scoring: %s v%s has no out-of-time calibration (trained before it existed): "
            "ranked by churn risk; run `churnml uplift` again",
            name,
            version,
        )
        return scores
    effect, se = model.predict_effect(x)
    ids = x["customer_id"].astype(str).to_numpy()
    if hazard is not None:
        months = float(model.settings["horizon_months"])
        effect = bound_uplift(effect, _base_churn(hazard, hazard_features, ids, months))
    order = scores["customer_id"].astype(str)
    out = apply_uplift(
        scores,
        pd.Series(effect, index=ids).reindex(order).to_numpy(float),
        cfg.evaluation.months_kept,
        model.settings.get("offer_cost", cfg.evaluation.offer_cost),
        model.settings.get("acceptance_rate", 1.0),
        cfg.evaluation.contact_cost,
        cfg.uplift.harm_threshold,
        pd.Series(se, index=ids).reindex(order).to_numpy(float),
        cfg.uplift.harm_confidence,
    )
    pushed_away = int((out["action"] == DO_NOT_CONTACT).sum())
    log.info(
        "scoring: uplift from %s v%s (calibration slope %.2f); %d customers (%.1f %%) a "
        "contact harms on the evidence get %r",
        name,
        version,
        model.calibration.slope,
        pushed_away,
        100 * pushed_away / max(len(out), 1),
        DO_NOT_CONTACT,
    )
    tracking.set_tags({"uplift_model": f"{name} v{version}"})
    tracking.log_metrics(
        {
            "do_not_contact": float(pushed_away),
            "do_not_contact_share": pushed_away / max(len(out), 1),
            # What the uncalibrated rule (raw uplift below -harm_threshold) would mark.
            "do_not_contact_share_raw_rule": float(
                (model.predict_raw(x) < -cfg.uplift.harm_threshold).mean()
            ),
            "mean_uplift": float(out["uplift"].mean()),
            "uplift_sd": float(out["uplift"].std()),
        }
    )
    return rank_by_priority(out)
