"""Model fitting: LightGBM (default) or a logistic-regression baseline, then calibration.

`ChurnModel` bundles everything prediction needs (feature list, category levels, the fitted
estimator and the calibrator), so training and scoring share one code path.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

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

log = logging.getLogger(__name__)

MISSING_CATEGORY = "__missing__"


class TrainingError(ValueError):
    """The training data or settings cannot give a model."""


@dataclass
class FeatureFrameSpec:
    """The model's input schema: feature order, which are categorical, and their levels."""

    numeric: list[str]
    categorical: dict[str, list[str]] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    @classmethod
    def infer(cls, frame: pd.DataFrame, feature_columns: list[str]) -> FeatureFrameSpec:
        numeric, categorical = [], {}
        for column in feature_columns:
            series = frame[column]
            if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
                numeric.append(column)
            else:
                levels = series.dropna().astype(str).unique().tolist()
                categorical[column] = sorted(levels)
        return cls(numeric=numeric, categorical=categorical)

    def prepare(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Cast a feature frame to the model's dtypes: float64 numerics, fixed-level categoricals.

        pandas 3 strings and Arrow-backed columns are converted here, once, at the model's edge
        (LightGBM rejects them). Unseen category levels become missing.
        """
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise TrainingError(f"feature frame lacks the model's columns: {missing}")
        out = {}
        for column in self.numeric:
            out[column] = pd.to_numeric(frame[column], errors="raise").astype("float64").to_numpy()
        for column, levels in self.categorical.items():
            values = frame[column].astype(object).where(frame[column].notna(), None)
            out[column] = pd.Categorical(
                [None if v is None else str(v) for v in values], categories=levels
            )
        return pd.DataFrame(out, index=frame.index)[self.columns]

    def as_model_input(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The frame in the served model's input schema: float64 numerics, string categoricals."""
        prepared = self.prepare(frame)
        for column in self.categorical:
            prepared[column] = prepared[column].astype(object).where(prepared[column].notna(), None)
        return prepared


class ChurnModel:
    """A fitted churn model: raw estimator plus the calibrator fitted on the validation cutoff.

    `settings` records what scoring must repeat exactly (feature params, label horizon,
    eligibility); `reference` holds a sample of test-cutoff features and probabilities, the
    baseline that scoring's population-stability checks compare with.
    """

    def __init__(self, kind: str, spec: FeatureFrameSpec, estimator, calibrator=None):
        self.kind = kind
        self.spec = spec
        self.estimator = estimator
        self.calibrator = calibrator
        self.settings: dict = {}
        self.reference: pd.DataFrame | None = None

    @property
    def feature_names(self) -> list[str]:
        return self.spec.columns

    def predict_raw(self, features: pd.DataFrame) -> np.ndarray:
        """Uncalibrated probabilities."""
        prepared = self.spec.prepare(features)
        if self.kind == "lightgbm":
            return self.estimator.predict(prepared)
        return self.estimator.predict_proba(_as_sklearn_frame(prepared, self.spec))[:, 1]

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """Calibrated churn probabilities (a 0.3 means 30 %)."""
        raw = self.predict_raw(features)
        if self.calibrator is None:
            return raw
        return np.clip(self.calibrator.predict(raw), 0.0, 1.0)


class PlattCalibrator:
    """Platt scaling: a one-feature logistic regression on the raw score's logit."""

    def fit(self, raw: np.ndarray, y: np.ndarray) -> PlattCalibrator:
        self._sigmoid = LogisticRegression(C=1e6).fit(_logit(raw).reshape(-1, 1), y)
        return self

    def predict(self, raw: np.ndarray) -> np.ndarray:
        return self._sigmoid.predict_proba(_logit(raw).reshape(-1, 1))[:, 1]


class BetaCalibrator:
    """Beta calibration (Kull, Silva Filho and Flach, 2017): a logistic regression on log(p)
    and -log(1 - p). It bends both tails, which Platt scaling cannot, yet stays smooth and
    strictly monotone: no ties and never exactly 0 or 1, unlike isotonic regression."""

    def fit(self, raw: np.ndarray, y: np.ndarray) -> BetaCalibrator:
        design = _beta_design(raw)
        self._columns = [0, 1]
        self._model = LogisticRegression(C=1e6).fit(design, y)
        # A negative slope would make the map non-monotone: drop that term and refit.
        negative = [j for j in self._columns if self._model.coef_[0, j] < 0]
        if negative:
            self._columns = [j for j in self._columns if j not in negative] or [0]
            self._model = LogisticRegression(C=1e6).fit(design[:, self._columns], y)
        if (self._model.coef_ < 0).any():
            raise TrainingError(
                "beta calibration: churn falls as the raw score rises on the validation "
                "cutoff; the model ranks no better than chance there"
            )
        return self

    def predict(self, raw: np.ndarray) -> np.ndarray:
        return self._model.predict_proba(_beta_design(raw)[:, self._columns])[:, 1]


def _beta_design(raw: np.ndarray) -> np.ndarray:
    p = np.clip(raw, 1e-6, 1 - 1e-6)
    return np.column_stack([np.log(p), -np.log(1 - p)])


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _as_sklearn_frame(prepared: pd.DataFrame, spec: FeatureFrameSpec) -> pd.DataFrame:
    out = prepared.copy()
    for column in spec.categorical:
        out[column] = out[column].astype(object).where(out[column].notna(), MISSING_CATEGORY)
    return out


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
    booster = lgb.train(
        params,
        train_set,
        num_boost_round=model.num_boost_round,
        valid_sets=[val_set],
        valid_names=["validation"],
        callbacks=[
            lgb.early_stopping(model.early_stopping_rounds, verbose=False),
            lgb.log_evaluation(period=200),
            lgb.record_evaluation(evals),
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
        _as_sklearn_frame(x_train, spec), y_train, logisticregression__sample_weight=w_train
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
