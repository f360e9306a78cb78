"""Snapshot datasets: one row per customer with features already aggregated (public churn sets).

Event feature building is skipped; sampling becomes a stratified split (or repeated stratified
cross-validation for small data); training, SHAP, MLflow and scoring are unchanged.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import RepeatedStratifiedKFold, train_test_split

from churnml.config import DataConfig, ModelConfig
from churnml.contract import CAUSE_FAMILIES
from churnml.evaluation import classification_metrics
from churnml.io import DatasetError
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
