"""Point in time: rows at or after a cutoff never change a feature at that cutoff."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from feature_fixtures import random_tables, write_tables

from churnml.features import FeatureParams, build_features

CUTOFFS = pd.to_datetime(["2024-03-01", "2024-04-01", "2024-05-01"])
TIME_COLUMN = {
    "calls": "started_at",
    "transfers": "occurred_at",
    "complaints": "opened_at",
    "bills": "issued_at",
    "payments": "paid_at",
}
# Plans compared from 3 subscribers, so the 50 random customers have cheapest covering plans.
PARAMS = FeatureParams(competitors=["OpX", "OpY"], plan_coverage_min_customers=3)


def _spine(tables) -> pd.DataFrame:
    ids = tables["customers"]["customer_id"]
    return pd.concat([pd.DataFrame({"customer_id": ids, "cutoff": c}) for c in CUTOFFS])


def _features(tables, path, cutoff=None) -> pd.DataFrame:
    spine = _spine(tables)
    if cutoff is not None:
        spine = spine[spine["cutoff"] == cutoff]
    out = build_features(write_tables(tables, path), spine, PARAMS)
    return out.sort_values(["customer_id", "cutoff"]).reset_index(drop=True)


def _mutate(df: pd.DataFrame, table: str, cutoff: pd.Timestamp, how: str, rng) -> pd.DataFrame:
    col = TIME_COLUMN[table]
    after = df[col] >= cutoff
    if how == "delete":
        return df[~after].reset_index(drop=True)
    if how == "scramble":
        out = df.copy()
        idx = np.flatnonzero(after.to_numpy())
        for c in out.columns:
            if c == col:
                continue
            out.loc[idx, c] = out.loc[rng.permutation(idx), c].to_numpy()
        out.loc[idx, col] = cutoff + pd.to_timedelta(
            rng.integers(0, 60 * 86400, len(idx)), unit="s"
        )
        if table == "bills":
            out.loc[idx, "due_at"] = out.loc[idx, col] + pd.Timedelta(days=3)
        return out
    # append: copies of earlier rows moved to or after the cutoff, with fresh ids
    extra = df[~after].sample(frac=0.5, random_state=1).copy()
    extra[col] = cutoff + pd.to_timedelta(rng.integers(0, 30 * 86400, len(extra)), unit="s")
    if table == "bills":
        extra["due_at"] = extra[col] + pd.Timedelta(days=10)
        extra["bill_id"] = "new_" + extra["bill_id"]
    for c in ("complaint_id", "payment_id"):
        if c in extra:
            extra[c] = "new_" + extra[c]
    return pd.concat([df, extra], ignore_index=True)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    tables = random_tables(n=50, seed=3)
    return tables, _features(tables, tmp_path_factory.mktemp("base"))


@pytest.mark.slow
@pytest.mark.parametrize("table", list(TIME_COLUMN))
@pytest.mark.parametrize("how", ["delete", "scramble", "append"])
def test_rows_at_or_after_cutoff_change_nothing(base, tmp_path, table, how):
    tables, full = base
    rng = np.random.default_rng(7)
    cutoff = CUTOFFS[1]
    changed = dict(tables)
    changed[table] = _mutate(tables[table], table, cutoff, how, rng)
    if table == "complaints":
        # resolutions after the cutoff are future facts too
        res = changed["complaints"]["resolved_at"]
        late = res >= cutoff
        changed["complaints"].loc[late, "resolved_at"] = pd.NaT
    got = _features(changed, tmp_path / "changed", cutoff)
    want = full[full["cutoff"] == cutoff].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want, check_categorical=False)


@pytest.mark.slow
def test_termination_dates_never_leak(base, tmp_path):
    tables, full = base
    cutoff = CUTOFFS[1]
    changed = dict(tables)
    cust = tables["customers"].copy()
    rng = np.random.default_rng(11)
    future = cust["terminated_at"].isna() | (cust["terminated_at"] >= cutoff)
    new = cutoff + pd.to_timedelta(rng.integers(0, 90, len(cust)), unit="D")
    cust.loc[future, "terminated_at"] = np.where(
        rng.random(future.sum()) < 0.5, pd.NaT, new[future]
    )
    cust.loc[future, "termination_reason"] = "port_out"
    changed["customers"] = cust
    got = _features(changed, tmp_path / "changed", cutoff)
    want = full[full["cutoff"] == cutoff].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want, check_categorical=False)


def test_features_do_change_when_earlier_rows_change(base, tmp_path):
    """Guard against a vacuous pass: deleting rows before the cutoff does change features."""
    tables, full = base
    cutoff = CUTOFFS[1]
    changed = dict(tables)
    changed["calls"] = tables["calls"][tables["calls"]["started_at"] >= cutoff]
    got = _features(changed, tmp_path / "changed", cutoff)
    want = full[full["cutoff"] == cutoff].reset_index(drop=True)
    assert not got["voice_out_minutes_30d"].equals(want["voice_out_minutes_30d"])


def test_new_driver_features_are_not_vacuous(base):
    """The value-for-money and per-operator features the point-in-time tests cover do hold
    values on the random data (an all-null column would pass them trivially)."""
    _, full = base
    for name in (
        "fee_per_voice_minute_30d",
        "fee_per_voice_minute_change_30d_vs_prev60d",
        "monthly_fee_over_cheapest_covering_plan",
        "voice_out_share_to_opx_90d",
        "voice_out_share_to_opy_change_30d_vs_prev60d",
        "port_out_contacts_to_opy_90d",
        "dropped_call_rate_change_30d_vs_prev60d",
        "last_bill_to_prev3_avg_ratio",
    ):
        assert full[name].notna().sum() > 10, name
        assert full[name].nunique() > 2, name
