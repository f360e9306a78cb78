"""The registered model as MLflow serves it: feature rows in, probability, band and reasons out.

`mlflow models serve -m models:/churnml_telco_sim@champion` loads this class. It needs only the
model module and the reason texts, so the served environment holds LightGBM, scikit-learn,
pandas and MLflow, not the training stack (no Hydra, plotting, SHAP or Great Expectations).
"""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd

from churnml.model import ChurnModel

SERVED_REASONS = 3


def reference_risk_bands(probability: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Risk band against the training population: "R01" is the riskiest tenth of it.

    Batch scoring ranks a whole night's customers; a served request may hold one row, so its
    band comes from where the probability falls among the training reference's probabilities.
    """
    reference = np.sort(np.asarray(reference, dtype=float))
    if len(reference) == 0:
        return np.full(len(probability), None, dtype=object)
    # Share of the reference at least as risky as each probability.
    above = len(reference) - np.searchsorted(reference, probability, side="left")
    share = above / len(reference)
    decile = np.clip(np.ceil(share * 10).astype(int), 1, 10)
    return np.array([f"R{d:02d}" for d in decile])


class ChurnModelPyfunc(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc wrapper of a `ChurnModel`.

    `predict` answers each feature row with `churn_probability`, `risk_band` (against the
    training population) and `reason_1..3` (exact TreeSHAP contributions, in plain words).
    Scoring and training unwrap `.model` and never go through `predict`.
    """

    def __init__(self, model: ChurnModel):
        self.model = model

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        from churnml.explain import contributions, customer_reasons

        features = pd.DataFrame(model_input).reset_index(drop=True)
        probability = self.model.predict_proba(features)
        reference = (
            self.model.reference["probability"].to_numpy()
            if self.model.reference is not None
            else np.array([])
        )
        out = pd.DataFrame(
            {
                "churn_probability": probability,
                "risk_band": reference_risk_bands(probability, reference),
            }
        )
        reasons = customer_reasons(
            contributions(self.model, features, "treeshap"),
            SERVED_REASONS,
            currency=self.model.settings.get("currency", ""),
        )
        for k in range(1, SERVED_REASONS + 1):
            out[f"reason_{k}"] = reasons[f"reason_{k}"].to_numpy()
        out["main_cause"] = reasons["main_cause"].to_numpy()
        return out


class UpliftModelPyfunc(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc wrapper of an `UpliftModel` (churnml.uplift): feature rows in, `uplift`
    out (the reduction of churn probability a contact brings; negative: it pushes away).
    Scoring unwraps `.model`."""

    def __init__(self, model):
        self.model = model

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        features = pd.DataFrame(model_input).reset_index(drop=True)
        return pd.DataFrame({"uplift": self.model.predict_uplift(features)})
