"""The simulator's true churn probabilities, read back for comparison with a model.

`truth/churn_probability.parquet` holds, per (customer, month) while the customer is active at
the month's start, the probability `p_voluntary` of a voluntary or port-out exit that month.
Exits fall uniformly on the 2nd..last day of their month, so the probability of an exit in a
label window (cutoff, cutoff + horizon] is built from each month's share of the window.

`truth/decomposition.json` says how much each cause contributes: its share of the voluntary
hazard, the voluntary exits it accounts for (competing risks: a month's p_voluntary split in
proportion to the hazards), recorded causes (those that leave traces in the tables) against
hidden ones (no table records them), and how well the truth and the recorded causes alone rank
the month's leavers: the ranking no model of the tables can reach.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from churnml.simulate.catalog import ALL_CAUSES, HIDDEN_CAUSES

TRUTH_FILE = Path("truth") / "churn_probability.parquet"
DECOMPOSITION_FILE = Path("truth") / "decomposition.json"
CAMPAIGNS_FILE = Path("truth") / "campaigns.json"  # each campaign's true effects
CAMPAIGN_EFFECTS_FILE = Path("truth") / "campaign_effects.parquet"  # each customer's
VOLUNTARY_REASONS = ("voluntary", "port_out")


def truth_path(dataset_dir: str | Path) -> Path | None:
    path = Path(dataset_dir) / TRUTH_FILE
    return path if path.exists() else None


def _exit_days(month: pd.Timestamp) -> pd.DatetimeIndex:
    """The days an exit of this month can fall on (2nd..last)."""
    return pd.date_range(month + pd.Timedelta(days=1), month + pd.offsets.MonthEnd(0), freq="D")


def window_probability(
    dataset_dir: str | Path,
    rows: pd.DataFrame,
    horizon_days: int,
    gap_days: int = 0,
    column: str = "p_voluntary",
) -> pd.Series:
    """True probability of a voluntary exit in each row's label window.

    `rows` has customer_id and cutoff; months with no truth row (the customer already gone)
    contribute nothing. A month's row exists only while the customer is still there, so its p
    is already conditional on surviving the months before: the window's probability is the
    sum of share x p over its months (the expected number of exits, at most one), not one
    minus a product of survivals, which discounts survival twice and fell about 5 % short of
    the realised 60-day churn. Returns a Series aligned with `rows` (NaN when there is no truth).
    `column="p_voluntary_recorded"` gives what the recorded causes alone tell (hidden causes
    at their mean): about the best a model of the tables can do.
    """
    path = truth_path(dataset_dir)
    if path is None:
        raise FileNotFoundError(f"{dataset_dir} has no {TRUTH_FILE}: not a simulated dataset")
    truth = pd.read_parquet(path, columns=["customer_id", "month", column])
    truth = truth.rename(columns={column: "p_voluntary"})
    truth["month"] = pd.to_datetime(truth["month"])
    result = np.full(len(rows), np.nan)
    keys = rows.reset_index(drop=True)
    for cutoff, part in keys.groupby("cutoff"):
        start = pd.Timestamp(cutoff) + pd.Timedelta(days=gap_days)
        end = start + pd.Timedelta(days=horizon_days)
        expected = pd.Series(0.0, index=part["customer_id"].to_numpy())
        seen = pd.Series(False, index=expected.index)
        month = start.to_period("M").to_timestamp()
        while month <= end:
            days = _exit_days(month)
            share = ((days > start) & (days <= end)).mean()
            if share > 0:
                p = truth[truth["month"] == month].set_index("customer_id")["p_voluntary"]
                p = p.reindex(expected.index)
                seen |= p.notna()
                expected += share * p.fillna(0.0)
            month = month + pd.offsets.MonthBegin(1)
        probability = expected.clip(upper=1.0).where(seen)
        result[part.index.to_numpy()] = probability.to_numpy()
    return pd.Series(result, index=rows.index)


def decompose_hazard(truth: pd.DataFrame, customers: pd.DataFrame) -> dict:
    """How much each cause, recorded or hidden, contributes to voluntary churn.

    `truth` is the truth table (hazard_<cause> columns, p_voluntary, p_voluntary_recorded),
    `customers` the customers table (for the exits that happened). Hazard shares weigh every
    customer-month alike; exit shares split each month's p_voluntary over its causes.
    """
    causes = [c for c in ALL_CAUSES if f"hazard_{c}" in truth]
    hazards = truth[[f"hazard_{c}" for c in causes]].to_numpy(float)
    total = hazards.sum(axis=1)
    p = truth["p_voluntary"].to_numpy(float)
    split = np.divide(hazards, total[:, None], out=np.zeros_like(hazards), where=total[:, None] > 0)
    exits = (split * p[:, None]).sum(axis=0)
    hazard_sum = hazards.sum(axis=0)
    per_cause = {
        c: {
            "kind": "hidden" if c in HIDDEN_CAUSES else "recorded",
            "hazard_share": float(hazard_sum[i] / hazard_sum.sum()),
            "expected_exits": float(exits[i]),
            "exit_share": float(exits[i] / exits.sum()),
        }
        for i, c in enumerate(causes)
    }
    hidden = sum(v["hazard_share"] for v in per_cause.values() if v["kind"] == "hidden")
    hidden_exits = sum(v["exit_share"] for v in per_cause.values() if v["kind"] == "hidden")
    left = _monthly_exits(truth, customers)
    ranking = {}
    if 0 < left.sum() < len(left):
        ranking["truth"] = float(roc_auc_score(left, p))
        if "p_voluntary_recorded" in truth:
            ranking["recorded_causes_only"] = float(
                roc_auc_score(left, truth["p_voluntary_recorded"])
            )
            ranking["gap"] = ranking["truth"] - ranking["recorded_causes_only"]
    return {
        "customer_months": len(truth),
        "mean_p_voluntary": float(p.mean()),
        "voluntary_exits": int(left.sum()),
        "hazard_share": {"recorded": 1.0 - hidden, "hidden": hidden},
        "exit_share": {"recorded": 1.0 - hidden_exits, "hidden": hidden_exits},
        "causes": per_cause,
        "monthly_roc_auc": ranking,
    }


def _monthly_exits(truth: pd.DataFrame, customers: pd.DataFrame) -> np.ndarray:
    """Whether each truth row's customer left voluntarily (or by port-out) in that month."""
    c = customers.set_index(customers["customer_id"].astype(str))
    ids = truth["customer_id"].astype(str)
    term = pd.DatetimeIndex(pd.to_datetime(c["terminated_at"].reindex(ids).to_numpy()))
    reason = c["termination_reason"].reindex(ids).to_numpy()
    month = pd.DatetimeIndex(pd.to_datetime(truth["month"]).to_numpy())
    same = (term.year * 12 + term.month).to_numpy() == (month.year * 12 + month.month).to_numpy()
    return same & np.isin(reason, VOLUNTARY_REASONS)


def read_decomposition(dataset_dir: str | Path) -> dict:
    """The decomposition the simulator wrote with the dataset."""
    path = Path(dataset_dir) / DECOMPOSITION_FILE
    if not path.exists():
        raise FileNotFoundError(f"{dataset_dir} has no {DECOMPOSITION_FILE}")
    return json.loads(path.read_text())
