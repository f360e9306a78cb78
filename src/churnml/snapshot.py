"""Snapshot datasets: one row per customer with features already aggregated (public churn sets).

Event feature building is skipped; sampling becomes a stratified split (or repeated stratified
cross-validation for small data); training, SHAP, MLflow and scoring are unchanged.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.model_selection import (
    RepeatedStratifiedKFold,
    StratifiedKFold,
    train_test_split,
)

from churnml.config import DataConfig, ModelConfig
from churnml.contract import CAUSE_FAMILIES
from churnml.evaluation import classification_metrics
from churnml.io import DatasetError
from churnml.model import FeatureFrameSpec
from churnml.training import train_model
from churnml.validation import ContractViolation, validate_snapshot

log = logging.getLogger(__name__)

NUMERIC_SHARE = (
    0.95  # an object column whose non-blank values parse as numbers this often is numeric
)
VALIDATION_SHARE = 0.2  # of the training part, held out for early stopping and calibration


@dataclass(frozen=True)
class SnapshotData:
    frame: pd.DataFrame  # customer_id, label, features
    feature_columns: list[str]


def read_snapshot(path: str | Path, data: DataConfig) -> SnapshotData:
    """Read, validate and type a snapshot file into (customer_id, label, features)."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"snapshot file {path} does not exist")
    id_column = data.id_column
    raw = pd.read_csv(path, dtype={id_column: str} if id_column else None)
    if data.label_column is None:
        raise DatasetError("data.label_column must name the snapshot's label column")
    id_for_check = id_column if id_column in raw.columns else None
    if id_column and id_for_check is None and id_column != "customer_id":
        raise DatasetError(f"snapshot {path.name}: id column {id_column!r} not found")
    report = validate_snapshot(
        raw.assign(_row_id=[f"row_{i}" for i in range(len(raw))]),
        id_column=id_for_check or "_row_id",
        label_column=data.label_column,
        positive_label=data.positive_label,
    )
    if not report.success:
        raise ContractViolation(report)
    customer_id = (
        raw[id_for_check].astype(str)
        if id_for_check
        else pd.Series([f"row_{i}" for i in range(len(raw))])
    )
    label = raw[data.label_column].astype(str).str.strip() == str(data.positive_label).strip()
    features = raw.drop(
        columns=[
            c
            for c in [id_for_check, data.label_column, *data.drop_columns]
            if c and c in raw.columns
        ]
    )
    for name, expression in data.derived_columns.items():
        try:
            features[name] = features.eval(expression)
        except (SyntaxError, NameError, KeyError, ValueError, TypeError) as error:
            raise DatasetError(
                f"data.derived_columns.{name}: cannot evaluate {expression!r} on "
                f"{path.name}: {error}"
            ) from error
    features = _type_columns(features, data.categorical_columns)
    frame = pd.concat(
        [
            pd.DataFrame(
                {"customer_id": customer_id.to_numpy(), "label": label.astype("int8").to_numpy()}
            ),
            features.reset_index(drop=True),
        ],
        axis=1,
    )
    if data.revenue_column:
        if data.revenue_column not in frame:
            raise DatasetError(f"data.revenue_column {data.revenue_column!r} is not a column")
        frame["arpu_monthly_3m"] = pd.to_numeric(frame[data.revenue_column], errors="coerce")
    feature_columns = [
        c for c in frame.columns if c not in ("customer_id", "label", "arpu_monthly_3m")
    ]
    log.info(
        "snapshot %s: %d rows, %d features, churn rate %.2f %%",
        path.name,
        len(frame),
        len(feature_columns),
        100 * frame["label"].mean(),
    )
    return SnapshotData(frame=frame, feature_columns=feature_columns)


def _type_columns(features: pd.DataFrame, categorical: list[str]) -> pd.DataFrame:
    """Numbers stored as text become numeric (blanks -> missing); other text becomes categorical."""
    out = features.copy()
    for column in out.columns:
        series = out[column]
        if column in categorical or pd.api.types.is_bool_dtype(series):
            out[column] = series.astype(str).astype("category")
            continue
        if pd.api.types.is_numeric_dtype(series):
            continue
        text = series.astype(str).str.strip()
        parsed = pd.to_numeric(text.where(text != ""), errors="coerce")
        non_blank = (text != "").sum()
        if non_blank and parsed.notna().sum() >= NUMERIC_SHARE * non_blank:
            out[column] = parsed.astype("float64")
        else:
            out[column] = series.astype(str).astype("category")
    return out


