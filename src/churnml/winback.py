"""Win-back: which lost customers may come back, and which are worth an offer.

Rows are (lost customer, cutoff) pairs: at each month start, every customer who had left
within `max_months_since_exit` months (and whose exit was known by then) and had not come back.
The label is a return (a new subscription naming them in `previous_customer_id`) within
`horizon_months` after the cutoff. Features come from the exit record only (the lost table:
exit type, destination, tenure, value, cause, ...) plus the months since the exit.

Judged out of time: the latest `test_cutoffs` labelled cutoffs are tested by a model trained
on cutoffs whose label windows ended before the first of them; the model that ranks the list
is then refit on every labelled cutoff. The list ranks by probability x value (monthly
revenue x `value_months`) and leaves out exits not worth an offer (settings).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from churnml.config import WinbackSettings
from churnml.explain import cause_label
from churnml.lost import DAYS_PER_MONTH

log = logging.getLogger(__name__)

CATEGORICAL = (
    "exit_type",
    "destination_operator",
    "last_value_tier",
    "main_cause",
    "region",
    "plan",
    "payment_type",
)
NUMERIC = (
    "tenure_months",
    "monthly_revenue",
    "months_since_exit",
    "churn_probability_before_exit",
    "campaigns_before_exit",
    "contacts_before_exit",
)
LIST_COLUMNS = (
    "rank",
    "customer_id",
    "exit_date",
    "exit_type",
    "destination_operator",
    "months_since_exit",
    "last_value_tier",
    "monthly_revenue",
    "main_cause",
    "p_return",
    "expected_value",
    "offer",
)
_PARAMS = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_child_samples": 40,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.8,
    "reg_lambda": 1.0,
    "n_estimators": 200,
    "verbose": -1,
}


class WinbackUnavailable(RuntimeError):
    """Too few returns (or no return records) to learn from: the list is skipped."""


def winback_rows(
    lost: pd.DataFrame,
    cutoffs: list[pd.Timestamp],
    settings: WinbackSettings,
    silence_days: int,
) -> pd.DataFrame:
    """(lost customer, cutoff) rows with `label` (returned within the horizon, NaN when the
    window runs past the data) and `months_since_exit`.

    An exit counts at a cutoff only when it was known by then: a termination on its date, a
    silence once the line had been silent for `silence_days`.
    """
    known = lost["exit_date"] + pd.to_timedelta(
        np.where(lost["exit_type"] == "silence", silence_days, 0), unit="D"
    )
    returned = pd.to_datetime(lost["returned_at"])
    parts = []
    for cutoff in cutoffs:
        since = (cutoff - lost["exit_date"]).dt.days / DAYS_PER_MONTH
        keep = (
            (known < cutoff)
            & (since <= settings.max_months_since_exit)
            & (returned.isna() | (returned >= cutoff))
        )
        end = cutoff + pd.DateOffset(months=settings.horizon_months)
        part = lost[keep].assign(cutoff=cutoff, months_since_exit=since[keep])
        part["label"] = (returned[keep] < end).astype(float)
        part["window_end"] = end
        parts.append(part)
    if not parts:
        return lost.iloc[:0].assign(cutoff=pd.NaT, months_since_exit=0.0, label=0.0)
    return pd.concat(parts, ignore_index=True)


def _features(
    rows: pd.DataFrame, levels: dict[str, list[str]] | None = None
) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """The model's frame. Fitting (`levels` None) picks the columns the rows hold and the
    categories' levels; predicting uses exactly those (an unseen level becomes missing)."""
    fit = levels is None
    levels = {} if levels is None else levels
    frame = pd.DataFrame(index=rows.index)
    if fit:
        categorical = [c for c in CATEGORICAL if c in rows and rows[c].notna().any()]
    else:
        categorical = [c for c in levels if c != "_numeric"]
    for column in categorical:
        values = (
            rows[column].astype("string")
            if column in rows
            else pd.Series(pd.NA, index=rows.index, dtype="string")
        )
        if fit:
            levels[column] = sorted(values.dropna().unique())
        frame[column] = pd.Categorical(values, categories=levels[column])
    if fit:
        numeric = [
            c
            for c in NUMERIC
            if c in rows and pd.to_numeric(rows[c], errors="coerce").notna().any()
        ]
        levels["_numeric"] = numeric
    for column in levels["_numeric"]:
        source = rows[column] if column in rows else pd.Series(np.nan, index=rows.index)
        frame[column] = pd.to_numeric(source, errors="coerce").astype(float)
    return frame, levels


@dataclass
class WinbackModel:
    """A fitted classifier and the feature levels it was fitted with."""

    estimator: lgb.LGBMClassifier
    levels: dict[str, list[str]]

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        frame, _ = _features(rows, self.levels)
        return self.estimator.predict_proba(frame)[:, 1]


def fit_winback(rows: pd.DataFrame, seed: int) -> WinbackModel:
    """Fit the win-back classifier on labelled rows."""
    frame, levels = _features(rows)
    estimator = lgb.LGBMClassifier(**_PARAMS, random_state=seed, n_jobs=1)
    estimator.fit(frame, rows["label"].astype(int))
    return WinbackModel(estimator, levels)


@dataclass(frozen=True)
class WinbackEvaluation:
    """The out-of-time test: which cutoffs trained and tested, and how well it ranked."""

    train_cutoffs: tuple[pd.Timestamp, ...]
    test_cutoffs: tuple[pd.Timestamp, ...]
    train_rows: int
    train_returns: int
    test_rows: int
    test_returns: int
    roc_auc: float
    top_decile_lift: float

    def metrics(self) -> dict[str, float]:
        return {
            "winback_test_roc_auc": self.roc_auc,
            "winback_test_top_decile_lift": self.top_decile_lift,
            "winback_test_rows": float(self.test_rows),
            "winback_test_returns": float(self.test_returns),
            "winback_train_rows": float(self.train_rows),
            "winback_train_returns": float(self.train_returns),
        }


