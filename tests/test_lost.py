"""The lost-customer table and the early-warning figures, on a hand-written dataset.

Every expected value below is worked out by hand from the fixture, not by the code under test.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tiny_dataset import write_tiny_dataset

from churnml import early_warning
from churnml.config import LabelConfig, LostSettings
from churnml.lost import (
    ScoreHistory,
    attach_campaigns,
    attach_scores,
    exit_records,
    read_stored_snapshot,
    stored_score_dates,
)

TS = pd.Timestamp
DATE = TS("2024-06-30")
SILENCE = LabelConfig(kind="inactivity", horizon_days=180)
SETTINGS = LostSettings()

# customer: (activated, terminated, reason)  added to the tiny dataset's C1..C6
EXTRA_CUSTOMERS = {
    "C7": ("2022-03-01", "2024-04-20", "voluntary"),  # a request before: port-out
    "C8": ("2022-03-01", "2024-04-25", "voluntary"),  # its request was cancelled
    "C9": ("2022-03-01", "2024-02-15", "non_payment"),
    "C10": ("2022-03-01", "2024-01-20", "other"),
    "C11": ("2023-01-01", None, None),  # silent since 2023-10-01
    "C12": ("2024-06-10", None, None),  # C4 came back
    "C13": ("2022-03-01", "2024-07-15", "voluntary"),  # leaves after the date
}
EXPECTED_TYPES = {
    "C2": "port-out",  # termination reason port_out
    "C4": "voluntary",
    "C7": "port-out",
    "C8": "voluntary",
    "C9": "non-payment",
    "C10": "other",
    "C11": "silence",
}


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    path = write_tiny_dataset(tmp_path / "raw")
    customers = pd.read_parquet(path / "customers.parquet")
    rows = []
    for cid, (activated, terminated, reason) in EXTRA_CUSTOMERS.items():
        rows.append(
            {
                "customer_id": cid,
                "activated_at": TS(activated),
                "terminated_at": TS(terminated) if terminated else None,
                "termination_reason": reason,
                "initial_plan_id": "P1",
                "payment_type": "postpaid",
                "region": "north",
            }
        )
    customers = pd.concat([customers, pd.DataFrame(rows)], ignore_index=True)
    customers["previous_customer_id"] = np.where(customers["customer_id"] == "C12", "C4", None)
    customers.to_parquet(path / "customers.parquet", index=False)
    transfers = pd.read_parquet(path / "transfers.parquet")
    extra = pd.DataFrame(
        {
            "customer_id": ["C7", "C8", "C8", "C7"],
            "occurred_at": [
                TS("2024-04-10 10:00"),
                TS("2024-04-10 10:00"),
                TS("2024-04-12 10:00"),
                TS("2024-02-01 10:00"),
            ],
            "kind": ["port_out_request", "port_out_request", "port_out_cancel", "plan_change"],
            "from_plan_id": [None, None, None, "P1"],
            "to_plan_id": [None, None, None, "P3"],
            "monthly_fee": [None, None, None, 40.0],
            "operator": ["gamma", "beta", "beta", None],
            "amount": [None, None, None, None],
        }
    )
    pd.concat([transfers, extra], ignore_index=True).to_parquet(
        path / "transfers.parquet", index=False
    )
    calls = pd.read_parquet(path / "calls.parquet")
    silent = calls.iloc[[0]].assign(customer_id="C11", started_at=TS("2023-10-01 09:00"))
    active = calls.iloc[[0]].assign(customer_id="C13", started_at=TS("2024-06-01 09:00"))
    pd.concat([calls, silent, active], ignore_index=True).to_parquet(
        path / "calls.parquet", index=False
    )
    # Payments recorded from mid-2023, so silence can be judged at DATE.
    payments = pd.read_parquet(path / "payments.parquet")
    early = payments.iloc[[0]].assign(payment_id="Y0", paid_at=TS("2023-06-01"), bill_id=None)
    pd.concat([payments, early], ignore_index=True).to_parquet(
        path / "payments.parquet", index=False
    )
    return path


def test_every_ended_subscription_appears_once_with_its_exit_type(dataset: Path):
    exits = exit_records(dataset, DATE, SETTINGS, SILENCE)
    assert exits["customer_id"].is_unique
    assert dict(zip(exits["customer_id"], exits["exit_type"], strict=True)) == EXPECTED_TYPES
    customers = pd.read_parquet(dataset / "customers.parquet")
    ended = customers[pd.to_datetime(customers["terminated_at"]) <= DATE]
    assert set(ended["customer_id"]) == set(
        exits.loc[exits["exit_type"] != "silence", "customer_id"]
    )
    by_id = exits.set_index("customer_id")
    for cid in ended["customer_id"]:
        assert by_id.loc[cid, "exit_date"] == pd.Timestamp(
            ended.set_index("customer_id").loc[cid, "terminated_at"]
        )
    # The silent line ended on the day of its last activity.
    assert by_id.loc["C11", "exit_date"] == TS("2023-10-01")
    # Exit types agree with the termination reasons and the port-out records.
    assert (by_id.loc[["C4", "C8"], "termination_reason"] == "voluntary").all()
    assert by_id.loc["C9", "termination_reason"] == "non_payment"


def test_destination_is_the_port_out_request_that_was_not_cancelled(dataset: Path):
    exits = exit_records(dataset, DATE, SETTINGS, SILENCE).set_index("customer_id")
    assert exits.loc["C2", "destination_operator"] == "beta"
    assert exits.loc["C7", "destination_operator"] == "gamma"
    assert exits.loc["C7", "port_out_requested_at"] == TS("2024-04-10 10:00")
    assert pd.isna(exits.loc["C8", "destination_operator"])  # cancelled
    assert exits.loc[exits["exit_type"] != "port-out", "destination_operator"].isna().all()
    # A request older than the window leaves a voluntary exit voluntary.
    narrow = exit_records(dataset, DATE, LostSettings(port_out_window_days=5), SILENCE)
    assert narrow.set_index("customer_id").loc["C7", "exit_type"] == "voluntary"


def test_plan_tenure_and_return(dataset: Path):
    exits = exit_records(dataset, DATE, SETTINGS, SILENCE).set_index("customer_id")
    assert exits.loc["C7", "plan"] == "P3"  # the plan change before the exit
    assert exits.loc["C4", "plan"] == "P3"  # initial plan
    assert exits.loc["C4", "returned_customer_id"] == "C12"
    assert exits.loc["C4", "returned_at"] == TS("2024-06-10")
    days = (TS("2024-04-20") - TS("2022-03-01")).days
    assert exits.loc["C7", "tenure_months"] == pytest.approx(days / (365.25 / 12))
    # At an earlier date the later exits are not there yet, and silence is not judged: the
    # calls (from 2023-10-01) do not cover the 180 days before it.
    earlier = exit_records(dataset, TS("2024-03-01"), SETTINGS, SILENCE)
    assert set(earlier["customer_id"]) == {"C9", "C10"}


# -- early warning on stored scores ----------------------------------------------------------
# Stored score dates and each customer's risk band there (None: not scored that day).
BANDS = {
    "2024-01-01": {"C2": "R03", "C4": "R01", "C7": "R01", "C8": "R05", "C9": "R01", "C10": "R02"},
    "2024-02-01": {"C2": "R01", "C4": "R02", "C7": "R01", "C8": "R01", "C9": "R01"},
    "2024-03-01": {"C2": "R01", "C4": "R01", "C7": "R01", "C8": "R02"},
    "2024-04-01": {"C4": "R02", "C7": "R01", "C8": "R01"},
}
REVENUE = {"C2": 20.0, "C4": 30.0, "C7": 50.0, "C8": 10.0, "C9": 15.0, "C10": 5.0}
CONTACTS = {"2024-01-01": ["C4"], "2024-04-01": ["C7"], "2024-03-01": ["C2"]}


def _write_scores(scores_dir: Path) -> Path:
    for day, bands in BANDS.items():
        folder = scores_dir / f"scoring_date={day}"
        folder.mkdir(parents=True)
        ids = list(bands)
        pd.DataFrame(
            {
                "customer_id": ids,
                "churn_probability": [0.5] * len(ids),
                "risk_band": [bands[i] for i in ids],
                "value_tier": ["B"] * len(ids),
                "monthly_revenue": [REVENUE[i] for i in ids],
                "main_cause": ["competitor"] * len(ids),
                "reason_1": ["made 3 port-out queries in the last 30 days"] * len(ids),
                "reason_2": [None] * len(ids),
                "reason_3": [None] * len(ids),
            }
        ).to_parquet(folder / "scores.parquet", index=False)
        pd.DataFrame({"customer_id": CONTACTS.get(day, [])}).to_csv(
            folder / "contact_list.csv", index=False
        )
    return scores_dir


def _lost_with_scores(dataset: Path, tmp_path: Path) -> pd.DataFrame:
    stored = stored_score_dates(_write_scores(tmp_path / "scores"))
    history = ScoreHistory()
    for day, folder in stored.items():
        history.add(read_stored_snapshot(day, folder))
    exits = exit_records(dataset, DATE, SETTINGS, SILENCE)
    return attach_scores(exits, history, SETTINGS)


def test_scores_before_the_exit(dataset: Path, tmp_path: Path):
    lost = _lost_with_scores(dataset, tmp_path).set_index("customer_id")
    # Reasons and value from the last stored date before the exit.
    assert lost.loc["C7", "score_date_before_exit"] == TS("2024-04-01")
    assert lost.loc["C7", "main_cause"] == "competitor"
    assert lost.loc["C7", "monthly_revenue"] == 50.0
    assert lost.loc["C7", "lifetime_value_lost"] == 50.0 * SETTINGS.lifetime_months
    assert lost.loc["C2", "score_date_before_exit"] == TS("2024-03-01")
    # Lookbacks: exit - days, the latest date on or before it, at most 31 days older.
    assert lost.loc["C4", "score_date_30d_before"] == TS("2024-04-01")  # 2024-04-01 exactly
    assert lost.loc["C4", "risk_band_30d_before"] == "R02"
    assert lost.loc["C2", "score_date_60d_before"] == TS("2024-01-01")
    assert pd.isna(lost.loc["C2", "score_date_90d_before"])  # 2023-12-11: no scores then
    assert pd.isna(lost.loc["C11", "score_date_before_exit"])
    # The contact list of 2024-04-01 named C7 (19 days before); C4's of 2024-01-01 is 121 days
    # old at its exit; C2's of 2024-03-01 is 9 days old.
    assert lost["on_contact_list"].to_dict() == {
        "C10": False,
        "C11": False,
        "C2": True,
        "C4": False,
        "C7": True,
        "C8": False,
        "C9": False,
    }


def test_early_warning_figures_agree_with_a_hand_computation(dataset: Path, tmp_path: Path):
    lost = _lost_with_scores(dataset, tmp_path)
    table = early_warning.hit_rates(lost, [30, 60, 90]).set_index("exit_month")
    # 2024-04: C7 (exit 04-20) and C8 (04-25).
    #   30d: C7 -> 03-01 R01, C8 -> 03-01 R02: 1 of 2.  60d: C7 02-01 R01, C8 02-01 R01: 2 of 2.
    #   90d: C7 01-01 R01, C8 01-01 R05: 1 of 2.
    april = table.loc["2024-04"]
    assert (april["lost"], april["judged_30d"], april["flagged_30d"]) == (2, 2, 1)
    assert (april["judged_60d"], april["flagged_60d"]) == (2, 2)
    assert (april["judged_90d"], april["flagged_90d"]) == (2, 1)
    assert april["share_flagged_30d"] == 0.5
    assert april["monthly_revenue_lost"] == 60.0
    # 2024-05: C4 (05-01): 30d 04-01 R02, 60d 03-01 R01, 90d 02-01 R02.
    may = table.loc["2024-05"]
    assert (may["flagged_30d"], may["flagged_60d"], may["flagged_90d"]) == (0, 1, 0)
    # 2024-03: C2 (03-10): 30d 02-01 R01, 60d 01-01 R03, 90d none (not judged).
    march = table.loc["2024-03"]
    assert (march["judged_30d"], march["flagged_30d"], march["judged_60d"]) == (1, 1, 1)
    assert march["flagged_60d"] == 0 and march["judged_90d"] == 0
    assert np.isnan(march["share_flagged_90d"])
    # 2024-02: C9 (02-15): 30d 01-01 R01.  2024-01: C10 (01-20): 30d 2023-12-21: none.
    assert table.loc["2024-02", "flagged_30d"] == 1
    assert table.loc["2024-01", "judged_30d"] == 0
    # 2023-10: the silent line, never scored.
    assert table.loc["2023-10", "lost"] == 1 and table.loc["2023-10", "judged_30d"] == 0
    summary = early_warning.summarize(lost, [30, 60, 90])
    # 30d over all months: judged C7, C8, C4, C2, C9 = 5; flagged C7, C2, C9 = 3.
    assert summary["share_flagged_30d"] == pytest.approx(3 / 5)
    # Revenue covered: C7 (50) and C2 (20) of 130 known.
    assert summary["share_revenue_covered"] == pytest.approx(70 / 130)


def test_revenue_lost_by_dimension(dataset: Path, tmp_path: Path):
    lost = _lost_with_scores(dataset, tmp_path)
    table = early_warning.revenue_lost(lost, "exit_type").set_index("exit_type")
    assert table.loc["port-out", "monthly_revenue_lost"] == 70.0  # C2 + C7
    assert table.loc["port-out", "monthly_revenue_covered"] == 70.0
    assert table.loc["voluntary", "monthly_revenue_lost"] == 40.0  # C4 + C8
    assert table.loc["voluntary", "share_covered"] == 0.0
    assert table["lost"].sum() == len(lost)
    by_destination = early_warning.revenue_lost(lost, "destination_operator")
    assert set(by_destination["destination_operator"]) == {"beta", "gamma", "no port-out"}


def test_campaigns_before_the_exit(dataset: Path, caplog: pytest.LogCaptureFixture):
    (dataset / "campaigns.parquet").unlink(missing_ok=True)  # the tiny dataset has one
    exits = exit_records(dataset, DATE, SETTINGS, SILENCE)
    with caplog.at_level(logging.INFO, logger="churnml.lost"):
        without = attach_campaigns(dataset, exits)
    assert "no campaigns table" in caplog.text
    assert without["campaigns_before_exit"].isna().all()
    pd.DataFrame(
        {
            "campaign_id": ["K1", "K1", "K2"],
            "customer_id": ["C7", "C4", "C4"],
            "assigned_at": [TS("2024-04-02"), TS("2024-03-01"), TS("2024-05-10")],
            "group": ["treatment", "control", "treatment"],
            "channel": ["call_center", None, "sms"],
            "offer": ["discount", None, "plan_upgrade"],
            "offer_cost": [10.0, None, 5.0],
            "contacted_at": [TS("2024-04-03 10:00"), None, TS("2024-05-11")],
            "accepted": [False, None, True],
        }
    ).to_parquet(dataset / "campaigns.parquet", index=False)
    found = attach_campaigns(dataset, exits).set_index("customer_id")
    assert found.loc["C7", "campaigns_before_exit"] == 1
    assert found.loc["C7", "last_offer"] == "discount"
    assert not found.loc["C7", "offer_accepted"]
    # C4: a control assignment before the exit, a campaign after it that does not count.
    assert found.loc["C4", "campaigns_before_exit"] == 1
    assert found.loc["C4", "contacts_before_exit"] == 0
    assert found.loc["C9", "campaigns_before_exit"] == 0


# -- the command's config ------------------------------------------------------------------
def test_lost_config_composes_and_checks_its_settings(tmp_path: Path):
    from churnml.cli import JOBS
    from churnml.config import compose_config
    from churnml.errors import SettingsError

    assert JOBS["lost"][0] == "lost"
    cfg = compose_config("lost", [f"paths.root_dir={tmp_path}"])
    # Silence is the inactivity label's own definition.
    assert (cfg.silence.kind, cfg.silence.horizon_days) == ("inactivity", 180)
    assert cfg.lost.lookback_days == [30, 60, 90]
    assert "non-payment" in cfg.winback.exclude_exit_types
    with pytest.raises(SettingsError, match=r"winback\.exclude_exit_types"):
        compose_config("lost", [f"paths.root_dir={tmp_path}", "winback.exclude_exit_types=[bad]"])
    with pytest.raises(SettingsError, match=r"lost\.lookback_days"):
        compose_config("lost", [f"paths.root_dir={tmp_path}", "lost.lookback_days=[-30]"])


def test_a_broken_stored_score_file_is_bad_input(tmp_path: Path):
    from churnml.io import DatasetError

    folder = _write_scores(tmp_path / "scores") / "scoring_date=2024-02-01"
    (folder / "scores.parquet").write_bytes(b"half a parquet file")
    with pytest.raises(DatasetError, match="stored scores cannot be read"):
        read_stored_snapshot(TS("2024-02-01"), folder)
    pd.DataFrame({"customer_id": ["C1"]}).to_parquet(folder / "scores.parquet")
    with pytest.raises(DatasetError, match="lack the column"):
        read_stored_snapshot(TS("2024-02-01"), folder)