# Column-name words -> cause family, first match wins (a guess for one-row-per-customer files;
# `data.column_causes` overrides it). Order matters: "customer service calls" is service, not
# usage; "total day charge" is price, not usage.
_CAUSE_WORDS: tuple[tuple[str, str], ...] = (
    (r"\bport|competitor|switch", "competitor"),
    (r"complain|service call|support|customer service|satisf|ticket", "service_complaints"),
    (r"drop|network|coverage|signal|outage|speed", "network_quality"),
    (r"contract|commit|lock|renew", "contract_lifecycle"),
    (r"payment|paperless|billing|overdue|arrear|late|debt|unpaid", "billing_arrears"),
    (r"charge|fee|price|cost|tariff|plan|discount|bill|revenue|arpu|spend", "price"),
    (
        r"security|backup|protection|streaming|internet|phone service|multiple lines",
        "service_complaints",
    ),
    (r"minute|mins|call|sms|message|usage|data|traffic|vmail|voice|session|login", "usage_decline"),
    (
        r"tenure|account length|age|senior|gender|partner|dependent|state|region|area|city",
        "tenure_value",
    ),
)


def _words(column: str) -> str:
    """ "MonthlyCharges" -> "monthly charges"; "Total_day_minutes" -> "total day minutes"."""
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", column)
    return re.sub(r"[\s_\-]+", " ", spaced).strip().lower()


def guess_column_causes(
    columns: Iterable[str], overrides: Mapping[str, str] | None = None, guess: bool = True
) -> dict[str, str]:
    """Each snapshot column's cause family: the config's, else a guess from its name, else other.

    The guess is logged, so a user sees it and can override it in `data.column_causes`; an
    override naming an unknown family fails here, not in the report.
    """
    overrides = dict(overrides or {})
    for column, family in overrides.items():
        if family not in CAUSE_FAMILIES and family != "other":
            raise DatasetError(
                f"data.column_causes.{column}: unknown cause family {family!r}; use one of "
                f"{', '.join(CAUSE_FAMILIES)} or other"
            )
    causes: dict[str, str] = {}
    guessed: dict[str, str] = {}
    for column in columns:
        if column in overrides:
            causes[column] = overrides[column]
            continue
        family = "other"
        if guess:
            words = _words(column)
            family = next((f for p, f in _CAUSE_WORDS if re.search(p, words)), "other")
        causes[column] = guessed[column] = family
    if guessed:
        log.info(
            "cause families guessed from column names (override with data.column_causes): %s",
            ", ".join(f"{c} -> {f}" for c, f in guessed.items()),
        )
    return causes


def split_snapshot(
    frame: pd.DataFrame, test_size: float, seed: int, test_frame: pd.DataFrame | None = None
) -> dict[str, pd.DataFrame]:
    """Stratified train / validation / test split (or the given test file as the test split)."""
    if test_frame is None:
        rest, test = train_test_split(
            frame, test_size=test_size, stratify=frame["label"], random_state=seed
        )
    else:
        rest, test = frame, test_frame
    train, validation = train_test_split(
        rest, test_size=VALIDATION_SHARE, stratify=rest["label"], random_state=seed
    )
    return {
        name: part.reset_index(drop=True).assign(split=name, weight=1.0)
        for name, part in (("train", train), ("validation", validation), ("test", test))
    }


def cross_validate(
    data: SnapshotData, model: ModelConfig, folds: int, repeats: int, seed: int
) -> pd.DataFrame:
    """Repeated stratified K-fold: one row of test metrics per fold (for mean and spread)."""
    frame = data.frame
    splitter = RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
    rows = []
    for index, (fit_rows, test_rows) in enumerate(splitter.split(frame, frame["label"])):
        fit = frame.iloc[fit_rows]
        train, validation = train_test_split(
            fit, test_size=VALIDATION_SHARE, stratify=fit["label"], random_state=seed + index
        )
        fitted = train_model(train, validation, data.feature_columns, model, seed)
        test = frame.iloc[test_rows]
        metrics = classification_metrics(test["label"].to_numpy(), fitted.predict_proba(test), "cv")
        rows.append({"fold": index, **metrics})
        log.info("fold %d/%d: AUC %.4f", index + 1, folds * repeats, metrics["cv_roc_auc"])
    return pd.DataFrame(rows)


