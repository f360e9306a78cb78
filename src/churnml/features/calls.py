"""Call patterns: usage volumes, trends, time-of-day profile, contacts, competitors, network
quality and a social signal, from the CDR (`calls`)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from churnml.features import value as vfm
from churnml.features.params import FeatureParams
from churnml.features.registry import (
    EXACT_UNIT,
    FamilyBuilder,
    FeatureDef,
    Measure,
    cond_sum,
    fixed,
    prev60,
    slug,
    within,
)

FAMILY = "calls"
REQUIRED_TABLES = ("calls",)
TREND_LOOKBACK = 90
SLOPE_WEEKS = 12

VOICE_OUT = "kind = 'voice' AND direction = 'out'"
VOICE_IN = "kind = 'voice' AND direction = 'in'"
_BASE = ("calls.customer_id", "calls.started_at")
_VOICE = (*_BASE, "calls.kind", "calls.direction", "calls.duration_s")


@dataclass(frozen=True)
class PassMeasure(Measure):
    """A main-pass measure, kept in parts so the pass can aggregate in two stages: `agg`
    (count, sum or min) of `value` over the rows where `cond` holds, in `window` (days before
    the cutoff, "p60" for the 60 days before the last 30, or None when `cond` carries its own
    age test), divided by `scale`. `sql` is the same aggregate written in one piece."""

    cond: str = "TRUE"
    value: str = "1"
    window: int | str | None = None
    agg: str = "sum"
    scale: float = 1.0


MINUTES = "duration_s / 60.0"
# Megabytes summed exactly, as whole millionths (registry.fixed); durations are whole seconds,
# which DOUBLE sums exactly already.
MB = fixed("coalesce(volume_mb, 0)")


def _pass(cond: str, value: str, window: int | str | None, requires: tuple) -> PassMeasure:
    """A windowed conditional count or sum (minutes are summed as seconds, then divided)."""
    full = cond
    if window == "p60":
        full += f" AND {prev60()}"
    elif window is not None:
        full += f" AND {within(int(window))}"
    agg = "count" if value == "1" else "sum"
    scale = {MINUTES: 60.0, MB: float(EXACT_UNIT)}.get(value, 1.0)
    raw = "duration_s" if value == MINUTES else value
    sql = cond_sum(full, raw) + (f" / {scale!r}" if scale != 1.0 else "")
    return PassMeasure(sql, requires, cond, raw, window, agg, scale)


def _slope(value: str, cond: str, requires: tuple) -> PassMeasure:
    """Least-squares slope of weekly totals over the last 12 weeks, in one pass.

    The slope is linear in the weekly totals, so it is a weighted sum over rows:
    sum((t_row - t_mean) * value) / sum_t (t - t_mean)^2, with t = 11 for the latest week.
    """
    n = SLOPE_WEEKS
    t_mean = (n - 1) / 2
    denom = sum((t - t_mean) ** 2 for t in range(n))
    weight = f"({n - 1} - floor(age_s / {7 * 86400}) - {t_mean})"
    cond = f"{cond} AND age_s <= {n * 7 * 86400}"
    scale = float(denom)
    if value == MINUTES:
        value, scale = "duration_s", scale * 60.0
    elif value == MB:
        scale *= EXACT_UNIT
    # The weights are halves: weight x whole number sums exactly too.
    sql = f"coalesce(sum({weight} * {value}) FILTER (WHERE {cond}), 0) / {scale!r}"
    return PassMeasure(sql, requires, cond, f"{weight} * {value}", None, "sum", scale)


def measures(params: FeatureParams) -> dict[str, Measure]:
    """Aggregates over the event rows `ev` (one row per call before the cutoff, with `age_s`,
    `is_night` and `is_weekend` derived), plus the peer-, operator- and history-stage
    aggregates (their `sql` is built in `build_sql`)."""
    m: dict[str, Measure] = {}
    windows = sorted(set(params.windows) | {30, 90})
    sms = (*_BASE, "calls.kind", "calls.direction")
    data = (*_BASE, "calls.kind", "calls.volume_mb")
    net = (*_VOICE, "calls.peer_network")
    mb = MB
    for w in windows:
        m[f"vo_min_{w}"] = _pass(VOICE_OUT, MINUTES, w, _VOICE)
        m[f"vo_n_{w}"] = _pass(VOICE_OUT, "1", w, _VOICE)
        m[f"vi_min_{w}"] = _pass(VOICE_IN, MINUTES, w, _VOICE)
        m[f"vi_n_{w}"] = _pass(VOICE_IN, "1", w, _VOICE)
        m[f"so_n_{w}"] = _pass("kind = 'sms' AND direction = 'out'", "1", w, sms)
        m[f"si_n_{w}"] = _pass("kind = 'sms' AND direction = 'in'", "1", w, sms)
        m[f"data_mb_{w}"] = _pass("kind = 'data'", mb, w, data)
        m[f"offnet_min_{w}"] = _pass(f"{VOICE_OUT} AND peer_network = 'off_net'", MINUTES, w, net)
        m[f"intl_min_{w}"] = _pass(
            f"{VOICE_OUT} AND peer_network = 'international'", MINUTES, w, net
        )
        m[f"voice_n_{w}"] = _pass("kind = 'voice'", "1", w, (*_BASE, "calls.kind"))
        m[f"drop_n_{w}"] = _pass(
            "kind = 'voice' AND dropped", "1", w, (*_BASE, "calls.kind", "calls.dropped")
        )
    m["vo_min_p60"] = _pass(VOICE_OUT, MINUTES, "p60", _VOICE)
    m["vo_n_p60"] = _pass(VOICE_OUT, "1", "p60", _VOICE)
    m["data_mb_p60"] = _pass("kind = 'data'", mb, "p60", data)
    m["offnet_min_p60"] = _pass(f"{VOICE_OUT} AND peer_network = 'off_net'", MINUTES, "p60", net)
    m["voice_n_p60"] = _pass("kind = 'voice'", "1", "p60", (*_BASE, "calls.kind"))
    m["drop_n_p60"] = _pass(
        "kind = 'voice' AND dropped", "1", "p60", (*_BASE, "calls.kind", "calls.dropped")
    )
    m["night_min_30"] = _pass(f"{VOICE_OUT} AND is_night", MINUTES, 30, _VOICE)
    m["weekend_min_30"] = _pass(f"{VOICE_OUT} AND is_weekend", MINUTES, 30, _VOICE)
    m["vo_min_slope"] = _slope(MINUTES, VOICE_OUT, _VOICE)
    m["data_mb_slope"] = _slope(mb, "kind = 'data'", data)
    comp_req = (*_VOICE, "calls.peer_operator")
    for c in params.competitors:
        lit = str(c).replace("'", "''")
        cond = f"{VOICE_OUT} AND peer_operator = '{lit}'"
        m[f"comp_{slug(c)}_min_30"] = _pass(cond, MINUTES, 30, comp_req)
        m[f"comp_{slug(c)}_min_90"] = _pass(cond, MINUTES, 90, comp_req)
        m[f"comp_{slug(c)}_min_p60"] = _pass(cond, MINUTES, "p60", comp_req)
    # Later stages (separate scans): contacts, top competitor, last outgoing activity.
    for w in sorted(set(params.windows) | {90}):
        m[f"contacts_{w}"] = Measure("", (*_BASE, "calls.peer_id"))
    social = (*_BASE, "calls.peer_id", "customers.activated_at", "customers.terminated_at")
    m["onnet_contacts_90"] = Measure("", social)
    m["onnet_left_90"] = Measure("", social)
    m["top_comp_min_30"] = Measure("", comp_req)
    m["top_comp_min_p60"] = Measure("", comp_req)
    # Last outgoing activity: from the main pass when within 90 days, else a history scan
    # restricted to the (few) customers with none in the main window.
    m["last_out_90"] = PassMeasure(
        "min(CASE WHEN direction = 'out' THEN age_s END)",
        (*_BASE, "calls.direction"),
        "direction = 'out'",
        "age_s",
        None,
        "min",
    )
    m["last_out_old_s"] = Measure("", (*_BASE, "calls.direction"))
    m.update(vfm.measures())
    return m


def trend(a: str, p: str) -> str:
    """Relative change of the last 30 days against the monthly average of the 60 before."""
    return f"({a} - {p} / 2.0) / nullif({a} + {p} / 2.0, 0)"


STAGED = ("contacts_", "onnet_", "top_comp_", "last_out_old", "vfm_")


def definitions(params: FeatureParams) -> list[FeatureDef]:
    b = FamilyBuilder(FAMILY, "calls", measures(params))
    for w in params.windows:
        b.add(
            f"voice_out_minutes_{w}d",
            f"Outgoing voice minutes in the last {w} days.",
            "usage_decline",
            f"vo_min_{w}",
            window_days=w,
            reason=f"{{value:.0f}} outgoing call minutes in the last {w} days",
        )
        b.add(
            f"voice_out_calls_{w}d",
            f"Number of outgoing voice calls in the last {w} days.",
            "usage_decline",
            f"vo_n_{w}",
            window_days=w,
            reason=f"{{value:.0f}} outgoing calls in the last {w} days",
        )
        b.add(
            f"voice_in_minutes_{w}d",
            f"Incoming voice minutes in the last {w} days.",
            "usage_decline",
            f"vi_min_{w}",
            window_days=w,
            reason=f"{{value:.0f}} incoming call minutes in the last {w} days",
        )
        b.add(
            f"voice_in_calls_{w}d",
            f"Number of incoming voice calls in the last {w} days.",
            "usage_decline",
            f"vi_n_{w}",
            window_days=w,
            reason=f"{{value:.0f}} incoming calls in the last {w} days",
        )
        b.add(
            f"sms_out_{w}d",
            f"SMS sent in the last {w} days.",
            "usage_decline",
            f"so_n_{w}",
            window_days=w,
            reason=f"{{value:.0f}} SMS sent in the last {w} days",
        )
        b.add(
            f"sms_in_{w}d",
            f"SMS received in the last {w} days.",
            "usage_decline",
            f"si_n_{w}",
            window_days=w,
            reason=f"{{value:.0f}} SMS received in the last {w} days",
        )
        b.add(
            f"data_mb_{w}d",
            f"Mobile data used in the last {w} days, in MB.",
            "usage_decline",
            f"data_mb_{w}",
            window_days=w,
            reason=f"{{value:.0f}} MB of data in the last {w} days",
        )
        b.add(
            f"distinct_contacts_{w}d",
            f"Number of different people called or texted, either way, in the last {w} days.",
            "usage_decline",
            f"contacts_{w}",
            window_days=w,
            reason=f"{{value:.0f}} different contacts in the last {w} days",
        )
        b.add(
            f"offnet_out_share_{w}d",
            f"Share of outgoing voice minutes to other mobile operators in the last {w} days.",
            "competitor",
            f"offnet_min_{w} / nullif(vo_min_{w}, 0)",
            window_days=w,
            fill=None,
            reason=f"{{pct:.0f}} % of call minutes go to other operators (last {w} days)",
        )
        b.add(
            f"international_out_minutes_{w}d",
            f"Outgoing international voice minutes in the last {w} days.",
            "usage_decline",
            f"intl_min_{w}",
            window_days=w,
            reason=f"{{value:.0f}} international call minutes in the last {w} days",
        )
        b.add(
            f"dropped_call_rate_{w}d",
            f"Share of voice calls (both ways) the network dropped in the last {w} days.",
            "network_quality",
            f"drop_n_{w} / nullif(voice_n_{w}, 0)",
            window_days=w,
            fill=None,
            reason=f"{{pct:.0f}} % of calls dropped in the last {w} days",
        )

    trend_desc = (
        "Change of {what}: last 30 days against the monthly average of the 60 days before, "
        "as (recent - before) / (recent + before), from -1 (stopped) to +1 (new)."
    )
    b.add(
        "voice_out_minutes_trend_30d_vs_prev60d",
        trend_desc.format(what="outgoing voice minutes"),
        "usage_decline",
        trend("vo_min_30", "vo_min_p60"),
        window_days=90,
        fill=None,
        reason="outgoing call minutes {trend} in the last 30 days vs the 2 months before",
    )
    b.add(
        "voice_out_calls_trend_30d_vs_prev60d",
        trend_desc.format(what="the number of outgoing calls"),
        "usage_decline",
        trend("vo_n_30", "vo_n_p60"),
        window_days=90,
        fill=None,
        reason="outgoing calls {trend} in the last 30 days vs the 2 months before",
    )
    b.add(
        "data_mb_trend_30d_vs_prev60d",
        trend_desc.format(what="data volume"),
        "usage_decline",
        trend("data_mb_30", "data_mb_p60"),
        window_days=90,
        fill=None,
        reason="data use {trend} in the last 30 days vs the 2 months before",
    )
    b.add(
        "voice_out_minutes_weekly_slope_12w",
        "Slope of weekly outgoing voice minutes over 12 weeks (minutes a week, per week).",
        "usage_decline",
        "vo_min_slope",
        window_days=84,
        reason="outgoing call minutes moving by {value:+.1f} a week, week after week",
    )
    b.add(
        "data_mb_weekly_slope_12w",
        "Slope of weekly data volume over the last 12 weeks (MB per week, per week).",
        "usage_decline",
        "data_mb_slope",
        window_days=84,
        reason="data use moving by {value:+.0f} MB a week, week after week",
    )
    b.add(
        "voice_out_night_share_30d",
        f"Share of outgoing voice minutes at night ({params.night_start_hour}:00 to "
        f"{params.night_end_hour}:00) in the last 30 days.",
        "usage_decline",
        "night_min_30 / nullif(vo_min_30, 0)",
        window_days=30,
        fill=None,
    )
    b.add(
        "voice_out_weekend_share_30d",
        "Share of outgoing voice minutes on Saturdays and Sundays in the last 30 days.",
        "usage_decline",
        "weekend_min_30 / nullif(vo_min_30, 0)",
        window_days=30,
        fill=None,
    )
    b.add(
        "offnet_out_share_change_30d_vs_prev60d",
        "Off-net share of outgoing voice minutes in the last 30 days minus that share in the "
        "60 days before.",
        "competitor",
        "offnet_min_30 / nullif(vo_min_30, 0) - offnet_min_p60 / nullif(vo_min_p60, 0)",
        window_days=90,
        fill=None,
        reason="share of calls to other operators {pct:+.0f} points in the last 30 days",
    )
    b.add(
        "top_competitor_out_share_30d",
        "Share of outgoing voice minutes to the single other operator called most, last 30 days.",
        "competitor",
        "coalesce(top_comp_min_30, 0) / nullif(vo_min_30, 0)",
        window_days=30,
        fill=None,
        reason="{pct:.0f} % of call minutes go to one competing operator",
    )
    b.add(
        "top_competitor_out_share_change_30d_vs_prev60d",
        "Share of outgoing voice minutes to the most-called other operator (of the last 30 days) "
        "minus its share in the 60 days before.",
        "competitor",
        "coalesce(top_comp_min_30, 0) / nullif(vo_min_30, 0)"
        " - coalesce(top_comp_min_p60, 0) / nullif(vo_min_p60, 0)",
        window_days=90,
        fill=None,
        reason="share of calls to one competing operator {pct:+.0f} points in the last 30 days",
    )
    for c in params.competitors:
        s = slug(c)
        b.add(
            f"voice_out_share_to_{s}_30d",
            f"Share of outgoing voice minutes to operator {c} in the last 30 days.",
            "competitor",
            f"comp_{s}_min_30 / nullif(vo_min_30, 0)",
            window_days=30,
            fill=None,
            reason=f"{{pct:.0f}} % of call minutes go to {c}",
        )
        b.add(
            f"voice_out_share_to_{s}_90d",
            f"Share of outgoing voice minutes to operator {c} in the last 90 days.",
            "competitor",
            f"comp_{s}_min_90 / nullif(vo_min_90, 0)",
            window_days=90,
            fill=None,
            reason=f"{{pct:.0f}} % of call minutes go to {c} (last 90 days)",
        )
        b.add(
            f"voice_out_share_to_{s}_change_30d_vs_prev60d",
            f"Share of outgoing voice minutes to operator {c}: last 30 days minus the 60 before.",
            "competitor",
            f"comp_{s}_min_30 / nullif(vo_min_30, 0) - comp_{s}_min_p60 / nullif(vo_min_p60, 0)",
            window_days=90,
            fill=None,
            reason=f"share of calls to {c} {{pct:+.0f}} points in the last 30 days",
        )
    b.add(
        "dropped_call_rate_change_30d_vs_prev60d",
        "Dropped-call rate of the last 30 days minus that of the 60 days before: coverage "
        "getting worse where the customer is (a move, a new site, an outage).",
        "network_quality",
        "drop_n_30 / nullif(voice_n_30, 0) - drop_n_p60 / nullif(voice_n_p60, 0)",
        window_days=90,
        fill=None,
        reason="dropped calls {pct:+.0f} points in the last 30 days vs the 2 months before",
    )
    b.add(
        "voice_in_out_minutes_ratio_30d",
        "Incoming over all voice minutes in the last 30 days: near 1, the line mostly "
        "receives calls (kept as a second number, or calls moved to another line).",
        "usage_decline",
        "vi_min_30 / nullif(vi_min_30 + vo_min_30, 0)",
        window_days=30,
        fill=None,
        reason="{pct:.0f} % of call minutes are incoming (last 30 days)",
    )
    vfm.add_value_definitions(b)
    b.add(
        "days_since_last_out_activity",
        f"Days since the last outgoing call, SMS or data session (null: none in "
        f"{params.history_days} days).",
        "usage_decline",
        "coalesce(last_out_90, last_out_old_s) / 86400.0",
        fill=None,
        reason="no outgoing activity for {value:.0f} days",
    )
    b.add(
        "onnet_contacts_left_90d",
        "Number of contacts (last 90 days) who are our subscribers and whose subscription ended "
        "in the last 90 days.",
        "competitor",
        "onnet_left_90",
        window_days=90,
        reason="{value:.0f} people this customer calls left the network recently",
    )
    b.add(
        "onnet_contacts_left_share_90d",
        "Share of on-net contacts (last 90 days: our subscribers, matched by peer_id) whose "
        "subscription ended in the last 90 days.",
        "competitor",
        "onnet_left_90 / nullif(onnet_contacts_90, 0)",
        window_days=90,
        fill=None,
        reason="{pct:.0f} % of the on-net people this customer calls left recently",
    )
    return b.defs


MAX_OPERATORS = 64

# Row flags computed once per event row in the main pass: the aggregates then test cheap
# booleans instead of comparing strings dozens of times per row. Longest pattern first.
ROW_FLAGS: tuple[tuple[str, str, str], ...] = (
    ("kind = 'voice' AND direction = 'out'", "f_vo", "e.kind = 'voice' AND e.direction = 'out'"),
    ("kind = 'voice' AND direction = 'in'", "f_vi", "e.kind = 'voice' AND e.direction = 'in'"),
    ("kind = 'sms' AND direction = 'out'", "f_so", "e.kind = 'sms' AND e.direction = 'out'"),
    ("kind = 'sms' AND direction = 'in'", "f_si", "e.kind = 'sms' AND e.direction = 'in'"),
    ("peer_network = 'international'", "f_intl", "e.peer_network = 'international'"),
    ("peer_network = 'off_net'", "f_offnet", "e.peer_network = 'off_net'"),
    ("direction = 'out'", "f_out", "e.direction = 'out'"),
    ("kind = 'voice'", "f_voice", "e.kind = 'voice'"),
    ("kind = 'data'", "f_data", "e.kind = 'data'"),
    ("duration_s", "f_dur", "CAST(e.duration_s AS DOUBLE)"),
    ("coalesce(volume_mb, 0)", "f_mb", "coalesce(e.volume_mb, 0)"),
)


def _with_row_flags(sql: str) -> tuple[str, list[str]]:
    """Rewrite an aggregate onto the row flags; return it and the flags it uses."""
    used = []
    for pattern, name, _ in ROW_FLAGS:
        if pattern in sql:
            sql = sql.replace(pattern, name)
            used.append(name)
    return sql, used


def _operators(ctx, lookback: int) -> list[str]:
    """Operators called in the scan window (computed once per query, cached on the context)."""
    cached = getattr(ctx, "_calls_operators", None)
    if cached is not None:
        return cached
    scan = ctx.scan(
        "calls",
        ["peer_operator"],
        ctx.time_range("started_at", lookback) + " AND peer_operator IS NOT NULL",
    )
    rows = ctx.rows(f"SELECT DISTINCT peer_operator FROM {scan} ORDER BY 1 LIMIT {MAX_OPERATORS}")
    ops = [r[0] for r in rows]
    ctx._calls_operators = ops
    return ops


def _operator_sums(ctx, lookback: int) -> list[tuple[str, PassMeasure]]:
    out = []
    for i, op in enumerate(_operators(ctx, lookback)):
        lit = str(op).replace("'", "''")
        cond = f"{VOICE_OUT} AND peer_operator = '{lit}'"
        out.append((f"_op{i}_30", _pass(cond, MINUTES, 30, ())))
        out.append((f"_op{i}_p60", _pass(cond, MINUTES, "p60", ())))
    return out


def _window_buckets(params: FeatureParams) -> list[int]:
    """Window bounds (days) of the main pass: its rows are first summed per (key, bucket of
    age between two bounds), then each window adds up its buckets."""
    return sorted(set(params.windows) | {30, TREND_LOOKBACK})


def _two_stage(measures: list[tuple[str, PassMeasure]], bounds: list[int]) -> tuple[str, str]:
    """The aggregate lists of the two stages: per (kid, bucket) one partial aggregate per
    distinct (agg, condition, value), then per kid each measure from the buckets it spans."""
    parts: dict[tuple[str, str, str], str] = {}
    final = []
    for name, x in measures:
        key = (x.agg, x.cond, x.value)
        part = parts.setdefault(key, f"_p{len(parts)}")
        if x.window is None:
            span = ""
        elif x.window == "p60":
            lo, hi = bounds.index(30), bounds.index(TREND_LOOKBACK)
            span = f" FILTER (WHERE wb > {lo} AND wb <= {hi})"
        else:
            span = f" FILTER (WHERE wb <= {bounds.index(int(x.window))})"
        if x.agg == "min":
            expr = f"min({part}){span}"
        elif x.agg == "count":
            expr = f"coalesce(sum(CAST({part} AS DOUBLE)){span}, 0)"
        else:
            expr = f"coalesce(sum({part}){span}, 0)"
        if x.scale != 1.0:
            expr = f"{expr} / {x.scale!r}"
        final.append(f"{expr} AS {name}")
    first = []
    for (agg, cond, value), part in parts.items():
        where = "" if cond == "TRUE" else f" FILTER (WHERE {cond})"
        first.append(f"{'count(*)' if agg == 'count' else f'{agg}({value})'}{where} AS {part}")
    return ",\n    ".join(first), ",\n    ".join(final)


def _top_competitor(ctx, lookback: int) -> str:
    """Minutes to the most-called operator in the last 30 days and to that one before."""
    n = len(_operators(ctx, lookback))
    if n == 0:
        return "0.0 AS top_comp_min_30, 0.0 AS top_comp_min_p60"
    top = f"greatest({', '.join(f'_op{i}_30' for i in range(n))})" if n > 1 else "_op0_30"
    # Ties (including "no competitor call in 30 days") take the largest earlier figure, so
    # the result does not depend on which or how many operators the window holds.
    cases = [f"CASE WHEN _op{i}_30 = {top} THEN _op{i}_p60 ELSE 0.0 END" for i in range(n)]
    before = f"greatest({', '.join(cases)})" if n > 1 else cases[0]
    return f"{top} AS top_comp_min_30, {before} AS top_comp_min_p60"


def build_sql(ctx, defs: list[FeatureDef]) -> str | None:
    """One query: the main conditional-aggregate pass over the last 90 days, plus the contact,
    operator and last-activity stages when features need them."""
    if not defs:
        return None
    params = ctx.params
    d = ctx.dialect
    m = measures(params)
    used = list(dict.fromkeys(x for f in defs for x in f.measures))
    if "vfm_cheapest" in used:
        used = list(dict.fromkeys([*used, *vfm.USAGE]))
    main = [x for x in used if not x.startswith(STAGED)]
    lookback = max([*params.windows, TREND_LOOKBACK, SLOPE_WEEKS * 7])
    age = d.seconds_between("e.started_at", "k.cutoff")
    ctes, joins = [], []
    if main:
        cols = sorted(
            {
                r.split(".")[1]
                for x in used
                if x in main or x.startswith("top_comp_")
                for r in m[x].requires
                if r.startswith("calls.")
            }
            - {"customer_id", "started_at"}
        )
        night = (
            f"({d.hour('e.started_at')} >= {params.night_start_hour} OR "
            f"{d.hour('e.started_at')} < {params.night_end_hour})"
        )
        scan = ctx.scan(
            "calls", ["customer_id", "started_at", *cols], ctx.time_range("started_at", lookback)
        )
        agg_list = [(x, m[x]) for x in main]
        if any(x.startswith("top_comp_") for x in used):
            agg_list += _operator_sums(ctx, lookback)
        rewritten, flags = [], set()
        for name, x in agg_list:
            cond, f1 = _with_row_flags(x.cond)
            value, f2 = _with_row_flags(x.value)
            rewritten.append((name, PassMeasure("", (), cond, value, x.window, x.agg, x.scale)))
            flags.update(f1 + f2)
        flag_sql = "".join(f", {expr} AS {name}" for _, name, expr in ROW_FLAGS if name in flags)
        raw = [c for c in cols if c in ("dropped", "peer_operator")]
        bounds = _window_buckets(params)
        bucket = " ".join(f"WHEN age_s <= {b * 86400} THEN {i}" for i, b in enumerate(bounds[:-1]))
        ctes.append(
            "ev AS (SELECT k.kid, "
            f"{age} AS age_s, {night} AS is_night, {d.is_weekend('e.started_at')} AS is_weekend"
            + flag_sql
            + "".join(f", e.{c}" for c in raw)
            + f" FROM {scan} e JOIN keys k ON {ctx.window_join('e', 'started_at', lookback)})"
        )
        first, final = _two_stage(rewritten, bounds)
        # Stage 1 sums each (condition, value) once per age bucket, stage 2 adds buckets up per
        # window: a third of the aggregate updates per row of one pass with every window.
        ctes.append(
            f"part AS (SELECT kid, CASE {bucket} ELSE {len(bounds) - 1} END AS wb,\n    {first}\n"
            "  FROM ev GROUP BY kid, wb)"
        )
        ctes.append(
            f"agg AS {d.materialized()}(SELECT kid,\n    {final}\n  FROM part GROUP BY kid)"
        )
        joins.append("agg")
    contacts = [x for x in used if x.startswith(("contacts_", "onnet_"))]
    if contacts:
        social = any(x.startswith("onnet_") for x in contacts)
        lb = max([*params.windows, 90])
        scan = ctx.scan(
            "calls",
            ["customer_id", "started_at", "peer_id"],
            ctx.time_range("started_at", lb) + " AND peer_id IS NOT NULL",
        )
        # Contacts are told apart by a 64-bit hash of peer_id: grouping on integers is much
        # faster than on strings.
        ctes.append(
            f"peers AS (SELECT k.kid, k.cutoff, {d.hash64('e.peer_id')} AS ph,"
            f" min({age}) AS last_age_s"
            f" FROM {scan} e JOIN keys k ON {ctx.window_join('e', 'started_at', lb)}"
            " GROUP BY k.kid, k.cutoff, ph)"
        )
        parts = [
            f"count(CASE WHEN p.last_age_s <= {int(x.split('_')[1]) * 86400} THEN 1 END) AS {x}"
            for x in contacts
            if x.startswith("contacts_")
        ]
        social_join = ""
        if social:
            # On-net contact: the peer is one of our subscribers (peer_id = customer_id),
            # activated before the cutoff and not gone before the 90-day window. It left when
            # its subscription ended in the 90 days before the cutoff.
            active = (
                "t.activated_at < p.cutoff AND (t.terminated_at IS NULL"
                f" OR t.terminated_at >= {d.minus_days('p.cutoff', 90)})"
            )
            left = f"{active} AND t.terminated_at < p.cutoff"
            parts += [
                f"sum(CASE WHEN p.last_age_s <= 7776000 AND {active} THEN 1 ELSE 0 END)"
                " AS onnet_contacts_90",
                f"sum(CASE WHEN p.last_age_s <= 7776000 AND {left} THEN 1 ELSE 0 END)"
                " AS onnet_left_90",
            ]
            subs = ctx.scan("customers", ["customer_id", "activated_at", "terminated_at"])
            social_join = (
                " LEFT JOIN (SELECT"
                f" {d.hash64('customer_id')} AS ph, activated_at, terminated_at FROM {subs}) t"
                " ON t.ph = p.ph"
            )
        ctes.append(
            f"contacts AS (SELECT p.kid, {', '.join(parts)} FROM peers p"
            f"{social_join} GROUP BY p.kid)"
        )
        joins.append("contacts")
    if any(x.startswith("top_comp_") for x in used):
        # Per-operator minutes come from the main pass (operators found in the window), so the
        # top competitor costs no extra scan.
        ctes.append(f"top AS (SELECT kid, {_top_competitor(ctx, lookback)} FROM agg)")
        joins.append("top")
    if any(x.startswith("vfm_") for x in used):
        ctes += vfm.value_ctes(ctx, cheapest="vfm_cheapest" in used and bool(main))
        joins.append("vfm")
    if "last_out_old_s" in used and "last_out_90" in main:
        hist = params.history_days
        hi = d.timestamp(ctx.max_cutoff - pd.Timedelta(days=lookback))
        scan = ctx.scan(
            "calls",
            ["customer_id", "started_at"],
            ctx.time_range("started_at", hist) + f" AND started_at < {hi} AND direction = 'out'",
        )
        ctes.append(
            "need AS (SELECT k.kid, k.customer_id, k.cutoff FROM keys k LEFT JOIN agg"
            " USING (kid) WHERE agg.last_out_90 IS NULL)"
        )
        ctes.append(
            f"last_out AS (SELECT k.kid, min({age}) AS last_out_old_s"
            f" FROM {scan} e JOIN need k ON {ctx.window_join('e', 'started_at', hist)}"
            f" AND e.started_at < {d.minus_days('k.cutoff', lookback)} GROUP BY k.kid)"
        )
        joins.append("last_out")
    select = [f"{f.expr} AS {f.spec.name}" for f in defs]
    # Helper column for the life-cycle stage rule "decline" (see account.final_expr).
    if {"vo_min_30", "vo_min_p60"} <= set(main):
        select.append(f"{trend('vo_min_30', 'vo_min_p60')} AS _lc_usage_trend")
    join_sql = " ".join(f"LEFT JOIN {j} USING (kid)" for j in joins)
    return "WITH " + ",\n".join(ctes) + f"\nSELECT kid, {', '.join(select)} FROM keys {join_sql}"
