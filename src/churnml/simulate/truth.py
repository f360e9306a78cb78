"""The simulator's true churn probabilities, read back for comparison with a model.

`truth/churn_probability.parquet` holds, per (customer, month) while the customer is active at
the month's start, the probability `p_voluntary` of a voluntary or port-out exit that month.
Exits fall uniformly on the 2nd..last day of their month, so the probability of an exit in a
label window (cutoff, cutoff + horizon] is built from each month's share of the window.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

TRUTH_FILE = Path("truth") / "churn_probability.parquet"


def truth_path(dataset_dir: str | Path) -> Path | None:
    path = Path(dataset_dir) / TRUTH_FILE
    return path if path.exists() else None


def _exit_days(month: pd.Timestamp) -> pd.DatetimeIndex:
    """The days an exit of this month can fall on (2nd..last)."""
    return pd.date_range(month + pd.Timedelta(days=1), month + pd.offsets.MonthEnd(0), freq="D")


def window_probability(
    dataset_dir: str | Path, rows: pd.DataFrame, horizon_days: int, gap_days: int = 0
) -> pd.Series:
    """True probability of a voluntary exit in each row's label window.

    `rows` has customer_id and cutoff; months with no truth row (the customer already gone)
    contribute nothing. Returns a Series aligned with `rows` (NaN when there is no truth).
    """
    path = truth_path(dataset_dir)
    if path is None:
        raise FileNotFoundError(f"{dataset_dir} has no {TRUTH_FILE}: not a simulated dataset")
    truth = pd.read_parquet(path, columns=["customer_id", "month", "p_voluntary"])
    truth["month"] = pd.to_datetime(truth["month"])
    result = np.full(len(rows), np.nan)
    keys = rows.reset_index(drop=True)
    for cutoff, part in keys.groupby("cutoff"):
        start = pd.Timestamp(cutoff) + pd.Timedelta(days=gap_days)
        end = start + pd.Timedelta(days=horizon_days)
        survive = pd.Series(1.0, index=part["customer_id"].to_numpy())
        seen = pd.Series(False, index=survive.index)
        month = start.to_period("M").to_timestamp()
        while month <= end:
            days = _exit_days(month)
            share = ((days > start) & (days <= end)).mean()
            if share > 0:
                p = truth[truth["month"] == month].set_index("customer_id")["p_voluntary"]
                p = p.reindex(survive.index)
                seen |= p.notna()
                survive *= 1.0 - share * p.fillna(0.0)
            month = month + pd.offsets.MonthBegin(1)
        probability = (1.0 - survive).where(seen)
        result[part.index.to_numpy()] = probability.to_numpy()
    return pd.Series(result, index=rows.index)
