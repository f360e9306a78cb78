"""Model fitting: LightGBM (default) or a logistic-regression baseline, then calibration.

The fitted result is a `churnml.model.ChurnModel`, which scoring and serving load without
importing this module.
"""

from __future__ import annotations

import logging
import time

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
from churnml.progress import Progress, lightgbm_callback

__all__ = ["ChurnModel", "FeatureFrameSpec", "TrainingError", "fit_calibrator", "train_model"]

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
