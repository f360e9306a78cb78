"""Every registered feature's reason reads as a fact a customer or an agent would recognise."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from churnml.features import FEATURES
from churnml.features.reasons import humanize_days, reason_problems, render_reason

CITED = [spec for spec in FEATURES if spec.reason is not None]
VALUES = [-1062.0, -5.0, -1.0, -0.4, 0.0, 0.004, 0.3, 1.0, 2.0, 37.0, 400.0, 1062.0, None, math.nan]
NOUNS = {
    "call": "calls",
    "minute": "minutes",
    "query": "queries",
    "request": "requests",
    "complaint": "complaints",
    "bill": "bills",
    "top-up": "top-ups",
    "contact": "contacts",
    "person": "people",
    "swap": "swaps",
    "transfer": "transfers",
    "day": "days",
    "month": "months",
    "year": "years",
}
PLURALS = {plural: singular for singular, plural in NOUNS.items()}


def _values(spec) -> list:
    if spec.kind == "categorical":
        return [code for code, _ in spec.labels] or ["some_code", None]
    return VALUES


def _cases():
    for spec in CITED:
        for value in _values(spec):
            yield pytest.param(spec, value, id=f"{spec.name}={value}")


def _number_agrees(text: str) -> str | None:
    """The first counted noun after each number agrees with it; returns the offender."""
    for match in re.finditer(r"(?<![\d.,])(?<!EUR )(\d[\d,]*(?:\.\d+)?) ((?:[\w-]+ ?){1,4})", text):
        number = float(match.group(1).replace(",", ""))
        words = match.group(2).split()
        nouns = [i for i, w in enumerate(words) if w in NOUNS or w in PLURALS]
        if not nouns:
            continue
        last = nouns[0]  # in "call minutes" the counted noun is the last of the run
        while last + 1 < len(words) and (words[last + 1] in NOUNS or words[last + 1] in PLURALS):
            last += 1
        plural = words[last] in PLURALS
        if plural == (number == 1):
            return match.group(0)
    return None


@pytest.mark.parametrize(("spec", "value"), list(_cases()))
def test_every_reason_reads_as_a_fact(spec, value):
    text = spec.reason_text(value, currency="EUR")
    if text is None:
        return
    assert text == text.strip() and "  " not in text and "{" not in text, text
    assert not re.search(r"(?<![\w])-\s?\d", text), f"negative number in {text!r}"
    assert not re.search(r"(?<![\d.,])0(?:\.0+)?(?![\d.,])(?! %)", text), f"zero in {text!r}"
    assert not re.search(r"\b0 %", text), f"zero share in {text!r}"
    assert not re.search(r"\b[a-z]+_[a-z_]+\b", text), f"raw code in {text!r}"
    assert _number_agrees(text) is None, f"plural error in {text!r}: {_number_agrees(text)}"
    assert all(int(n) <= 100 for n in re.findall(r"(?<!up )(?<!\d)(\d+) (?:%|points)", text))
    assert not re.search(r"up \d{3,} %", text), f"a change too large for % in {text!r}"
    assert reason_problems(text) == [], text
    assert "week after week" not in text and "moving by" not in text
    if spec.unit == "money" and text != spec.zero_reason:
        assert "EUR" in text, f"no currency in {text!r}"
    if spec.unit == "change" and ".2f" in (spec.reason or ""):
        assert "EUR" in text, f"no currency in {text!r}"
    if spec.unit == "share":
        assert "%" in text or text.startswith("paid nothing"), text
    if spec.unit in ("days", "days_until") and text not in (spec.null_reason,):
        assert re.search(r"\b(days?|months?|years?|today)\b", text), f"no time unit in {text!r}"


@pytest.mark.parametrize("spec", CITED, ids=[s.name for s in CITED])
def test_a_zero_is_cited_only_when_absence_is_the_signal_and_then_says_no(spec):
    if spec.kind == "categorical" or spec.unit in ("days_until",):
        return
    text = spec.reason_text(0.0, currency="EUR")
    if spec.signal == "high":
        assert text is None or text.endswith("today") or "today" in text, text
    elif text is not None:
        assert re.search(r"\b(no|nothing|nobody)\b", text), text


@pytest.mark.parametrize("spec", CITED, ids=[s.name for s in CITED])
def test_a_missing_value_is_cited_only_with_its_own_words(spec):
    assert spec.reason_text(None) == spec.null_reason
    assert spec.reason_text(np.nan) == spec.null_reason


def test_commitment_reads_as_a_date_past_or_future():
    spec = next(s for s in FEATURES if s.name == "days_to_commitment_end")
    assert spec.reason_text(-1062.0) == "contract ended 3 years ago"
    assert spec.reason_text(-20.0) == "contract ended 20 days ago"
    assert spec.reason_text(0.0) == "contract ends today"
    assert spec.reason_text(45.0) == "contract ends in 45 days"
    assert spec.reason_text(None) == "no contract or lock-in period"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("voice_out_calls_30d", 0.0, "no outgoing calls in the last 30 days"),
        ("voice_out_calls_30d", 1.0, "1 outgoing call in the last 30 days"),
        ("voice_out_minutes_30d", 1.0, "1 outgoing call minute in the last 30 days"),
        ("complaints_unresolved", 0.0, None),
        ("complaints_unresolved", 2.0, "2 complaints still open"),
        ("plan_downgrades_90d", 1.0, "moved to a cheaper plan once in the last 90 days"),
        ("monthly_fee", 43.2, "monthly fee EUR 43.20"),
        ("days_since_last_out_activity", 45.0, "no outgoing calls, SMS or data for 45 days"),
        ("days_since_last_out_activity", 0.0, None),
        ("voice_out_minutes_trend_30d_vs_prev60d", 0.0, None),
        (
            "voice_out_minutes_weekly_slope_12w",
            -12.4,
            "outgoing call minutes down 12 a week over the last 12 weeks",
        ),
        ("voice_out_minutes_weekly_slope_12w", -0.3, None),
        (
            "lifecycle_stage",
            "exit_risk",
            "at the exit stage (contract ending or asked to port out)",
        ),
        ("tenure_days", 400.0, "customer for 13 months"),
    ],
)
def test_known_reasons(name, value, expected):
    spec = next((s for s in FEATURES if s.name == name), None)
    if spec is None:
        pytest.skip(f"{name} is not registered")
    assert spec.reason_text(value, currency="EUR") == expected


def test_a_new_feature_needs_only_its_template():
    """Units, plurals and zeros come from the current template style, with no extra metadata."""
    text = render_reason(
        "{value:.0f} calls to the help line in the last 30 days",
        1.0,
        unit="count",
        signal="high",
    )
    assert text == "1 call to the help line in the last 30 days"
    assert render_reason("{value:.0f} calls", 0.0, unit="count", signal="high") is None
    assert render_reason("{pct:.0f} % of minutes to X", 0.25, unit="share", signal="high") == (
        "25 % of minutes to X"
    )


def test_large_changes_read_as_folds():
    spec = next(s for s in FEATURES if s.name == "voice_out_calls_trend_30d_vs_prev60d")
    assert spec.reason_text(0.2) == (
        "outgoing calls up 50 % in the last 30 days vs the 2 months before"
    )
    assert spec.reason_text(0.92) == (
        "outgoing calls up 24-fold in the last 30 days vs the 2 months before"
    )
    assert reason_problems("outgoing calls up 158 % in the last 30 days") == []
    assert reason_problems("130 % of calls dropped") == ["share above 100 %"]


def test_a_rate_is_not_a_count():
    """ "10.80 a month" and "2.84 per minute" count money, not months or minutes: no warning
    in the nightly log for every value-for-money reason; a miscount still is one."""
    assert reason_problems("pays 10.80 a month more than the cheapest plan") == []
    assert reason_problems("pays 2.84 per minute of calls made") == []
    assert reason_problems("3 call a month")[0].startswith("number agreement")


def test_durations_read_as_people_say_them():
    assert humanize_days(1) == "1 day"
    assert humanize_days(45) == "45 days"
    assert humanize_days(400) == "13 months"
    assert humanize_days(1062) == "3 years"
    assert humanize_days(365.25) == "12 months"
    assert humanize_days(800) == "2 years"


@pytest.mark.parametrize(
    "bad",
    [
        "commitment ends in -1062 days",
        "no outgoing activity for 0 days",
        "moved to a dearer plan 1 times",
        "1 outgoing call minutes",
        "life-cycle stage: exit_risk",
        "0 international call minutes",
        "3 complaint still open",
    ],
)
def test_the_rules_catch_the_texts_of_issue_15(bad):
    assert reason_problems(bad)


def test_per_operator_columns_of_an_explained_model_get_their_reason_text():
    """Per-operator shares exist only for the competitors chosen at training time."""
    from types import SimpleNamespace

    from churnml.explain import _note_competitors, _reason_text
    from churnml.features.calls import slug
    from churnml.features.reasons import reason_problems

    column = f"voice_out_share_to_{slug('Blue Mobile')}_change_30d_vs_prev60d"
    _note_competitors(SimpleNamespace(settings={"features": {"competitors": ["Blue Mobile"]}}))
    assert _reason_text(column, -0.0044) is None  # a fall is no reason to leave
    text = _reason_text(column, 0.12)
    assert text == "share of calls to Blue Mobile up 12 points in the last 30 days"
    assert reason_problems(text) == []
