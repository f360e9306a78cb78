"""The champion gate: every branch of the promotion decision."""

from __future__ import annotations

import pytest

from churnml.promotion import ModelFacts, decide_promotion

TERMINATION = {
    "label": {"kind": "termination", "horizon_days": 60, "gap_days": 0, "reasons": ["port_out"]},
    "data_kind": "events",
}
FEATURES = ["calls_out_30d", "tenure_days"]


def _facts(settings=TERMINATION, features=FEATURES) -> ModelFacts:
    return ModelFacts.of(settings, list(features))


def test_first_model_becomes_champion():
    decision = decide_promotion(_facts(), 0.7, "test_roc_auc")
    assert decision.promote and "no champion" in decision.reason


def test_better_comparable_challenger_is_promoted():
    decision = decide_promotion(
        _facts(), 0.75, "test_roc_auc", _facts(), champion_version="3", champion_score=0.74
    )
    assert decision.promote and "0.7500 vs champion v3 0.7400" in decision.reason


@pytest.mark.parametrize("champion_score", [0.75, 0.76])
def test_challenger_that_does_not_beat_the_champion_is_not_promoted(champion_score):
    decision = decide_promotion(
        _facts(), 0.75, "test_roc_auc", _facts(), "3", champion_score=champion_score
    )
    assert not decision.promote and decision.reason.startswith("kept champion")


def test_lower_is_better_for_error_metrics():
    better = decide_promotion(_facts(), 0.04, "test_brier", _facts(), "3", champion_score=0.05)
    worse = decide_promotion(_facts(), 0.06, "test_brier", _facts(), "3", champion_score=0.05)
    assert better.promote and not worse.promote


def test_snapshot_model_never_replaces_an_events_champion():
    snapshot = _facts({"data_kind": "snapshot"})
    decision = decide_promotion(snapshot, 0.99, "test_roc_auc", _facts(), "3", champion_score=0.5)
    assert not decision.promote and "snapshot data" in decision.reason


def test_other_label_definition_never_replaces_the_champion():
    inactivity = {
        "label": {"kind": "inactivity", "horizon_days": 60, "gap_days": 0, "reasons": []},
        "data_kind": "events",
    }
    decision = decide_promotion(
        _facts(inactivity), 0.99, "test_roc_auc", _facts(), "3", champion_score=0.5
    )
    assert not decision.promote and "change meaning" in decision.reason


def test_other_feature_set_is_left_for_a_person():
    fewer = _facts(features=["tenure_days"])
    decision = decide_promotion(fewer, 0.99, "test_roc_auc", _facts(), "3", champion_score=0.5)
    assert not decision.promote
    assert (
        "1 removed: calls_out_30d" in decision.reason and "churnml promote" not in decision.reason
    )
    assert "promote by hand" in decision.reason


def test_champion_that_cannot_score_the_test_rows_is_not_replaced():
    decision = decide_promotion(
        _facts(), 0.9, "test_roc_auc", _facts(), "3", champion_error="lacks columns ['x']"
    )
    assert not decision.promote and "cannot score" in decision.reason


def test_feature_order_does_not_matter():
    assert _facts(features=FEATURES) == _facts(features=list(reversed(FEATURES)))
