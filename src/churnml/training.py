"""Model fitting: LightGBM (default) or a logistic-regression baseline, then calibration.

The fitted result is a `churnml.model.ChurnModel`, which scoring and serving load without
importing this module.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from churnml.config import ModelConfig
from churnml.model import (
    BetaCalibrator,
    ChurnModel,
    FeatureFrameSpec,
    PlattCalibrator,
    TrainingError,
    as_sklearn_frame,
)
from churnml.progress import Progress, lightgbm_callback, progress
from churnml.sampling import Fold, customer_half

__all__ = [
    "ChurnModel",
    "FeatureFrameSpec",
    "FoldFit",
    "RollingFit",
    "TrainingError",
    "fit_calibrator",
    "fit_rolling",
    "fold_rows",
    "refit_model",
    "train_model",
]

HOLDOUT_BUCKETS = 5  # without an out-of-time validation cutoff, 1 in 5 customers is held out

log = logging.getLogger(__name__)


def _fit_lightgbm(
    x_train: pd.DataFrame,
    y_train: np.ndarray,
    w_train: np.ndarray,
    x_val: pd.DataFrame,
    y_val: np.ndarray,
    model: ModelConfig,
    seed: int,
) -> lgb.Booster:
    params = {"objective": "binary", "metric": "binary_logloss", **model.params, "seed": seed}
    train_set = lgb.Dataset(x_train, y_train, weight=w_train, free_raw_data=True)
    val_set = lgb.Dataset(x_val, y_val, reference=train_set)
    evals: dict = {}
    with Progress("LightGBM boosting", total=model.num_boost_round, unit="rounds") as bar:
        booster = lgb.train(
            params,
            train_set,
            num_boost_round=model.num_boost_round,
            valid_sets=[val_set],
            valid_names=["validation"],
            callbacks=[
                lgb.early_stopping(model.early_stopping_rounds, verbose=False),
                lgb.record_evaluation(evals),
                lightgbm_callback(bar),
            ],
        )
    log.info(
        "LightGBM: best iteration %d of %d (validation logloss %.5f)",
        booster.best_iteration,
        model.num_boost_round,
        booster.best_score["validation"]["binary_logloss"],
    )
    return booster


def _fit_lightgbm_rounds(
    x_train: pd.DataFrame,
    y_train: np.ndarray,
    w_train: np.ndarray,
    model: ModelConfig,
    seed: int,
    rounds: int,
) -> lgb.Booster:
    """A fixed number of rounds, no early stopping: the refit has no data left to stop on."""
    params = {"objective": "binary", "metric": "binary_logloss", **model.params, "seed": seed}
    train_set = lgb.Dataset(x_train, y_train, weight=w_train, free_raw_data=True)
    with Progress("LightGBM refit", total=rounds, unit="rounds") as bar:
        return lgb.train(
            params, train_set, num_boost_round=rounds, callbacks=[lightgbm_callback(bar)]
        )


def _fit_logreg(
    x_train: pd.DataFrame,
    y_train: np.ndarray,
    w_train: np.ndarray,
    spec: FeatureFrameSpec,
    model: ModelConfig,
    seed: int,
) -> Pipeline:
    transformer = ColumnTransformer(
        [
            (
                "numeric",
                make_pipeline(
                    SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler()
                ),
                spec.numeric,
            ),
            (
                "categorical",
                OneHotEncoder(handle_unknown="ignore", min_frequency=20),
                list(spec.categorical),
            ),
        ]
    )
    params = {"C": 1.0, "max_iter": 2000, **model.params}
    pipeline = make_pipeline(transformer, LogisticRegression(random_state=seed, **params))
    pipeline.fit(
        as_sklearn_frame(x_train, spec), y_train, logisticregression__sample_weight=w_train
    )
    return pipeline


def fit_calibrator(raw: np.ndarray, y: np.ndarray, method: str):
    """Map raw scores to calibrated probabilities, fitted on the validation cutoff."""
    if method == "isotonic":
        return IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw, y)
    if method in ("platt", "sigmoid"):
        return PlattCalibrator().fit(raw, y)
    if method == "beta":
        return BetaCalibrator().fit(raw, y)
    if method == "none":
        return None
    raise TrainingError(f"unknown model.calibration {method!r}: use beta, isotonic, platt or none")


def train_model(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    feature_columns: list[str],
    model: ModelConfig,
    seed: int,
) -> ChurnModel:
    """Fit the configured model on the training rows and calibrate it on the validation rows.

    Both frames carry the feature columns plus `label` and (for training) `weight`.
    """
    for name, frame in (("train", train), ("validation", validation)):
        if frame["label"].nunique() < 2:
            raise TrainingError(f"the {name} split has a single class: cannot fit a classifier")
    started = time.perf_counter()
    spec = FeatureFrameSpec.infer(train, feature_columns)
    x_train, x_val = spec.prepare(train), spec.prepare(validation)
    y_train = train["label"].to_numpy()
    y_val = validation["label"].to_numpy()
    w_train = train["weight"].to_numpy() if "weight" in train else np.ones(len(train))
    if model.name == "lightgbm":
        estimator = _fit_lightgbm(x_train, y_train, w_train, x_val, y_val, model, seed)
    elif model.name == "logreg":
        estimator = _fit_logreg(x_train, y_train, w_train, spec, model, seed)
    else:
        raise TrainingError(f"unknown model.name {model.name!r}: use lightgbm or logreg")
    fitted = ChurnModel(model.name, spec, estimator)
    fitted.calibrator = fit_calibrator(fitted.predict_raw(validation), y_val, model.calibration)
    log.info(
        "%s trained on %d rows x %d features in %.1f s (calibration: %s)",
        model.name,
        len(train),
        len(feature_columns),
        time.perf_counter() - started,
        model.calibration,
    )
    return fitted


def refit_model(
    train: pd.DataFrame,
    feature_columns: list[str],
    model: ModelConfig,
    seed: int,
    rounds: int | None,
    calibration_raw: np.ndarray,
    calibration_labels: np.ndarray,
) -> ChurnModel:
    """Fit on every training row for `rounds` boosting rounds; calibrate on given scores.

    The rounds and the calibration scores come from the rolling folds (out of fold and out of
    time), so nothing the refit sees is used to stop or calibrate it.
    """
    if train["label"].nunique() < 2:
        raise TrainingError("the refit's rows have a single class: cannot fit a classifier")
    started = time.perf_counter()
    spec = FeatureFrameSpec.infer(train, feature_columns)
    x_train = spec.prepare(train)
    y_train = train["label"].to_numpy()
    w_train = train["weight"].to_numpy() if "weight" in train else np.ones(len(train))
    if model.name == "lightgbm":
        if not rounds:
            raise TrainingError("the LightGBM refit needs the folds' boosting rounds")
        estimator = _fit_lightgbm_rounds(x_train, y_train, w_train, model, seed, rounds)
    elif model.name == "logreg":
        estimator = _fit_logreg(x_train, y_train, w_train, spec, model, seed)
    else:
        raise TrainingError(f"unknown model.name {model.name!r}: use lightgbm or logreg")
    fitted = ChurnModel(model.name, spec, estimator)
    fitted.calibrator = fit_calibrator(calibration_raw, calibration_labels, model.calibration)
    log.info(
        "%s refit on %d rows x %d features (%s rounds) in %.1f s, calibrated on %d "
        "out-of-fold rows",
        model.name,
        len(train),
        len(feature_columns),
        rounds,
        time.perf_counter() - started,
        len(calibration_labels),
    )
    return fitted


def fold_rows(frame: pd.DataFrame, fold: Fold) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """A fold's training, validation and test rows.

    Without an out-of-time validation cutoff, one training customer in five is held out for
    early stopping and the fold's calibrator. A fold without embargo trains on one half of the
    customers and tests on the other.
    """
    cutoff = pd.to_datetime(frame["cutoff"])
    train = frame[cutoff.isin(list(fold.train_cutoffs))]
    test = frame[cutoff == fold.test_cutoff]
    if not fold.embargoed:
        train = train[customer_half(train["customer_id"]) == 0]
        test = test[customer_half(test["customer_id"]) == 1]
    if fold.validation_cutoff is not None:
        validation = frame[cutoff == fold.validation_cutoff]
    else:
        hashed = pd.util.hash_pandas_object(
            "holdout:" + train["customer_id"].astype(str), index=False
        ).to_numpy()
        held = hashed % HOLDOUT_BUCKETS == 0
        validation, train = train[held], train[~held]
    return (
        train.reset_index(drop=True),
        validation.reset_index(drop=True),
        test.reset_index(drop=True),
    )


@dataclass
class FoldFit:
    """A fold's model (never trained on its test cutoff) and its test rows."""

    fold: Fold
    model: ChurnModel
    test: pd.DataFrame
    validation: pd.DataFrame  # early stopping and the fold's calibrator: not a test
    train_rows: int
    best_iteration: int | None


