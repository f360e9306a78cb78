"""Reason texts in plain words: units, signs, plurals and labels for every registered feature.

A feature's reason template is written in the registry's usual style (`"{value:.0f} outgoing
calls in the last 30 days"`, `{pct}`, `{trend}`). The renderer reads the feature's *unit*
(inferred from the template, or declared) and its *signal* (`high`: more is riskier, so a zero is
a non-event and never cited; `low`: less is riskier, so a zero is the signal and reads "no
outgoing calls ..."), and turns the raw number into words: currency amounts, durations in days,
months or years, "up 40 %", "once", singular nouns for 1. A new feature needs only its template
(and, where the inference would be wrong, a unit or signal); `STYLES` below declares them for
the existing features without touching their family modules.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import pandas as pd

UNITS = (
    "count",  # events or amounts counted: calls, minutes, MB, complaints
    "money",  # an amount in the dataset's currency
    "share",  # a fraction 0..1 shown as %
    "points",  # a change of a share, shown in percentage points
    "trend",  # a symmetric change (recent - before) / (recent + before)
    "change",  # a signed change of an amount ("up 12 minutes a week")
    "days",  # a duration in days, >= 0
    "days_until",  # a signed number of days to a date (negative: that long ago)
    "level",  # a categorical level
    "number",  # anything else (a plain rounded number)
)
SIGNALS = ("high", "low")

# Plural -> singular for the nouns reason templates count (checked on the words after a 1).
_SINGULAR = {
    "calls": "call",
    "minutes": "minute",
    "queries": "query",
    "requests": "request",
    "complaints": "complaint",
    "bills": "bill",
    "top-ups": "top-up",
    "contacts": "contact",
    "people": "person",
    "swaps": "swap",
    "transfers": "transfer",
    "messages": "message",
    "days": "day",
    "months": "month",
    "years": "year",
    "escalations": "escalation",
    "sessions": "session",
}
_PLACEHOLDER = re.compile(r"\{(value|pct|trend)(?::([^}]*))?\}")


@dataclass(frozen=True)
class ReasonStyle:
    """How one feature's reason reads; every field optional (None: infer or keep)."""

    template: str | None = None
    unit: str | None = None
    signal: str | None = None
    zero: str | None = None  # text for a zero value (the absence is the signal), {w} allowed
    null: str | None = None  # text for a missing value when missing is itself the signal
    labels: dict[str, str] = field(default_factory=dict)  # categorical codes -> words


_ABSENCE_USAGE = ReasonStyle(signal="low")

