"""Backtests: withhold the data after a date, score as of then, compare with what happened.

`withhold_after` writes the dataset as it would have been extracted at a date (rows at or after
it removed, exits and resolutions not yet known blanked), so scoring can be checked with no
chance of seeing the future; `score_outcomes` joins scores with the exits that followed.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from churnml.contract import CONTRACT, TABLES
from churnml.io import (
    connect,
    quote_identifier,
    read_manifest,
    scan_sql,
    sql_string,
    table_columns,
    table_path,
)

log = logging.getLogger(__name__)

# Columns only known once a later event happened: blanked when that event is after the date.
_LATER_FACTS = {
    "customers": ("terminated_at", ("terminated_at", "termination_reason")),
    "complaints": ("resolved_at", ("resolved_at", "satisfaction")),
    "campaigns": ("contacted_at", ("contacted_at", "accepted")),
}


def withhold_after(dataset_dir: Path, out_dir: Path, as_of: pd.Timestamp) -> Path:
    """Copy a raw dataset as extracted at `as_of`: nothing at or after it remains."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = pd.Timestamp(as_of).strftime("%Y-%m-%d %H:%M:%S")
    with connect() as con:
        for table in TABLES:
            path = table_path(dataset_dir, table)
            if path is None:
                continue
            columns = table_columns(path)
            select = []
            for column in columns:
                q = quote_identifier(column)
                expression = q
                later = _LATER_FACTS.get(table)
                if later and column in later[1] and later[0] in columns:
                    expression = (
                        f"CASE WHEN {quote_identifier(later[0])} < TIMESTAMP '{stamp}' "
                        f"THEN {q} END AS {q}"
                    )
                select.append(expression)
            target = sql_string(str(out_dir / f"{table}.parquet"))
            con.execute(
                f"COPY (SELECT {', '.join(select)} FROM {scan_sql(path)} "
                f"WHERE {quote_identifier(CONTRACT[table].time_column)} < TIMESTAMP '{stamp}') "
                f"TO {target} (FORMAT parquet)"
            ).fetchall()
    manifest = {
        **read_manifest(dataset_dir),
        "as_of": pd.Timestamp(as_of).isoformat(),
        "withheld_after": pd.Timestamp(as_of).isoformat(),
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))
    log.info("wrote %s as extracted at %s", out_dir, as_of)
    return out_dir


def score_outcomes(
    scores: pd.DataFrame,
    dataset_dir: Path,
    horizon_days: int,
    reasons: tuple[str, ...] = ("voluntary", "port_out"),
) -> pd.DataFrame:
    """Scores joined with what happened next: `churned` in (scoring_date, + horizon]."""
    customers = pd.read_parquet(
        table_path(dataset_dir, "customers"),
        columns=["customer_id", "terminated_at", "termination_reason"],
    )
    date = pd.Timestamp(scores["scoring_date"].iloc[0])
    terminated = pd.to_datetime(customers["terminated_at"])
    churned = (
        (terminated > date)
        & (terminated <= date + pd.Timedelta(days=horizon_days))
        & customers["termination_reason"].isin(list(reasons))
    )
    outcome = pd.Series(churned.to_numpy(), index=customers["customer_id"].astype(str))
    out = scores.copy()
    out["churned"] = out["customer_id"].map(outcome).fillna(False).astype(bool)
    return out


def backtest_auc(outcomes: pd.DataFrame) -> float:
    y = outcomes["churned"].to_numpy()
    return (
        float(roc_auc_score(y, outcomes["churn_probability"]))
        if np.unique(y).size == 2
        else (float("nan"))
    )