@dataclass
class RollingFit:
    """The refit model and the fold models that judged it; `folds` newest first."""

    model: ChurnModel
    folds: list[FoldFit]
    rounds: int | None
    refit_rows: pd.DataFrame


def fit_rolling(
    frame: pd.DataFrame,
    folds: list[Fold] | tuple[Fold, ...],
    refit_cutoffs: list[pd.Timestamp] | tuple[pd.Timestamp, ...],
    feature_columns: list[str],
    model: ModelConfig,
    seed: int,
) -> RollingFit:
    """Fit one model per fold, then refit on every labelled cutoff.

    The refit's boosting rounds are the mean of the folds' early-stopped rounds, and its
    calibrator is fitted on the folds' raw scores of their test cutoffs: predictions from
    models that never saw those cutoffs, as the refit's scores at a future date will be.
    """
    fits: list[FoldFit] = []
    for index, fold in enumerate(progress(folds, "out-of-time folds", unit="folds"), start=1):
        train, validation, test = fold_rows(frame, fold)
        log.info("fold %d/%d: %s", index, len(folds), fold.describe())
        fitted = train_model(train, validation, feature_columns, model, seed)
        best = fitted.estimator.best_iteration if model.name == "lightgbm" else None
        fits.append(FoldFit(fold, fitted, test, validation, len(train), best or None))
    rounds = None
    if model.name == "lightgbm":
        iterations = [f.best_iteration or model.num_boost_round for f in fits]
        rounds = max(1, round(float(np.mean(iterations))))
    raw = np.concatenate([f.model.predict_raw(f.test) for f in fits])
    labels = np.concatenate([f.test["label"].to_numpy() for f in fits])
    cutoff = pd.to_datetime(frame["cutoff"])
    refit_rows = frame[cutoff.isin(list(refit_cutoffs))].reset_index(drop=True)
    refit = refit_model(refit_rows, feature_columns, model, seed, rounds, raw, labels)
    return RollingFit(refit, fits, rounds, refit_rows)
