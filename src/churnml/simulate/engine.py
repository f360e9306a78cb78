"""The monthly latent-state churn process and the dataset writer.

Each customer carries latent states that move month by month: engagement (a life cycle of
build-up, maturity and, for some, a decline), a competitor's pull, payment distress, prepaid
dormancy, and the stock of open or badly resolved complaints. The states drive the events
written to the tables (calls, transfers, complaints, bills, payments) and, at the start of
every month, the churn hazard.

Churn truth. For a customer active at the start of month m (activated before it, not yet
terminated), each voluntary cause c contributes a non-negative monthly hazard h_c (see
`CAUSES`); the contributions are multiplied by the customer's unobserved frailty, by a
lock-in discount while a commitment runs, and by `voluntary_scale`. Then they are scaled by
1 - hidden_share and the hidden causes (`HIDDEN_CAUSES`: states that move the hazard and
nothing else) add hazards worth hidden_share of the month's mean (see `_add_hidden`). With
H = sum_c h_c over all causes,

    p_voluntary = 1 - exp(-H)             (voluntary or port_out exit during month m)
    p_involuntary = min(1 - exp(-H_inv), 1 - p_voluntary)

where H_inv comes from postpaid arrears (non_payment) and prepaid silence (other). One uniform
u per customer-month decides: u < p_voluntary exits voluntarily, p_voluntary <= u <
p_voluntary + p_involuntary exits involuntarily. These p are exactly the probabilities written
to truth/churn_probability.parquet, with each h_c as hazard_<cause> and the largest as
main_cause; a cause's share of p_voluntary is h_c / H. The hazard at month m depends only on
states at the start of m (usage_decline and competitor on the states of month m-1, the ones that
shaped that month's calls), and earlier months' events are drawn from the same persistent
states, so causes leave traces before the exit. terminated_at is uniform on the 2nd..last
day of the month; the customer's events stop before that date.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from churnml.io import write_atomic
from churnml.progress import progress
from churnml.simulate import catalog, truth, winback
from churnml.simulate.campaigns import CampaignRun, campaigns_enabled, summarize_campaigns
from churnml.simulate.events import Bills, Ledger, daytime, draw_complaint_channel
from churnml.simulate.params import SimulationParams
from churnml.simulate.population import (
    DAYS_PER_MONTH,
    Population,
    Window,
    draw_population,
    make_window,
)
from churnml.simulate.truth import decompose_hazard
from churnml.simulate.usage import PeerLayout, generate_calls
from churnml.simulate.writer import (
    CAMPAIGN_TABLES,
    SCHEMAS,
    DatasetSink,
    open_sink,
    prefixed_ids,
    table_file,
    take_str,
    to_date,
    to_float,
    to_int,
    to_ts,
)

log = logging.getLogger(__name__)

GENERATOR = "churnml.simulate"
GENERATOR_VERSION = "1.0"
FAR = np.int64(10**9)  # "never" as a day number
_SEASON = np.array([0.95, 0.93, 0.98, 1.0, 1.0, 1.02, 1.06, 1.08, 1.0, 1.0, 1.02, 1.12])
_CHUNK_ID_BASE = 10**9  # per-chunk id space of complaints and payments


@dataclass
class _State:
    """Latent states of a chunk's customers, updated at each month start."""

    plan: np.ndarray
    term_day: np.ndarray
    reason: np.ndarray
    ported_to: np.ndarray
    e_dec: np.ndarray  # engagement left by the decline phase (1 = none)
    declining: np.ndarray
    pull: np.ndarray  # competitor pull, 0..1
    courted: np.ndarray
    target_op: np.ndarray
    distress: np.ndarray
    dormant: np.ndarray
    silent_prev: np.ndarray  # consecutive completed dormant months
    # Hidden states: they move the churn hazard and nothing else (no table records them).
    offer_left: np.ndarray  # months an outside offer still tempts (0: none)
    frustration: np.ndarray  # unreported dissatisfaction, a standard-normal AR(1) score
    exit_cause: np.ndarray  # index into catalog.ALL_CAUSES of the largest hazard at exit (-1)


def _initial_state(rng: np.random.Generator, pop: Population, window: Window) -> _State:
    n = len(pop.gid)
    old = pop.act_day < window.start_day - 90
    # Start near the steady state: some customers already disengaging or being courted.
    declining = old & (rng.random(n) < 0.12)
    courted = old & (rng.random(n) < 0.08)
    return _State(
        plan=pop.plan.copy(),
        term_day=np.full(n, FAR, dtype=np.int64),
        reason=np.full(n, -1, dtype=np.int64),
        ported_to=np.full(n, -1, dtype=np.int64),
        e_dec=np.where(declining, rng.uniform(0.2, 0.95, n), 1.0),
        declining=declining,
        pull=np.where(courted, rng.uniform(0.1, 1.0, n), 0.0),
        courted=courted,
        target_op=_draw_operator(rng, pop.price_sensitivity),
        distress=np.zeros(n, dtype=bool),
        dormant=np.zeros(n, dtype=bool),
        silent_prev=np.zeros(n, dtype=np.int64),
        offer_left=np.zeros(n, dtype=np.int64),
        frustration=np.zeros(n),
        exit_cause=np.full(n, -1, dtype=np.int64),
    )


def _draw_operator(rng: np.random.Generator, sensitivity: np.ndarray) -> np.ndarray:
    """Competitor a customer leans to: the low-cost brand for the price-sensitive."""
    n = len(sensitivity)
    base = rng.choice(3, size=n, p=catalog.COMPETITOR_SHARE)
    low_cost = rng.random(n) < 0.3 * sensitivity
    return np.where(low_cost, catalog.COMPETITOR_LOW_COST, base)


