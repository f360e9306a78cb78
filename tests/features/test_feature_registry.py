"""Registry consistency, missing tables and columns, and the output shape."""

from __future__ import annotations

import logging

import pandas as pd
from feature_fixtures import tiny_tables, write_tables

from churnml.features import (
    CAUSE_FAMILIES,
    FAMILY_NAMES,
    FEATURES,
    FeatureParams,
    build_features,
    feature_definitions,
    feature_spec,
)


def test_cause_family_ids():
    assert list(CAUSE_FAMILIES) == [
        "usage_decline",
        "competitor",
        "network_quality",
        "service_complaints",
        "billing_arrears",
        "price",
        "contract_lifecycle",
        "tenure_value",
    ]


def test_registry_is_consistent():
    names = [s.name for s in FEATURES]
    assert len(names) == len(set(names))
    assert {s.cause_family for s in FEATURES} == set(CAUSE_FAMILIES)
    defs = feature_definitions()
    assert {d.family for d in defs} == set(FAMILY_NAMES)
    for s in FEATURES:
        assert s.description.strip() and s.description[0].isupper(), s.name
        assert s.kind in ("numeric", "categorical")
        assert s.name.isidentifier() and s.name == s.name.lower()
        if s.reason is not None:
            s.reason.format(value=1.0, pct=10.0, trend="down 10 %")
    assert feature_spec("overdue_amount").cause_family == "billing_arrears"


def test_output_columns_follow_registry_order(tiny_dir, tiny_spine):
    out = build_features(tiny_dir, tiny_spine)
    assert list(out.columns) == ["customer_id", "cutoff", *[s.name for s in FEATURES]]
    assert len(out) == len(tiny_spine)
    assert list(out["customer_id"]) == list(tiny_spine["customer_id"])


def test_spine_order_and_several_cutoffs(tiny_dir):
    spine = pd.DataFrame(
        {
            "customer_id": ["F", "A", "A", "C"],
            "cutoff": pd.to_datetime(["2024-04-01", "2024-03-01", "2024-04-01", "2024-04-01"]),
        }
    )
    out = build_features(tiny_dir, spine)
    assert list(out["customer_id"]) == ["F", "A", "A", "C"]
    # A at 2024-03-01: only the 02-15 call (5 minutes) lies in the 30 days before
    assert out.loc[1, "voice_out_minutes_30d"] == 5.0
    assert out.loc[2, "voice_out_minutes_30d"] == 3.0


def test_missing_optional_table_skips_its_family(tmp_path, tiny_spine, caplog):
    tables = tiny_tables()
    del tables["complaints"]
    out_dir = write_tables(tables, tmp_path / "d")
    with caplog.at_level(logging.INFO, logger="churnml.features"):
        out = build_features(out_dir, tiny_spine)
    assert not any(c.startswith("complaint") for c in out.columns)
    assert "voice_out_minutes_30d" in out.columns
    lines = [
        r.message for r in caplog.records if "complaints" in r.message and "skipped" in r.message
    ]
    assert len(lines) == 1


def test_missing_optional_column_drops_only_dependent_features(tmp_path, tiny_spine):
    tables = tiny_tables()
    tables["calls"] = tables["calls"].drop(columns=["dropped", "peer_operator"])
    out_dir = write_tables(tables, tmp_path / "d")
    out = build_features(out_dir, tiny_spine)
    assert not any(c.startswith("dropped_call_rate") for c in out.columns)
    assert "top_competitor_out_share_30d" not in out.columns
    assert "offnet_out_share_30d" in out.columns
    assert out.set_index("customer_id").loc["A", "voice_out_minutes_30d"] == 3.0


def test_only_customers_table(tmp_path, tiny_spine):
    out_dir = write_tables({"customers": tiny_tables()["customers"]}, tmp_path / "d")
    out = build_features(out_dir, tiny_spine)
    assert "tenure_days" in out.columns and "lifecycle_stage" in out.columns
    assert "monthly_fee" not in out.columns and "value_tier" not in out.columns


def test_unknown_customer_gets_documented_nulls_and_zeros(tiny_dir):
    spine = pd.DataFrame({"customer_id": ["ZZZ"], "cutoff": [pd.Timestamp("2024-04-01")]})
    out = build_features(tiny_dir, spine).iloc[0]
    assert out["voice_out_minutes_30d"] == 0.0
    assert out["complaints_unresolved"] == 0.0
    assert pd.isna(out["days_since_last_out_activity"]) and pd.isna(out["tenure_days"])


def test_family_selection(tiny_dir, tiny_spine):
    out = build_features(tiny_dir, tiny_spine, FeatureParams(families=["transfers"]))
    assert set(out.columns) - {"customer_id", "cutoff"} == {
        d.spec.name for d in feature_definitions() if d.family == "transfers"
    }