def labelled_cutoffs(lost: pd.DataFrame, date: pd.Timestamp, horizon_months: int) -> list:
    """Month starts after the first exit whose whole return window lies before `date`."""
    if lost.empty:
        return []
    first = lost["exit_date"].min().to_period("M").to_timestamp() + pd.DateOffset(months=1)
    cutoffs = pd.date_range(first, date, freq="MS")
    return [c for c in cutoffs if c + pd.DateOffset(months=horizon_months) <= date]


def split_out_of_time(
    cutoffs: list[pd.Timestamp], test_cutoffs: int, horizon_months: int
) -> tuple[list[pd.Timestamp], list[pd.Timestamp]]:
    """Test = the latest labelled cutoffs; train = those whose return window ended by the
    first test cutoff (no training label is seen after the test period starts)."""
    test = cutoffs[-test_cutoffs:]
    if not test:
        return [], []
    train = [c for c in cutoffs if c + pd.DateOffset(months=horizon_months) <= test[0]]
    return train, test


def _lift(y: np.ndarray, p: np.ndarray) -> float:
    top = np.argsort(-p, kind="stable")[: max(len(p) // 10, 1)]
    return float(y[top].mean() / y.mean()) if y.mean() > 0 else float("nan")


def evaluate_winback(
    rows: pd.DataFrame, train: list, test: list, settings: WinbackSettings, seed: int
) -> WinbackEvaluation:
    """Fit on the training cutoffs, score the test cutoffs (never seen), report AUC and lift."""
    train_rows = rows[rows["cutoff"].isin(train)]
    test_rows = rows[rows["cutoff"].isin(test)]
    train_returns = int(train_rows["label"].sum())
    if train_returns < settings.min_returns:
        raise WinbackUnavailable(
            f"{train_returns} returns in the training months ({len(train)} cutoffs), fewer "
            f"than winback.min_returns={settings.min_returns}"
        )
    y = test_rows["label"].to_numpy(int)
    if len(np.unique(y)) < 2:
        raise WinbackUnavailable("the test months hold no return (or only returns)")
    model = fit_winback(train_rows, seed)
    p = model.predict(test_rows)
    return WinbackEvaluation(
        tuple(train),
        tuple(test),
        len(train_rows),
        train_returns,
        len(test_rows),
        int(y.sum()),
        float(roc_auc_score(y, p)),
        _lift(y, p),
    )


def winback_list(
    current: pd.DataFrame, p_return: np.ndarray, settings: WinbackSettings
) -> pd.DataFrame:
    """The lost customers worth an offer, by probability x value, with an offer by cause.

    Left out: exit types in `exclude_exit_types` (non-payment: arrears are for collections),
    and customers whose monthly revenue is unknown or below `min_monthly_revenue`.
    """
    frame = current.assign(p_return=p_return)
    worth = ~frame["exit_type"].isin(settings.exclude_exit_types) & (
        pd.to_numeric(frame["monthly_revenue"], errors="coerce") >= settings.min_monthly_revenue
    )
    frame = frame[worth].copy()
    frame["expected_value"] = frame["p_return"] * frame["monthly_revenue"] * settings.value_months
    frame["offer"] = [
        settings.offers.get(str(c), settings.default_offer)
        if pd.notna(c)
        else settings.default_offer
        for c in frame["main_cause"]
    ]
    frame["main_cause"] = [
        cause_label(str(c)) if pd.notna(c) and c != "none" else "" for c in frame["main_cause"]
    ]
    frame = frame.sort_values(
        ["expected_value", "p_return", "customer_id"], ascending=[False, False, True]
    ).head(settings.list_size)
    frame["rank"] = np.arange(1, len(frame) + 1)
    return frame[list(LIST_COLUMNS)].reset_index(drop=True)


@dataclass
class WinbackResult:
    evaluation: WinbackEvaluation
    ranked: pd.DataFrame  # the list
    candidates: int  # lost customers at the date before the exclusions


def run_winback(
    lost: pd.DataFrame,
    date: pd.Timestamp,
    settings: WinbackSettings,
    silence_days: int,
    seed: int,
) -> WinbackResult:
    """Evaluate out of time, refit on every labelled cutoff, rank the lost customers at `date`."""
    cutoffs = labelled_cutoffs(lost, date, settings.horizon_months)
    train, test = split_out_of_time(cutoffs, settings.test_cutoffs, settings.horizon_months)
    if not train:
        raise WinbackUnavailable(
            f"the data leave {len(cutoffs)} labelled month(s) for a {settings.horizon_months}-"
            f"month return window: too short to train before the {settings.test_cutoffs} test "
            "month(s)"
        )
    rows = winback_rows(lost, cutoffs, settings, silence_days)
    evaluation = evaluate_winback(rows, train, test, settings, seed)
    log.info(
        "win-back model, out of time: test ROC AUC %.3f on %d rows (%d returns), trained on "
        "%d rows (%d returns)",
        evaluation.roc_auc,
        evaluation.test_rows,
        evaluation.test_returns,
        evaluation.train_rows,
        evaluation.train_returns,
    )
    model = fit_winback(rows, seed)
    current = winback_rows(lost, [date], settings, silence_days)
    ranked = winback_list(current, model.predict(current), settings) if len(current) else current
    return WinbackResult(evaluation, ranked, len(current))