def summarize_cv(folds: pd.DataFrame) -> dict[str, float]:
    """Mean and standard deviation of every fold metric (`cv_roc_auc_mean`, `..._std`)."""
    summary: dict[str, float] = {}
    for column in folds.columns:
        if column.startswith("cv_") and not column.endswith("_rows"):
            values = folds[column].to_numpy(float)
            summary[f"{column}_mean"] = float(np.mean(values))
            summary[f"{column}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return summary


@dataclass(frozen=True)
class ModelChoice:
    """What `model=auto` chose and why: the model config to train and every candidate's CV AUC."""

    model: ModelConfig
    chosen: str
    table: pd.DataFrame  # candidate, cv_roc_auc, rounds, seconds, params
    trials: int
    search_s: float

    def describe(self) -> str:
        scores = ", ".join(
            f"{row.candidate} {row.cv_roc_auc:.4f}" for row in self.table.itertuples()
        )
        return (
            f"{self.chosen} by {self.model.search_folds}-fold CV AUC on the training rows "
            f"({scores}; Optuna: {self.trials} trials in {self.search_s:.0f} s)"
        )


def _search_space(trial) -> dict[str, Any]:
    """LightGBM's main capacity and regularisation knobs, on scales where they matter."""
    return {
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.15, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 4, 64, log=True),
        "max_depth": trial.suggest_int("max_depth", 2, 12),
        "min_child_samples": trial.suggest_int("min_child_samples", 5, 200, log=True),
        "feature_fraction": trial.suggest_float("feature_fraction", 0.3, 1.0),
        "bagging_fraction": trial.suggest_float("bagging_fraction", 0.5, 1.0),
        "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 30.0, log=True),
        "cat_smooth": trial.suggest_float("cat_smooth", 1.0, 50.0, log=True),
        "min_data_per_group": trial.suggest_int("min_data_per_group", 5, 200, log=True),
    }


def choose_model(
    rows: pd.DataFrame, feature_columns: list[str], model: ModelConfig, seed: int
) -> ModelChoice:
    """`model=auto`: pick LightGBM settings by stratified CV AUC on `rows` (training rows only).

    The named candidates (`model.candidates`) are tried first, then a seeded Optuna (TPE)
    search for `model.search_budget_s` seconds. Each setting's score is LightGBM's CV AUC at
    its best round, the same protocol for all, so a user's file gets settings that suit its
    size without anyone knowing LightGBM. The time budget bounds the search, so a slower
    machine may run fewer trials.
    """
    spec = FeatureFrameSpec.infer(rows, feature_columns)
    x = spec.prepare(rows)
    y = rows["label"].to_numpy()
    folds = list(StratifiedKFold(model.search_folds, shuffle=True, random_state=seed).split(x, y))
    base = {k: v for k, v in model.params.items() if k != "metric"}

    def cv_auc(params: dict[str, Any]) -> tuple[float, int]:
        full = {**base, **params, "objective": "binary", "metric": "auc", "seed": seed}
        full["verbosity"] = -1
        history = lgb.cv(
            full,
            lgb.Dataset(x, y, free_raw_data=False),
            num_boost_round=model.num_boost_round,
            folds=folds,
            callbacks=[lgb.early_stopping(model.early_stopping_rounds, verbose=False)],
        )
        scores = np.asarray(history["valid auc-mean"])
        best = int(np.argmax(scores))
        return float(scores[best]), best + 1

    rows_out = []
    for name, params in (model.candidates or {"default": {}}).items():
        started = time.perf_counter()
        auc, rounds = cv_auc(dict(params))
        rows_out.append(
            {
                "candidate": name,
                "cv_roc_auc": auc,
                "rounds": rounds,
                "seconds": round(time.perf_counter() - started, 1),
                "params": dict(params),
            }
        )
        log.info("model=auto: candidate %s CV AUC %.4f (%d rounds)", name, auc, rounds)
    trials, search_s = 0, 0.0
    if model.search_budget_s > 0 and model.search_max_trials > 0:
        import optuna  # only model=auto needs it

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(
            direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed)
        )

        def objective(trial) -> float:
            auc, rounds = cv_auc(_search_space(trial))
            trial.set_user_attr("rounds", rounds)
            return auc

        started = time.perf_counter()
        study.optimize(objective, n_trials=model.search_max_trials, timeout=model.search_budget_s)
        search_s = time.perf_counter() - started
        trials = len(study.trials)
        best = study.best_trial
        rows_out.append(
            {
                "candidate": "optuna",
                "cv_roc_auc": float(best.value),
                "rounds": int(best.user_attrs["rounds"]),
                "seconds": round(search_s, 1),
                "params": dict(best.params),
            }
        )
        log.info(
            "model=auto: Optuna best CV AUC %.4f after %d trials in %.0f s",
            best.value,
            trials,
            search_s,
        )
    table = pd.DataFrame(rows_out)
    winner = table.loc[table["cv_roc_auc"].idxmax()]  # first on ties: the simpler candidate
    chosen = replace(
        model,
        name="lightgbm",
        params={**model.params, **winner["params"]},
        candidates={},
    )
    log.info("model=auto chose %s (CV AUC %.4f)", winner["candidate"], winner["cv_roc_auc"])
    return ModelChoice(chosen, str(winner["candidate"]), table, trials, search_s)