# Styles for the registered features, by name pattern (first match wins). `{w}` in a pattern's
# texts is the window in days taken from the name.
STYLES: tuple[tuple[str, ReasonStyle], ...] = (
    (r"voice_out_(minutes|calls)_(\d+)d", _ABSENCE_USAGE),
    (r"voice_in_(minutes|calls)_(\d+)d", _ABSENCE_USAGE),
    (r"sms_(out|in)_(\d+)d", _ABSENCE_USAGE),
    (r"data_mb_(\d+)d", ReasonStyle(signal="low", zero="no data use in the last {w} days")),
    (
        r"distinct_contacts_(\d+)d",
        ReasonStyle(signal="low", zero="no calls or SMS with anyone in the last {w} days"),
    ),
    (r"topups_(\d+)d", ReasonStyle(signal="low", zero="no top-up in the last {w} days")),
    (
        r"topup_amount_(\d+)d",
        ReasonStyle(unit="money", signal="low", zero="no top-up in the last {w} days"),
    ),
    (
        r"voice_out_minutes_weekly_slope_12w",
        ReasonStyle(
            template="outgoing call minutes {value:+.0f} a week over the last 12 weeks",
            unit="change",
        ),
    ),
    (
        r"data_mb_weekly_slope_12w",
        ReasonStyle(
            template="data use {value:+.0f} MB a week over the last 12 weeks", unit="change"
        ),
    ),
    (
        r"days_since_last_out_activity",
        ReasonStyle(
            template="no outgoing calls, SMS or data for {value:.0f} days",
            unit="days",
            null="no outgoing calls, SMS or data in the whole history",
        ),
    ),
    (r"days_since_.*|days_past_due_.*|complaint_resolution_days.*", ReasonStyle(unit="days")),
    (r"tenure_days", ReasonStyle(template="customer for {value:.0f} days", unit="days")),
    (
        r"days_to_commitment_end",
        ReasonStyle(
            template="contract ends in {value:.0f} days",
            unit="days_until",
            null="no contract or lock-in period",
        ),
    ),
    (
        r"lifecycle_stage",
        ReasonStyle(
            template="{value}",
            unit="level",
            labels={
                "acquisition": "new customer (first 3 months)",
                "build_up": "first year with us",
                "maturity": "long-standing customer",
                "decline": "usage in steady decline",
                "exit_risk": "at the exit stage (contract ending or asked to port out)",
            },
        ),
    ),
    (
        r"value_tier",
        ReasonStyle(
            template="{value}",
            unit="level",
            labels={
                "A": "top 1 % of customers by revenue (tier A)",
                "B": "top 5 % of customers by revenue (tier B)",
                "C": "top 20 % of customers by revenue (tier C)",
                "D": "in the lower 80 % of customers by revenue (tier D)",
            },
        ),
    ),
    (r"monthly_fee", ReasonStyle(template="monthly fee {value:.2f}", unit="money")),
    (
        r"monthly_fee_change_90d",
        ReasonStyle(template="monthly fee {value:+.2f} in the last 90 days", unit="change"),
    ),
    (r"overdue_amount", ReasonStyle(template="{value:.2f} overdue on bills", unit="money")),
    (r"revenue_3m|arpu_monthly_3m", ReasonStyle(unit="money")),
    (
        r"balance_transfer_(out|in)_amount_90d|balance_transfer_net_out_90d",
        ReasonStyle(unit="money"),
    ),
    (r"balance_transfer_out_count_90d", ReasonStyle(signal="high")),
    (
        r"paid_to_due_ratio_180d",
        ReasonStyle(
            template="paid only {pct:.0f} % of the amounts billed in the last 6 months",
            signal="low",
            zero="paid nothing of the amounts billed in the last 6 months",
        ),
    ),
    (
        r"complaint_max_severity_90d",
        ReasonStyle(
            template="a {value} complaint in the last 90 days",
            unit="number",
            labels={"1": "low-severity", "2": "medium-severity", "3": "high-severity"},
        ),
    ),
    (r"international_out_minutes_(\d+)d", ReasonStyle(signal="high")),
)


def style_for(name: str) -> ReasonStyle:
    """The declared style of a feature, by the first pattern matching its whole name."""
    for pattern, style in STYLES:
        match = re.fullmatch(pattern, name)
        if match:
            return _with_window(style, name)
    return ReasonStyle()


def _with_window(style: ReasonStyle, name: str) -> ReasonStyle:
    window = re.search(r"_(\d+)d(?:_|$)", name)
    if window is None:
        return style
    w = window.group(1)
    return ReasonStyle(
        template=style.template.replace("{w}", w) if style.template else None,
        unit=style.unit,
        signal=style.signal,
        zero=style.zero.replace("{w}", w) if style.zero else None,
        null=style.null.replace("{w}", w) if style.null else None,
        labels=style.labels,
    )


def infer_unit(template: str | None, kind: str = "numeric") -> str:
    """A unit from a template's placeholders and words (what a new feature gets by default)."""
    if kind == "categorical":
        return "level"
    if not template:
        return "number"
    if "{trend" in template:
        return "trend"
    if re.search(r"\{pct:\+", template):
        return "points"
    if "{pct" in template:
        return "share"
    if re.search(r"\{value:\+", template):
        return "change"
    if re.search(r"\{value[^}]*\} days", template):
        return "days"
    if re.search(r"\{value:[^}]*\.2f\}", template):
        return "money"
    return "count"


def infer_signal(cause_family: str, unit: str) -> str:
    """Usage volumes: less is riskier (a zero is the signal); everything else: more is."""
    if cause_family == "usage_decline" and unit == "count":
        return "low"
    return "high"


def humanize_days(days: float) -> str:
    """45 -> "45 days", 400 -> "13 months", 1062 -> "3 years" (what a person would say)."""
    days = abs(days)
    if days < 60:
        n, word = round(days), "day"
    elif days < 730:
        n, word = round(days / (365.25 / 12)), "month"
    else:
        n, word = round(days / 365.25), "year"
    return f"{n} {word}" if n == 1 else f"{n:,} {word}s"


