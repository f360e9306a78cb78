"""The fitted churn model as scoring and serving use it: input schema, estimator, calibrator.

Kept apart from training so that loading a registered model (scoring, `mlflow models serve`)
imports only numpy, pandas, scikit-learn and LightGBM: no training code, plotting or Hydra.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

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
        return self.estimator.predict_proba(as_sklearn_frame(prepared, self.spec))[:, 1]

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


def as_sklearn_frame(prepared: pd.DataFrame, spec: FeatureFrameSpec) -> pd.DataFrame:
    """The prepared frame as scikit-learn pipelines take it: missing categories as a level."""
    out = prepared.copy()
    for column in spec.categorical:
        out[column] = out[column].astype(object).where(out[column].notna(), MISSING_CATEGORY)
    return out