def _plan_fee(plan: np.ndarray, month: int, params: SimulationParams) -> np.ndarray:
    fee = catalog.PLAN_FEE[plan]
    if 0 <= params.price_rise_month <= month:
        fee = np.where(catalog.PLAN_POSTPAID[plan], fee * (1 + params.price_rise_pct), fee)
    return np.round(fee, 2)


def _ideal_plan(need: np.ndarray, postpaid: np.ndarray) -> np.ndarray:
    return np.where(
        postpaid, 3 + np.searchsorted([0.6, 1.1, 2.0], need), np.searchsorted([0.7, 1.4], need)
    )


class _ChunkSimulator:
    """Runs the month loop for one chunk of customers and writes its rows to the sink."""

    def __init__(
        self,
        chunk: int,
        gid: np.ndarray,
        params: SimulationParams,
        window: Window,
        width: int,
        stream: tuple[int, ...] = (),
        adapt: Callable[[np.random.Generator, Population], Population] | None = None,
    ) -> None:
        # `stream` and `adapt` serve a chunk of returning customers (simulate.winback): its own
        # random stream, and the drawn population turned into the people who come back.
        self.chunk = chunk
        self.width = width
        self.params = params
        self.window = window
        key = (chunk, *stream)
        self.rng = np.random.default_rng(np.random.SeedSequence(params.seed, spawn_key=key))
        self.pop = draw_population(self.rng, gid, window, params)
        if adapt is not None:
            self.pop = adapt(self.rng, self.pop)
        self.previous_ids: pa.Array | None = None  # previous_customer_id of returners
        self.n = len(gid)
        self.state = _initial_state(self.rng, self.pop, window)
        # Hidden states draw from their own stream: hidden_share = 0 reproduces the tables of
        # a simulator without them, draw for draw.
        self.hidden_rng = np.random.default_rng(
            np.random.SeedSequence(params.seed, spawn_key=(*key, 1))
        )
        self.state.frustration = self.hidden_rng.standard_normal(self.n)
        self.cust_ids = prefixed_ids("C", gid, width)
        layout = PeerLayout(self.n)
        pool = self.rng.integers(10**10, 10**11, layout.size - self.n)
        self.peer_ids = pa.concat_arrays([self.cust_ids, prefixed_ids("P", pool, 11)])
        self.transfers = Ledger(
            ("cust", "t", "kind", "from_plan", "to_plan", "fee", "op", "amount")
        )
        self.complaints = Ledger(("cust", "opened", "resolved", "cat", "channel", "sev", "sat"))
        self.topups = Ledger(("cust", "t", "amount"))
        self.bills = Bills()
        onnet = self.pop.contact_type == catalog.ON_NET
        self.n_onnet = np.maximum(onnet.sum(axis=1), 1)
        self.onnet = onnet
        incident = -1
        if params.network_incident_region in catalog.REGIONS:
            incident = int(np.flatnonzero(params.network_incident_region == catalog.REGIONS)[0])
        self.incident_region = incident
        self._seed_arrears()
        # Retention campaigns (simulate/campaigns.py) draw from their own stream too.
        self.campaigns = CampaignRun(self) if campaigns_enabled(params) else None

    def _seed_arrears(self) -> None:
        """Some postpaid payers are already in distress at the window start, with 1-3 bills
        of the months before it unpaid, so involuntary exits occur from the first months."""
        rng, pop, p = self.rng, self.pop, self.params
        weight = np.array([1.0, 2.5, 6.0])[pop.payer_type]
        seeded = pop.postpaid & (rng.random(self.n) < 3.0 * p.distress_rate * weight)
        months_unpaid = rng.integers(1, 4, self.n)
        for j in (3, 2, 1):
            period = int(self.window.month_day(-j))
            bc = np.flatnonzero(seeded & (months_unpaid >= j) & (pop.act_day < period))
            issued = int(self.window.month_day(1 - j)) + 2
            amount = np.round(catalog.PLAN_FEE[pop.plan[bc]] * rng.uniform(1.0, 1.3, len(bc)), 2)
            self.bills.add(
                bc,
                np.full(len(bc), -j),
                np.full(len(bc), issued),
                np.full(len(bc), issued + 14),
                amount,
                np.full(len(bc), -1),
            )
        self.state.distress = seeded

    # -- month step -----------------------------------------------------------------------
    def run(self, sink: DatasetSink) -> None:
        for m in range(self.params.n_months):
            self._month(m, sink)
        self._write_tables(sink)

    def _drop_prob(self, m: int) -> np.ndarray:
        pop, p = self.pop, self.params
        rate = np.where(pop.region >= 0, catalog.REGION_DROP_RATE[np.maximum(pop.region, 0)], 0.015)
        start = p.network_incident_month
        if start >= 0 and start <= m < start + p.network_incident_length:
            rate = np.where(pop.region == self.incident_region, rate * 2.5, rate)
        return np.clip(rate * pop.location_factor, 0.0, 0.3)

    def _complaint_state(self, day: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        k = self.complaints.columns()
        n, t = self.n, day * 86400
        cust = k["cust"].astype(np.int64)
        if len(cust) == 0:
            zero = np.zeros(n, dtype=np.int64)
            return zero, zero, zero
        opened, resolved, sat = k["opened"], k["resolved"], k["sat"]
        open_now = (opened < t) & ((resolved < 0) | (resolved >= t))
        recent = t - 90 * 86400
        dissat = (sat >= 1) & (sat <= 2) & (resolved >= recent) & (resolved < t)
        regulator = (k["channel"] == catalog.REGULATOR) & (opened >= recent) & (opened < t)
        return (
            np.bincount(cust[open_now], minlength=n),
            np.bincount(cust[dissat], minlength=n),
            np.bincount(cust[regulator], minlength=n),
        )

    def _month(self, m: int, sink: DatasetSink) -> None:
        rng, pop, st, p, n = self.rng, self.pop, self.state, self.params, self.n
        ms, me = int(self.window.month_days[m]), int(self.window.month_days[m + 1])
        dim = me - ms
        alive = st.term_day == FAR
        at_risk = alive & (pop.act_day < ms)
        new = (pop.act_day >= ms) & (pop.act_day < me)
        present = at_risk | new
        postpaid = pop.postpaid
        tenure = np.maximum(ms - pop.act_day, 0) / DAYS_PER_MONTH
        build = np.clip(0.55 + 0.15 * tenure, 0.55, 1.0)
        fee = _plan_fee(st.plan, m, p)
        r = rng.random((8, n))

        # The decline and competitor hazards act on last month's states, the ones that shaped
        # last month's events: a customer acts on a disengagement or an offer already visible.
        e_prev, pull_prev = st.e_dec.copy(), st.pull.copy()

        # Engagement: entering, deepening or leaving a decline.
        need = pop.activity * st.e_dec
        pressure = np.clip(np.log(np.maximum(fee, 1.0) / (5.0 + 25.0 * need)), 0.0, 3.0)
        start_decline = at_risk & ~st.declining & (r[0] < p.decline_rate * (1 + 0.5 * pressure))
        recover = st.declining & (r[1] < 0.04)
        st.declining = (st.declining | start_decline) & ~recover
        st.e_dec = np.where(
            st.declining,
            np.maximum(st.e_dec * rng.uniform(0.72, 0.92, n), 0.05),
            np.minimum(1.0, st.e_dec + 0.15 + 0.25 * recover),
        )
        engagement = build * st.e_dec

        # Competitor pull, fed by on-net contacts who ported out.
        ported_frac = (self.onnet & (st.ported_to[pop.contact_target] >= 0)).sum(1) / self.n_onnet
        q = p.courting_rate * (1 + 4 * ported_frac + 0.5 * pressure * pop.price_sensitivity)
        start_court = at_risk & ~st.courted & (r[2] < q)
        st.target_op = np.where(
            start_court, _draw_operator(rng, pop.price_sensitivity), st.target_op
        )
        st.courted = (st.courted | start_court) & ~(st.courted & (r[3] < 0.15))
        st.pull = np.where(
            st.courted, np.minimum(1.0, st.pull + rng.uniform(0.1, 0.35, n)), st.pull * 0.5
        )

        # Payment distress (postpaid) and dormancy (prepaid).
        exiting = st.distress & (r[4] < 0.2)
        distress_rate = p.distress_rate * np.array([1.0, 2.5, 6.0])[pop.payer_type]
        st.distress = (st.distress & ~exiting) | (at_risk & postpaid & (r[5] < distress_rate))
        go_dormant = ~postpaid & ~st.dormant & (engagement < 0.3) & (r[6] < 0.4)
        wake = st.dormant & (engagement > 0.5) & (r[7] < 0.5)
        st.dormant = (st.dormant | go_dormant) & ~wake

        arrears = self.bills.overdue_count(ms, n)
        open_k, dissat_k, regulator_k = self._complaint_state(ms)
        drop = self._drop_prob(m)

        # Voluntary hazard by cause.
        h = np.zeros((len(catalog.CAUSES), n))
        h[0] = 0.25 * (1 - e_prev) ** 1.5 + 0.03 * st.dormant
        h[1] = 0.6 * pull_prev**2 + 0.03 * ported_frac
        h[2] = 0.5 * np.maximum(drop - 0.006, 0.0)
        h[3] = (
            0.045 * np.minimum(open_k, 3)
            + 0.04 * np.minimum(dissat_k, 2)
            + 0.05 * np.minimum(regulator_k, 1)
        )
        h[4] = postpaid * 0.015 * np.minimum(arrears, 4)
        rise = postpaid & (0 <= p.price_rise_month <= m < p.price_rise_month + 3)
        h[5] = pop.price_sensitivity * (0.015 * pressure + 0.015 * rise + 0.002 * ~postpaid)
        has_commit = pop.commit_day >= 0
        d = (pop.commit_day - ms) / DAYS_PER_MONTH
        h[6] = has_commit * (0.09 * np.exp(-0.5 * ((d - 0.5) / 1.0) ** 2) + 0.004 * (d < -1))
        h[7] = 0.001 + 0.025 * np.exp(-tenure / 3.0) + 0.003 * (pop.age < 27) + 0.006 * ~postpaid
        locked = has_commit & (d > 1.5)
        h[:6] *= np.where(locked, 0.35, 1.0)
        h[7] *= np.where(locked, 0.35, 1.0)
        # Hazards of customers a campaign follows are kept after they leave (its truth).
        hazard_on = at_risk | self.campaigns.followed() if self.campaigns else at_risk
        h *= pop.frailty * p.voluntary_scale * hazard_on
        h, recorded = self._add_hidden(h, at_risk, locked, pop.age, pop.frailty, hazard_on)
        if self.campaigns is not None:
            self.campaigns.treat(m, h, recorded, at_risk)
        total = h.sum(axis=0)
        p_vol = 1.0 - np.exp(-total)
        h_inv = np.where(
            postpaid,
            np.select([arrears >= 3, arrears == 2], [0.9, 0.3], 0.0),
            np.select([st.silent_prev >= 3, st.silent_prev == 2], [0.6, 0.15], 0.0),
        )
        p_inv_raw = 1.0 - np.exp(-h_inv * p.involuntary_scale * hazard_on)
        p_inv = np.minimum(p_inv_raw, 1.0 - p_vol)
        if self.campaigns is not None:
            self.campaigns.follow(m, p_inv_raw)

        ported_before = st.ported_to.copy()
        u = rng.random(n)
        vol = at_risk & (u < p_vol)
        inv = at_risk & ~vol & (u < p_vol + p_inv)
        exit_day = ms + rng.integers(1, dim, n)
        # An outside offer, like a visible competitor's pull, mostly ends in a port-out.
        pull_h = h[1] + h[len(catalog.CAUSES)]
        comp_share = np.divide(pull_h, total, out=np.zeros(n), where=total > 0)
        port = vol & (rng.random(n) < 0.3 + 0.6 * comp_share)
        st.reason = np.select(
            [port, vol, inv & postpaid, inv],
            [catalog.PORT_OUT, catalog.VOLUNTARY, catalog.NON_PAYMENT, catalog.OTHER],
            st.reason,
        )
        port_op = np.where(st.courted, st.target_op, _draw_operator(rng, pop.price_sensitivity))
        st.ported_to = np.where(port, port_op, st.ported_to)
        st.term_day = np.where(vol | inv, exit_day, st.term_day)
        st.exit_cause = np.where(vol | inv, np.argmax(h, axis=0), st.exit_cause)
        self._write_truth(sink, m, at_risk, p_vol, p_inv, h, recorded)

        # Events of the month, on days [lo, hi) of each present customer.
        lo = np.maximum(ms, pop.act_day)
        hi = np.minimum(me, st.term_day)
        idx = np.flatnonzero(present & (hi > lo))
        if len(idx) == 0:
            self._end_month(m, present)
            return
        frac = (hi - lo) / dim
        season = _SEASON[(self.window.start_month + m) % 12]
        lam = (
            p.calls_per_month
            * pop.activity
            * engagement
            * season
            * rng.lognormal(-0.01, 0.12, n)
            * np.where(postpaid, 1.0, 0.75)
            * np.where(st.dormant, 0.1, 1.0)
            * frac
        )
        # On-net contacts leaving this month drop out of the circle for the whole month.
        available = (st.term_day == FAR) & (pop.act_day < ms)
        calls = generate_calls(
            rng, pop, idx, lo[idx], hi[idx], lam[idx], st.dormant, st.e_dec, drop, st.pull,
            st.target_op, available, ported_before, np.flatnonzero(available),
            data_session_weight=p.data_session_weight,
        )  # fmt: skip
        self._write_calls(sink, calls)

        self._draw_transfers(m, idx, lo, hi, port, exit_day, engagement, pressure, need)
        self._draw_complaints(idx, lo, hi, frac, drop, arrears, rise, pressure, open_k)
        self._draw_bills(m, idx, lo, hi, frac, fee, calls)
        self._draw_topups(idx, lo, hi, frac, engagement)
        catch_up = ms + rng.integers(4, max(dim, 5), n)
        when = catch_up * 86400 + 10 * 3600 + rng.integers(0, 8 * 3600, n)
        self.bills.settle(exiting & present, when)
        self._end_month(m, present)

    def _add_hidden(
        self,
        h: np.ndarray,
        at_risk: np.ndarray,
        locked: np.ndarray,
        age: np.ndarray,
        frailty: np.ndarray,
        hazard_on: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Move the hidden states one month and add their hazards to the recorded causes' `h`.

        Returns the hazards of every cause (recorded ones scaled by 1 - hidden_share) and the
        voluntary probability the recorded causes alone tell: the hidden hazards replaced by
        their expectation given what the tables show (age, lock-in) and the (unobserved)
        frailty by its mean 1, about the best any model of the tables can know.
        The hidden hazard is pinned to hidden_share of this month's mean recorded hazard, so
        the strength changes who churns, not how many.
        """
        p, st, n = self.params, self.state, self.n
        share = float(np.clip(p.hidden_share, 0.0, 0.95))
        hidden = np.zeros((len(catalog.HIDDEN_CAUSES), n))
        rng = self.hidden_rng
        # Outside offer: starts at random, tempts for one or two months.
        new_offer = rng.random(n) < p.hidden_offer_rate
        st.offer_left = np.where(
            new_offer, 1 + (rng.random(n) < 0.5), np.maximum(st.offer_left - 1, 0)
        )
        # A move or life event: one month, more often for the young (age is in the tables).
        move_p = p.hidden_move_rate * np.where((age >= 0) & (age < 30), 1.6, 0.8)
        move = rng.random(n) < move_p
        rho = float(np.clip(p.hidden_frustration_persistence, 0.0, 0.999))
        st.frustration = rho * st.frustration + np.sqrt(1 - rho**2) * rng.standard_normal(n)
        sigma = p.hidden_frustration_sigma
        parts = (
            (st.offer_left > 0).astype(float),
            move.astype(float),
            np.exp(sigma * st.frustration - 0.5 * sigma**2),
        )
        weights = np.array(
            [p.hidden_offer_weight, p.hidden_move_weight, p.hidden_frustration_weight]
        )
        weights = weights / weights.sum() if weights.sum() > 0 else weights
        risk = np.flatnonzero(at_risk)
        level = h[:, risk].sum(axis=0).mean() if len(risk) else 0.0
        # What the tables tell of the hidden hazard: its expectation given age and lock-in.
        expected = np.zeros(n)
        lock = np.where(locked, 0.35, 1.0)
        if share > 0 and level > 0:
            for i, part in enumerate(parts):
                mean = part[risk].mean()
                if mean > 0:
                    hidden[i] = weights[i] * part / mean
            # A lock-in's exit fee holds back an offer and a frustration, not a move.
            hidden[[0, 2]] *= lock
            hidden *= share * level * (at_risk if hazard_on is None else hazard_on)
            move_mean = move_p[risk].mean()
            expected = (weights[0] + weights[2]) * lock
            if move_mean > 0:
                expected = expected + weights[1] * move_p / move_mean
            expected = expected * share * level * at_risk
        recorded_h = (1.0 - share) * h
        known = recorded_h.sum(axis=0) / frailty
        recorded = 1.0 - np.exp(-(known + expected))
        return np.concatenate([recorded_h, hidden]), recorded

    def _end_month(self, m: int, present: np.ndarray) -> None:
        st = self.state
        st.silent_prev = np.where(st.dormant & present, st.silent_prev + 1, 0)

    # -- events -----------------------------------------------------------------------------
    def _draw_transfers(self, m, idx, lo, hi, port, exit_day, engagement, pressure, need):
        rng, pop, st, p = self.rng, self.pop, self.state, self.params
        k = len(idx)
        awake = ~st.dormant[idx]
        kinds = {name: i for i, name in enumerate(catalog.TRANSFER_KINDS)}

        def add(cust, t, kind, from_plan=None, to_plan=None, fee=None, op=None, amount=None):
            size = len(cust)
            none_i = np.full(size, -1, dtype=np.int64)
            self.transfers.add(
                cust=cust,
                t=t,
                kind=np.full(size, kinds[kind]),
                from_plan=none_i if from_plan is None else from_plan,
                to_plan=none_i if to_plan is None else to_plan,
                fee=np.full(size, np.nan) if fee is None else fee,
                op=none_i if op is None else op,
                amount=np.full(size, np.nan) if amount is None else amount,
            )

        # Shopping around: port-out queries, and requests that are cancelled.
        pull = st.pull[idx]
        nq = rng.poisson((0.8 * pull + 0.004) * awake)
        qc = np.repeat(idx, nq)
        op = np.where(
            st.courted[qc], st.target_op[qc], _draw_operator(rng, pop.price_sensitivity[qc])
        )
        add(qc, daytime(rng, lo[qc], hi[qc]), "port_out_query", op=op)
        rc = idx[awake & (rng.random(k) < 0.05 * pull)]
        t_req = daytime(rng, lo[rc], hi[rc])
        t_cancel = t_req + rng.integers(1, 6 * 86400, len(rc))
        add(rc, t_req, "port_out_request", op=st.target_op[rc])
        ok = t_cancel < hi[rc] * 86400
        add(rc[ok], t_cancel[ok], "port_out_cancel", op=st.target_op[rc[ok]])

        # Leavers by port-out: a request (and often a query) days before the exit.
        pc = np.flatnonzero(port)
        t_req = np.maximum(
            exit_day[pc] * 86400 - rng.integers(1 * 86400, 10 * 86400, len(pc)), lo[pc] * 86400
        )
        t_req = np.minimum(t_req, exit_day[pc] * 86400 - 1)
        add(pc, t_req, "port_out_request", op=st.ported_to[pc])
        qsel = rng.random(len(pc)) < 0.6
        t_q = np.maximum(
            t_req[qsel] - rng.integers(86400, 12 * 86400, qsel.sum()), lo[pc[qsel]] * 86400
        )
        add(pc[qsel], t_q, "port_out_query", op=st.ported_to[pc[qsel]])

        # Plan changes: upgrades when usage outgrows the plan, downgrades under price pressure
        # or while disengaging; effective from next month.
        cur = st.plan[idx]
        ideal = _ideal_plan(pop.activity[idx] * engagement[idx], pop.postpaid[idx])
        sens = pop.price_sensitivity[idx]
        p_up = np.where(ideal > cur, 0.05, 0.002)
        p_down = (
            np.where(ideal < cur, 0.02, 0.003)
            + 0.02 * pressure[idx] * sens
            + 0.05 * (1 - st.e_dec[idx])
        )
        v = rng.random(k) * awake + (~awake) * 2.0
        step = np.where(v < p_up, 1, np.where(v < p_up + p_down, -1, 0))
        lowest = np.where(pop.postpaid[idx], 3, 0)
        highest = np.where(pop.postpaid[idx], 6, 2)
        new_plan = np.clip(cur + step, lowest, highest)
        ch = np.flatnonzero(new_plan != cur)
        cc = idx[ch]
        new_fee = _plan_fee(new_plan[ch], m + 1, p)
        add(cc, daytime(rng, lo[cc], hi[cc]), "plan_change", cur[ch], new_plan[ch], new_fee)
        st.plan[cc] = new_plan[ch]

        for kind, rate in (("sim_swap", 0.004), ("ownership_change", 0.0015)):
            sc = idx[rng.random(k) < rate]
            add(sc, daytime(rng, lo[sc], hi[sc]), kind)
        prepaid = awake & ~pop.postpaid[idx]
        for kind, rate in (("balance_transfer_out", 0.05), ("balance_transfer_in", 0.04)):
            bc = np.repeat(idx, rng.poisson(rate * prepaid * engagement[idx]))
            amount = rng.choice(
                [1.0, 2.0, 5.0, 10.0, 20.0], size=len(bc), p=[0.2, 0.3, 0.3, 0.15, 0.05]
            )
            add(bc, daytime(rng, lo[bc], hi[bc]), kind, amount=amount)

    def _draw_complaints(self, idx, lo, hi, frac, drop, arrears, rise, pressure, open_k):
        rng, pop, st = self.rng, self.pop, self.state
        postpaid = pop.postpaid
        comps = np.stack(
            [
                postpaid * (0.006 + 0.05 * (arrears > 0)),  # billing
                0.7 * drop,  # network
                0.006 + 0.04 * (open_k > 0),  # service
                postpaid * 0.03 * rise + 0.006 * pressure * pop.price_sensitivity,  # price
                np.full(self.n, 0.004),  # product
                np.full(self.n, 0.002),  # other
            ]
        )
        total = comps.sum(axis=0)
        rate = total * frac * np.where(st.dormant, 0.2, 1.0)
        kc = np.repeat(idx, rng.poisson(rate[idx]))
        kk = len(kc)
        if kk == 0:
            return
        cum = np.cumsum(comps, axis=0)[:, kc]
        cat = np.minimum((rng.random(kk) * total[kc] > cum).sum(axis=0), 5)
        sev = rng.choice([1, 2, 3], size=kk, p=[0.55, 0.32, 0.13])
        sev = np.where((cat == 1) & (drop[kc] > 0.03), np.maximum(sev, 2), sev)
        channel = draw_complaint_channel(rng, sev, open_k[kc] > 0)
        opened = daytime(rng, lo[kc], hi[kc])
        never = rng.random(kk) < 0.07 + 0.08 * (sev == 3) + 0.05 * (cat == 1)
        days = np.exp(
            rng.normal(np.log(1.2) + 0.6 * (sev - 1) + 1.0 * (channel == catalog.REGULATOR), 1.0)
        )
        resolved = np.where(never, -1, opened + np.maximum((days * 86400).astype(np.int64), 600))
        score = np.round(4.4 - 0.55 * np.log1p(days) - 0.35 * (sev - 1) + rng.normal(0.0, 0.8, kk))
        surveyed = ~never & (rng.random(kk) < 0.55)
        sat = np.where(surveyed, np.clip(score, 1, 5), -1).astype(np.int64)
        self.complaints.add(
            cust=kc, opened=opened, resolved=resolved, cat=cat, channel=channel, sev=sev, sat=sat
        )

    def _draw_bills(self, m, idx, lo, hi, frac, fee, calls):
        rng, pop, st = self.rng, self.pop, self.state
        issued_day = int(self.window.month_days[m + 1]) + 2
        if issued_day >= self.window.end_day:  # issued after as_of: not in the extract
            return
        bc = idx[pop.postpaid[idx] & (st.term_day[idx] == FAR)]
        if len(bc) == 0:
            return
        plan = st.plan[bc]
        f = frac[bc]
        minutes = calls.voice_out_minutes(self.n)[bc]
        mb = calls.data_mb(self.n)[bc]
        extra = catalog.EXTRA_MINUTE_PRICE * np.maximum(minutes - catalog.PLAN_MINUTES[plan] * f, 0)
        extra += catalog.EXTRA_GB_PRICE * np.maximum(mb - catalog.PLAN_DATA_MB[plan] * f, 0) / 1024
        roaming = np.where(rng.random(len(bc)) < 0.05, rng.uniform(3, 30, len(bc)), 0.0)
        amount = np.round(fee[bc] * f + extra + roaming, 2)
        due_day = issued_day + 14
        late = rng.random(len(bc)) < np.array([0.04, 0.45, 0.75])[pop.payer_type[bc]]
        pay_day = np.where(
            late,
            due_day + rng.integers(1, 36, len(bc)),
            issued_day + rng.integers(1, 14, len(bc)),
        )
        pay_t = (
            pay_day * 86400
            + np.minimum(np.searchsorted(catalog.DAYTIME_CDF, rng.random(len(bc))), 23) * 3600
            + rng.integers(0, 3600, len(bc))
        )
        paid = np.where(st.distress[bc] | (amount <= 0), -1, pay_t)
        n_b = len(bc)
        self.bills.add(
            bc,
            np.full(n_b, m),
            np.full(n_b, issued_day),
            np.full(n_b, due_day),
            amount,
            paid,
        )

    def _draw_topups(self, idx, lo, hi, frac, engagement):
        rng, pop, st = self.rng, self.pop, self.state
        pre = ~pop.postpaid[idx] & ~st.dormant[idx]
        rate = 2.2 * engagement[idx] ** 1.2 * frac[idx] * (0.5 + 0.5 * np.sqrt(pop.activity[idx]))
        tc = np.repeat(idx, rng.poisson(rate * pre))
        level = np.clip(
            np.round(rng.normal(1.5 + 1.5 * np.log(pop.activity[tc]), 1.0)), 0, 5
        ).astype(np.int64)
        amount = np.array([5.0, 10.0, 15.0, 20.0, 30.0, 50.0])[level]
        self.topups.add(cust=tc, t=daytime(rng, lo[tc], hi[tc]), amount=amount)

    # -- writing ------------------------------------------------------------------------------
    def _write_truth(self, sink, m, at_risk, p_vol, p_inv, h, recorded) -> None:
        sel = np.flatnonzero(at_risk)
        month_s = np.full(len(sel), int(self.window.month_days[m]) * 86400)
        cols = {
            "customer_id": self.cust_ids.take(pa.array(sel)),
            "month": to_ts(month_s),
            "p_voluntary": to_float(p_vol[sel]),
            "p_involuntary": to_float(p_inv[sel]),
            "p_voluntary_recorded": to_float(recorded[sel]),
            "main_cause": take_str(np.array(catalog.ALL_CAUSES), np.argmax(h[:, sel], axis=0)),
        }
        for i, cause in enumerate(catalog.ALL_CAUSES):
            cols[f"hazard_{cause}"] = to_float(h[i, sel])
        sink.write("truth", cols)

    def _write_calls(self, sink, calls) -> None:
        is_data = calls.kind == catalog.DATA
        sink.write(
            "calls",
            {
                "customer_id": self.cust_ids.take(pa.array(calls.cust)),
                "started_at": to_ts(calls.t),
                "direction": take_str(catalog.DIRECTIONS, calls.direction),
                "kind": take_str(catalog.KINDS, calls.kind),
                "duration_s": to_int(calls.duration),
                "volume_mb": to_float(calls.volume, ~is_data),
                "peer_network": take_str(catalog.PEER_NETWORKS, calls.network),
                "peer_operator": take_str(catalog.COMPETITORS, calls.operator),
                "peer_id": take_str(self.peer_ids, calls.peer),
                "dropped": pa.array(calls.dropped, pa.bool_()),
            },
        )

    def _write_tables(self, sink: DatasetSink) -> None:
        if self.campaigns is not None:
            self.campaigns.write(sink)
        pop, st = self.pop, self.state
        as_of_s = self.window.end_day * 86400
        end_s = np.minimum(st.term_day * 86400, as_of_s)
        terminated = st.term_day < FAR
        sink.write(
            "customers",
            {
                "customer_id": self.cust_ids,
                "activated_at": to_date(pop.act_day),
                "terminated_at": to_date(np.where(terminated, st.term_day, 0), ~terminated),
                "termination_reason": take_str(catalog.TERMINATION_REASONS, st.reason),
                "initial_plan_id": take_str(catalog.PLAN_IDS, pop.plan),
                "payment_type": take_str(
                    np.array(["prepaid", "postpaid"]), pop.postpaid.astype(int)
                ),
                "commitment_end": to_date(np.maximum(pop.commit_day, 0), pop.commit_day < 0),
                "region": take_str(catalog.REGIONS, pop.region),
                "birth_year": to_int(pop.birth_year, pop.birth_year < 0),
                "gender": take_str(np.array(["F", "M", "U"]), pop.gender),
                "previous_customer_id": (
                    self.previous_ids
                    if self.previous_ids is not None
                    else pa.nulls(self.n, pa.string())
                ),
            },
        )

        tr = self.transfers.columns()
        order = np.lexsort((tr["t"], tr["cust"]))
        tr = {k: v[order] for k, v in tr.items()}
        sink.write(
            "transfers",
            {
                "customer_id": self.cust_ids.take(pa.array(tr["cust"].astype(np.int64))),
                "occurred_at": to_ts(tr["t"]),
                "kind": take_str(catalog.TRANSFER_KINDS, tr["kind"]),
                "from_plan_id": take_str(catalog.PLAN_IDS, tr["from_plan"]),
                "to_plan_id": take_str(catalog.PLAN_IDS, tr["to_plan"]),
                "monthly_fee": to_float(tr["fee"], np.isnan(tr["fee"].astype(float))),
                "operator": take_str(catalog.COMPETITORS, tr["op"]),
                "amount": to_float(tr["amount"], np.isnan(tr["amount"].astype(float))),
            },
        )

        k = self.complaints.columns()
        order = np.lexsort((k["opened"], k["cust"]))
        k = {name: v[order] for name, v in k.items()}
        cust = k["cust"].astype(np.int64)
        seen = (k["resolved"] >= 0) & (k["resolved"] < end_s[cust])
        base = self.chunk * _CHUNK_ID_BASE
        sink.write(
            "complaints",
            {
                "complaint_id": prefixed_ids("K", base + np.arange(len(cust)), 14),
                "customer_id": self.cust_ids.take(pa.array(cust)),
                "opened_at": to_ts(k["opened"]),
                "resolved_at": to_ts(np.maximum(k["resolved"], 0), ~seen),
                "category": take_str(catalog.COMPLAINT_CATEGORIES, k["cat"]),
                "channel": take_str(catalog.COMPLAINT_CHANNELS, k["channel"]),
                "severity": to_int(k["sev"]),
                "satisfaction": to_int(k["sat"], ~seen | (k["sat"] < 0)),
            },
        )

        b_cust, b_month, b_issued, b_due, b_amount, b_paid = self.bills.arrays()
        keep = b_issued < st.term_day[b_cust]
        order = np.lexsort((b_month[keep], b_cust[keep]))
        sel = np.flatnonzero(keep)[order]
        b_cust, b_month, b_issued, b_due, b_amount, b_paid = (
            a[sel] for a in (b_cust, b_month, b_issued, b_due, b_amount, b_paid)
        )
        bill_no = pop.gid[b_cust] * 10_000 + 1_000 + b_month
        bill_ids = prefixed_ids("B", bill_no, self.width + 4)
        sink.write(
            "bills",
            {
                "bill_id": bill_ids,
                "customer_id": self.cust_ids.take(pa.array(b_cust)),
                "period_start": to_date(self.window.month_day(b_month)),
                "issued_at": to_date(b_issued),
                "due_at": to_date(b_due),
                "amount_due": to_float(b_amount),
            },
        )

        # Payments: bill payments made before the exit and the extract, and prepaid top-ups.
        paid = (b_paid >= 0) & (b_paid < end_s[b_cust])
        tp = self.topups.columns()
        t_cust = tp["cust"].astype(np.int64)
        t_ok = tp["t"] < end_s[t_cust]
        p_cust = np.concatenate([b_cust[paid], t_cust[t_ok]])
        p_t = np.concatenate([b_paid[paid], tp["t"][t_ok].astype(np.int64)])
        p_amount = np.concatenate([b_amount[paid], tp["amount"][t_ok].astype(float)])
        p_bill = np.concatenate([np.flatnonzero(paid), np.full(t_ok.sum(), -1)])
        order = np.lexsort((p_t, p_cust))
        p_cust, p_t, p_amount, p_bill = (a[order] for a in (p_cust, p_t, p_amount, p_bill))
        sink.write(
            "payments",
            {
                "payment_id": prefixed_ids("PAY", base + np.arange(len(p_cust)), 14),
                "customer_id": self.cust_ids.take(pa.array(p_cust)),
                "paid_at": to_ts(p_t),
                "amount": to_float(p_amount),
                "bill_id": take_str(bill_ids, p_bill),
            },
        )


def _id_width(n_customers: int) -> int:
    return max(7, len(str(max(n_customers - 1, 0))))


def simulate_dataset(params: SimulationParams, out_dir: str | Path) -> Path:
    """Simulate a telecom churn dataset into `out_dir` (contract tables, manifest, truth).

    Customers are simulated in independent chunks of `params.chunk_size` with seeds derived
    from `SeedSequence(params.seed)`, so memory stays bounded and the output is reproducible.
    """
    if params.n_customers < 1 or params.chunk_size < 1:
        raise ValueError("n_customers and chunk_size must be at least 1")
    window = make_window(params)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n_chunks = max(1, math.ceil(params.n_customers / params.chunk_size))
    width = _id_width(params.n_customers)
    with_campaigns = campaigns_enabled(params)
    tables = None if with_campaigns else [t for t in SCHEMAS if t not in CAMPAIGN_TABLES]
    with open_sink(out_dir, tables) as sink:
        for chunk in progress(range(n_chunks), "simulating customer chunks", unit="chunks"):
            start = chunk * params.chunk_size
            stop = min(params.n_customers, start + params.chunk_size)
            if stop <= start:
                break
            log.debug(
                "simulating customers %d..%d (chunk %d/%d)", start, stop - 1, chunk + 1, n_chunks
            )
            gid = np.arange(start, stop, dtype=np.int64)
            simulator = _ChunkSimulator(chunk, gid, params, window, width)
            simulator.run(sink)
            winback.simulate_returns(simulator, sink, n_chunks)
        counts = dict(sink.row_counts)
    decomposition = decompose_hazard(
        pd.read_parquet(out_dir / truth.TRUTH_FILE),
        pd.read_parquet(
            out_dir / "customers.parquet",
            columns=["customer_id", "terminated_at", "termination_reason"],
        ),
    )
    decomposition["params"] = {
        k: v for k, v in asdict(params).items() if k.startswith("hidden_") or k == "frailty_sigma"
    }
    if with_campaigns:
        effects = pd.read_parquet(table_file(out_dir, "campaign_truth"))
        write_atomic(
            out_dir / truth.CAMPAIGNS_FILE,
            lambda tmp: tmp.write_text(
                json.dumps(summarize_campaigns(effects), indent=2, sort_keys=True) + "\n"
            ),
        )
    write_atomic(
        out_dir / truth.DECOMPOSITION_FILE,
        lambda tmp: tmp.write_text(json.dumps(decomposition, indent=2, sort_keys=True) + "\n"),
    )
    as_of = np.datetime64(window.end_day, "D").astype("datetime64[s]")
    manifest = {
        "as_of": str(as_of),
        "generator": GENERATOR,
        "generator_version": GENERATOR_VERSION,
        "package_version": _package_version(),
        "seed": params.seed,
        "params": asdict(params),
        "window_start": str(np.datetime64(window.start_day, "D")),
        "causes": list(catalog.CAUSES),
        "hidden_causes": list(catalog.HIDDEN_CAUSES),
        "catalogue": _describe_market(params, window),
        "row_counts": counts,
    }
    write_atomic(
        out_dir / "manifest.json",
        lambda tmp: tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n"),
    )
    log.info("wrote %s: %s", out_dir, counts)
    return out_dir


def _describe_market(params: SimulationParams, window: Window) -> dict:
    """The fixed market behind the data (plans, regions, competitors, dated market events)."""
    plans = [
        {
            "plan_id": str(catalog.PLAN_IDS[i]),
            "payment_type": "postpaid" if catalog.PLAN_POSTPAID[i] else "prepaid",
            "monthly_fee": float(catalog.PLAN_FEE[i]),
            "included_minutes": float(catalog.PLAN_MINUTES[i]),
            "included_data_gb": float(catalog.PLAN_DATA_MB[i] / 1024),
        }
        for i in range(len(catalog.PLAN_IDS))
    ]
    regions = [
        {"region": str(name), "base_dropped_call_rate": float(rate)}
        for name, rate in zip(catalog.REGIONS, catalog.REGION_DROP_RATE, strict=True)
    ]
    events = []
    if 0 <= params.price_rise_month < params.n_months:
        day = np.datetime64(int(window.month_day(params.price_rise_month)), "D")
        events.append(
            {"event": "postpaid_price_rise", "from": str(day), "pct": params.price_rise_pct}
        )
    if 0 <= params.network_incident_month < params.n_months:
        day = np.datetime64(int(window.month_day(params.network_incident_month)), "D")
        events.append(
            {
                "event": "network_incident",
                "region": params.network_incident_region,
                "from": str(day),
                "months": params.network_incident_length,
            }
        )
    return {
        "plans": plans,
        "regions": regions,
        "competitors": [str(c) for c in catalog.COMPETITORS],
        "market_events": events,
    }


def _package_version() -> str:
    try:
        return version("churnml")
    except PackageNotFoundError:
        return "unknown"