def format_money(amount: float, currency: str, decimals: int = 2) -> str:
    """EUR 1,234.50 (the currency code first, as on bills across Europe)."""
    text = f"{abs(amount):,.{decimals}f}"
    sign = "-" if amount < 0 else ""
    return f"{sign}{currency} {text}".strip() if currency else f"{sign}{text}"


def _decimals(spec: str | None, default: int = 0) -> int:
    match = re.search(r"\.(\d+)f", spec or "")
    return int(match.group(1)) if match else default


def trend_words(ratio: float) -> str | None:
    """A symmetric change r = (recent - before) / (recent + before) in plain words.

    recent / before = (1 + r) / (1 - r), so the relative change is 2r / (1 - r):
    r = -0.55 reads "down 71 %", r = 1 (nothing before) reads "up from none". None: no change.
    """
    if ratio >= 1:
        return "up from none"
    if ratio <= -1:
        return "down 100 %"
    change = 2 * ratio / (1 - ratio) * 100
    if abs(change) < 0.5:
        return None
    if change >= 200:  # "up 4700 %" is hard to picture; "up 48-fold" is not
        return f"up {(1 + ratio) / (1 - ratio):.0f}-fold"
    return f"{'up' if change > 0 else 'down'} {abs(change):.0f} %"


def render_reason(
    template: str | None,
    value: object,
    *,
    unit: str,
    signal: str,
    zero: str | None = None,
    null: str | None = None,
    labels: dict[str, str] | None = None,
    currency: str = "",
) -> str | None:
    """One reason in words, or None when the value is not a fact worth citing.

    None for: no template; a missing value (unless missing is the signal: `null`); a negative
    count, amount, share or duration; a zero or "unchanged" of a `high` signal (a non-event).
    """
    if template is None:
        return None
    if _missing(value):
        return null
    if unit == "level" or not _is_number(value):
        text = str(value)
        label = (labels or {}).get(text)
        if label is None:
            label = text.replace("_", " ") if re.fullmatch(r"[a-z0-9_]+", text) else text
        return _fill_levels(template, label)
    x = float(value)  # type: ignore[arg-type]
    if not math.isfinite(x):
        return None
    if unit in ("count", "money", "share", "days", "number") and x < 0:
        return None
    if unit in ("share", "points") and abs(x) > 1:
        return None  # a share beyond 100 % is a data error, not a fact to tell a customer
    if labels and unit != "level":
        label = labels.get(f"{x:g}")
        return _fill_levels(template, label) if label else None
    if _shown_as_zero(template, x, unit):
        if unit == "days" and " days ago" in template:
            return _PLACEHOLDER.sub("", template.replace("{value:.0f} days ago", "today")).strip()
        if signal != "low":
            return None
        if x > 0 and unit in ("count", "money"):
            small = (
                f"less than {format_money(1, currency, 0)}" if unit == "money" else "less than 1"
            )
            return _agree_number(re.sub(r"\{value(?::[^}]*)?\}", small, template, count=1))
        if zero is not None:
            return zero
        if unit == "count":
            return _absence(template)
        return None
    out: list[str] = []
    pos = 0
    for match in _PLACEHOLDER.finditer(template):
        out.append(template[pos : match.start()])
        word = _placeholder_words(match.group(1), match.group(2), x, unit, currency)
        if word is None:
            return None
        out.append(word)
        pos = match.end()
    out.append(template[pos:])
    text = "".join(out)
    if unit == "days":
        text = re.sub(r"(\d[\d,]* (?:day|month|year)s?) days", r"\1", text)
    if unit == "days_until":
        text = _days_until(template, x)
    return _agree_number(text)


def _missing(value: object) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _is_number(value: object) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)) or (
        hasattr(value, "dtype") and value.dtype.kind in "iuf"
    )


def _fill_levels(template: str, label: str) -> str:
    return _PLACEHOLDER.sub(lambda m: label, template)


def _shown_as_zero(template: str, x: float, unit: str) -> bool:
    """Would the value print as zero (so the sentence would cite a non-event)?"""
    if unit == "share":
        return round(x * 100) == 0 and x == 0
    if unit in ("points",):
        return round(x * 100) == 0
    if unit == "trend":
        return trend_words(x) is None
    if unit in ("days_until",):
        return False
    match = re.search(r"\{value(?::([^}]*))?\}", template)
    decimals = _decimals(match.group(1) if match else None)
    return round(abs(x), decimals) == 0


