"""The win-back model and list: rows point in time, judged out of time, the list's rules."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnml.config import WinbackSettings
from churnml.winback import (
    WinbackUnavailable,
    labelled_cutoffs,
    run_winback,
    split_out_of_time,
    winback_list,
    winback_rows,
)

TS = pd.Timestamp
SETTINGS = WinbackSettings(horizon_months=3, max_months_since_exit=12, test_cutoffs=3)


def _lost(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    """Synthetic exits over two years; PulseCom leavers come back most, non-payment never."""
    rng = np.random.default_rng(seed)
    exit_date = TS("2023-01-01") + pd.to_timedelta(rng.integers(0, 700, n), unit="D")
    destination = rng.choice(["OrbitMobile", "NovaTel", "PulseCom", None], n)
    exit_type = np.where(
        pd.notna(destination), "port-out", rng.choice(["voluntary", "non-payment"], n)
    )
    rate = np.select(
        [destination == "PulseCom", destination == "NovaTel", exit_type == "non-payment"],
        [0.25, 0.08, 0.0],
        0.03,
    )
    months = rng.exponential(3.0, n)
    back = rng.random(n) < rate * 3
    returned_at = pd.Series(exit_date + pd.to_timedelta(months * 30.4, unit="D"))
    returned_at = returned_at.where(back & (returned_at <= TS("2024-12-31")))
    return pd.DataFrame(
        {
            "customer_id": [f"C{i:05d}" for i in range(n)],
            "exit_date": exit_date,
            "exit_type": exit_type,
            "destination_operator": destination,
            "tenure_months": rng.uniform(1, 80, n),
            "monthly_revenue": rng.choice([5.0, 15.0, 25.0, 40.0], n),
            "last_value_tier": rng.choice(["B", "C", "D"], n),
            "main_cause": rng.choice(["competitor", "price", "network_quality"], n),
            "returned_at": returned_at,
        }
    )


def test_rows_hold_only_what_was_known_at_the_cutoff():
    lost = pd.DataFrame(
        {
            "customer_id": ["A", "B", "C", "D", "E"],
            "exit_date": [
                TS("2024-01-10"),
                TS("2024-03-20"),
                TS("2023-01-05"),
                TS("2024-01-15"),
                TS("2024-02-01"),
            ],
            "exit_type": ["voluntary", "port-out", "voluntary", "silence", "voluntary"],
            "returned_at": [TS("2024-03-10"), pd.NaT, pd.NaT, pd.NaT, TS("2024-02-15")],
        }
    )
    rows = winback_rows(lost, [TS("2024-03-01")], SETTINGS, silence_days=180)
    # B left after the cutoff; C more than 12 months before; D's silence is not known until
    # 180 days after its last activity; E had already come back.
    assert rows["customer_id"].tolist() == ["A"]
    assert rows["label"].tolist() == [1.0]  # back on 2024-03-10, within 3 months
    later = winback_rows(lost, [TS("2024-04-01")], SETTINGS, silence_days=180)
    assert set(later["customer_id"]) == {"B"}  # A is back by then
    assert later["months_since_exit"].iloc[0] == pytest.approx(12 / (365.25 / 12))


def test_split_is_out_of_time():
    lost = _lost()
    date = TS("2024-12-31")
    cutoffs = labelled_cutoffs(lost, date, SETTINGS.horizon_months)
    assert all(c + pd.DateOffset(months=3) <= date for c in cutoffs)
    train, test = split_out_of_time(cutoffs, SETTINGS.test_cutoffs, SETTINGS.horizon_months)
    assert len(test) == 3 and test == cutoffs[-3:]
    # Every training label window ends by the first test cutoff.
    assert max(train) + pd.DateOffset(months=3) <= min(test)


def test_model_ranks_returners_first_out_of_time():
    result = run_winback(_lost(), TS("2024-12-31"), SETTINGS, silence_days=180, seed=1)
    ev = result.evaluation
    assert max(ev.train_cutoffs) + pd.DateOffset(months=3) <= min(ev.test_cutoffs)
    assert ev.test_returns > 0 and ev.train_returns >= SETTINGS.min_returns
    # The destination carries the signal: the model must find it on months it never saw.
    assert ev.roc_auc > 0.65
    assert result.ranked["p_return"].between(0, 1).all()


def test_list_leaves_out_those_not_worth_it_and_offers_by_cause():
    current = pd.DataFrame(
        {
            "customer_id": ["A", "B", "C", "D"],
            "exit_date": [TS("2024-10-01")] * 4,
            "exit_type": ["port-out", "non-payment", "voluntary", "port-out"],
            "destination_operator": ["PulseCom", None, None, "NovaTel"],
            "months_since_exit": [1.0, 1.0, 1.0, 1.0],
            "last_value_tier": ["B", "B", "D", "C"],
            "monthly_revenue": [40.0, 60.0, 5.0, 20.0],
            "main_cause": ["competitor", "billing_arrears", "price", "network_quality"],
        }
    )
    settings = WinbackSettings(offers={"competitor": "match the price"}, value_months=12.0)
    ranked = winback_list(current, np.array([0.2, 0.9, 0.9, 0.5]), settings)
    # B: non-payment; C: revenue below min_monthly_revenue (10).
    assert ranked["customer_id"].tolist() == ["D", "A"]  # 0.5 x 20 x 12 = 120 > 0.2 x 40 x 12
    assert ranked["expected_value"].tolist() == pytest.approx([120.0, 96.0])
    assert ranked["offer"].tolist() == [settings.default_offer, "match the price"]
    assert ranked["rank"].tolist() == [1, 2]


def test_too_few_returns_is_said_not_guessed():
    lost = _lost().assign(returned_at=pd.NaT)
    with pytest.raises(WinbackUnavailable, match="returns"):
        run_winback(lost, TS("2024-12-31"), SETTINGS, silence_days=180, seed=1)
