"""The call-pattern main pass sums rows per (key, age bucket) first, then adds buckets up per
window: check its windowed sums, trends and slopes against a direct row-by-row computation, with
windows that are not the default ones and cutoffs that are not at midnight."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from feature_fixtures import random_tables, write_tables

from churnml.features import FeatureParams, build_features

WINDOWS = [3, 14, 30, 45, 120]
CUTOFFS = [pd.Timestamp("2024-05-01"), pd.Timestamp("2024-04-17 13:45:10")]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    tables = random_tables(n=40, seed=11)
    out = write_tables(tables, tmp_path_factory.mktemp("pass"))
    ids = tables["customers"]["customer_id"].tolist()
    spine = pd.DataFrame(
        {"customer_id": ids * len(CUTOFFS), "cutoff": np.repeat(CUTOFFS, len(ids))}
    )
    params = FeatureParams(windows=WINDOWS, families=["calls"])
    feats = build_features(out, spine, params)
    return tables["calls"], feats


def _direct(calls: pd.DataFrame, customer: str, cutoff: pd.Timestamp) -> dict[str, float]:
    c = calls[(calls["customer_id"] == customer) & (calls["started_at"] < cutoff)]
    age = (cutoff - c["started_at"]).dt.total_seconds()
    vo = (c["kind"] == "voice") & (c["direction"] == "out")
    data = c["kind"] == "data"
    mb = c["volume_mb"].fillna(0)
    out = {}
    for w in WINDOWS:
        win = age <= w * 86400
        out[f"voice_out_minutes_{w}d"] = (c["duration_s"][vo & win] / 60.0).sum()
        out[f"voice_in_calls_{w}d"] = float(
            ((c["kind"] == "voice") & (c["direction"] == "in") & win).sum()
        )
        out[f"data_mb_{w}d"] = mb[data & win].sum()
    r = (c["duration_s"][vo & (age <= 30 * 86400)] / 60.0).sum()
    b = (c["duration_s"][vo & (age > 30 * 86400) & (age <= 90 * 86400)] / 60.0).sum()
    out["voice_out_minutes_trend_30d_vs_prev60d"] = (
        (r - b / 2) / (r + b / 2) if r + b > 0 else np.nan
    )
    week = np.floor(age / (7 * 86400))
    in12 = age <= 84 * 86400
    out["data_mb_weekly_slope_12w"] = ((11 - week - 5.5) * mb)[data & in12].sum() / 143.0
    return out


def test_two_stage_pass_matches_rows(data):
    calls, feats = data
    checked = 0
    for row in feats.itertuples(index=False):
        want = _direct(calls, row.customer_id, row.cutoff)
        for name, value in want.items():
            got = getattr(row, name)
            if np.isnan(value):
                assert pd.isna(got), (row.customer_id, row.cutoff, name)
            else:
                assert got == pytest.approx(value, rel=1e-6, abs=1e-6), (
                    row.customer_id,
                    row.cutoff,
                    name,
                )
            checked += 1
    assert checked == len(feats) * (3 * len(WINDOWS) + 2)