def _placeholder_words(
    name: str, spec: str | None, x: float, unit: str, currency: str
) -> str | None:
    if name == "trend":
        return trend_words(x)
    if name == "pct":
        pct = x * 100
        if spec and spec.startswith("+"):
            if round(pct) == 0:
                return None
            return f"{'up' if pct > 0 else 'down'} {abs(pct):.0f}"
        if 0 < pct < 0.5:
            return "under 1"
        return f"{pct:.0f}"
    decimals = _decimals(spec)
    if unit == "money":
        return format_money(x, currency, decimals)
    if unit == "change":
        if round(abs(x), decimals) == 0:
            return None
        direction = "up" if x > 0 else "down"
        if spec and ".2f" in spec:
            return f"{direction} {format_money(abs(x), currency, decimals)}"
        return f"{direction} {abs(x):,.{decimals}f}"
    if unit == "days":
        return humanize_days(x)
    if unit == "days_until":
        return humanize_days(x)
    if unit == "number":
        return f"{x:,.{decimals}f}"
    return f"{x:,.{decimals}f}"


def _days_until(template: str, x: float) -> str:
    """Commitment-style dates: negative days read "ended 3 years ago", zero "ends today"."""
    subject = template.split(" ends ")[0] if " ends " in template else "commitment"
    if round(x) == 0:
        return f"{subject} ends today"
    if x < 0:
        return f"{subject} ended {humanize_days(x)} ago"
    return f"{subject} ends in {humanize_days(x)}"


def _absence(template: str) -> str:
    """A zero count as an absence: "{value:.0f} outgoing calls ..." -> "no outgoing calls ..."."""
    text = re.sub(r"\{value(?::[^}]*)?\}", "no", template, count=1)
    text = text.replace("no MB of ", "no ").replace("no different ", "no ")
    return _PLACEHOLDER.sub("", text).strip()


def _agree_number(text: str) -> str:
    """Singular nouns after a 1 ("1 outgoing call minute"), "once" for "1 times"."""
    text = re.sub(r"(?<![\d.,])1 times\b", "once", text)

    def fix(match: re.Match[str]) -> str:
        words = match.group(2).split(" ")
        for i, word in enumerate(words[:4]):
            if word in _SINGULAR:
                words[i] = _SINGULAR[word]
                break
        return match.group(1) + " ".join(words)

    return re.sub(r"((?<![\d.,])\b1 )([^,;()]*)", fix, text)


_COUNTED = {**_SINGULAR, **{s: s for s in _SINGULAR.values()}}
_NOT_COUNTING = {"a", "an", "per", "each", "every", "the"}


def reason_problems(text: str) -> list[str]:
    """What is wrong with a rendered reason, by the house rules (empty when it reads well).

    Checked: a negative number ("-1062 days"), a zero cited as a fact ("0 complaints") other
    than in words ("no ..."), a raw code (snake_case), a number and its noun that disagree
    ("1 calls", "3 call"), a share above 100 %. Used by the tests and by scoring's log line.
    """
    problems = []
    if re.search(r"(?<![\w])-\s?\d", text):
        problems.append("negative number")
    if re.search(r"(?<![\d.,])0(?:\.0+)?(?![\d.,])", text):
        problems.append("zero cited as a cause")
    if re.search(r"\b[a-z]+_[a-z_]+\b", text):
        problems.append("raw code")
    if re.search(r"(?<![\d.,])1 times\b", text):
        problems.append("number agreement: '1 times'")
    if any(int(n) > 100 for n in re.findall(r"(?<!up )(?<!\d)(\d+) (?:%|points)", text)):
        problems.append("share above 100 %")
    for match in re.finditer(
        r"(?<![\d.,])(?<![A-Z]{3} )(\d[\d,]*(?:\.\d+)?) ((?:[\w-]+ ?){1,4})", text
    ):
        number = float(match.group(1).replace(",", ""))
        words = match.group(2).split()
        nouns = [i for i, w in enumerate(words) if w in _COUNTED]
        if not nouns or _NOT_COUNTING & set(words[: nouns[0]]):
            continue  # "10.80 a month", "2.84 per minute": the noun is not what is counted
        last = nouns[0]  # in "call minutes" the counted noun is the last of the run
        while last + 1 < len(words) and words[last + 1] in _COUNTED:
            last += 1
        plural = words[last] in _SINGULAR
        if plural == (number == 1):
            problems.append(f"number agreement: {match.group(0).strip()!r}")
    return problems
