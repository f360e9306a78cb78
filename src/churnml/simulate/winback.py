"""Win-back: some former customers come back as a new subscription (data contract v2).

After a chunk's months are simulated, each of its leavers gets a monthly hazard of coming back,
from the first month after the exit month on:

    h_return(k) = winback_rate x cause x reason x destination x value x tenure
                  x exp(-(k - 1) / winback_decay_months)          (k = 1, 2, ... months)

- cause: the largest hazard at the exit (`EXIT_CAUSE_FACTOR`): a competitor's or an outside
  offer that ends, or a price pull, brings people back; a move, arrears, a decline of use or
  an unsolved complaint rarely does;
- reason: non-payment exits almost never come back, silent prepaid lines (`other`) seldom;
- destination: the operator the number went to (`DESTINATION_FACTOR`): the low-cost brand's
  customers come back most, the premium one's least; a voluntary exit without a port-out
  leans to neither;
- value: the monthly fee at the exit (heavier users need a good network back), and tenure
  (long-standing customers come back to what they knew).

Time since leaving enters through the decay: most returns come in the first months. Each
return is a new subscription with a new id, the person's traits (region, age, gender, payment
type, usage level, price sensitivity, payment habits), the plan they had, a new commitment for
postpaid lines, activated on a day of the return month, and `previous_customer_id` naming the
subscription that ended. Returners are simulated as a chunk of their own (their own random
stream, so the other tables do not change), and their own exits may come back again.

`truth/winback.parquet` holds one row per exit: the true cause, the destination, the monthly
fee at the exit, the first month's return hazard, the probabilities of returning within 3, 6
and 12 months after the exit month (1 - exp(-sum of the hazards)), and the return that
happened (its new id and activation date) when it fell inside the window.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from churnml.simulate import catalog
from churnml.simulate.population import Population, _add_months
from churnml.simulate.writer import DatasetSink, prefixed_ids, take_str, to_date, to_float

# Cause of the exit (catalog.ALL_CAUSES order) -> factor on the return hazard.
EXIT_CAUSE_FACTOR = {
    "usage_decline": 0.4,
    "competitor": 1.5,
    "network_quality": 0.6,
    "service_complaints": 0.5,
    "billing_arrears": 0.25,
    "price": 1.3,
    "contract_lifecycle": 1.0,
    "tenure_value": 0.6,
    "hidden_offer": 1.8,
    "hidden_move": 0.2,
    "hidden_frustration": 0.5,
}
# Termination reason (catalog.TERMINATION_REASONS order) -> factor.
REASON_FACTOR = np.array([1.0, 1.0, 0.08, 0.3])
# Destination operator (catalog.COMPETITORS order) -> factor; no port-out: NO_DESTINATION.
DESTINATION_FACTOR = np.array([0.7, 1.0, 1.6])
NO_DESTINATION = 0.8
TRUTH_MONTHS = (3, 6, 12)
MAX_LEVELS = 8  # returners of returners of ...: bounded by the window anyway


def return_hazards(sim, leavers: np.ndarray, months: int) -> np.ndarray:
    """Monthly return hazards of `leavers` (positions in the chunk) for months 1..`months`
    after their exit month, shape (len(leavers), months)."""
    p, st, pop = sim.params, sim.state, sim.pop
    cause_factor = np.array([EXIT_CAUSE_FACTOR[c] for c in catalog.ALL_CAUSES])
    cause = st.exit_cause[leavers]
    factor = np.where(cause >= 0, cause_factor[np.maximum(cause, 0)], 1.0)
    factor = factor * REASON_FACTOR[np.maximum(st.reason[leavers], 0)]
    destination = st.ported_to[leavers]
    factor = factor * np.where(
        destination >= 0, DESTINATION_FACTOR[np.maximum(destination, 0)], NO_DESTINATION
    )
    fee = catalog.PLAN_FEE[st.plan[leavers]]
    factor = factor * np.sqrt(np.clip((fee + 5.0) / 30.0, 0.3, 2.5))
    tenure_years = (st.term_day[leavers] - pop.act_day[leavers]) / 365.25
    factor = factor * (0.6 + 0.8 * np.clip(tenure_years / 6.0, 0.0, 1.0))
    decay = np.exp(-np.arange(months) / max(p.winback_decay_months, 1e-6))
    return p.winback_rate * factor[:, None] * decay[None, :]


def _exit_months(sim, leavers: np.ndarray) -> np.ndarray:
    """Window month index of each leaver's exit."""
    return np.searchsorted(sim.window.month_days, sim.state.term_day[leavers], side="right") - 1


def _returner_population(leavers: np.ndarray, return_day: np.ndarray, sim):
    """A function turning a drawn population into the people of `leavers` coming back."""
    old, st, params = sim.pop, sim.state, sim.params

    def adapt(rng: np.random.Generator, pop: Population) -> Population:
        n = len(leavers)
        postpaid = old.postpaid[leavers]
        has_commit = postpaid & (rng.random(n) < params.commitment_share)
        term = np.where(rng.random(n) < 0.4, 12, 24)
        commit = np.where(has_commit, _add_months(return_day, term), -1)
        for name in (
            "postpaid",
            "region",
            "birth_year",
            "age",
            "gender",
            "activity",
            "frailty",
            "price_sensitivity",
            "payer_type",
            "location_factor",
            "data_share",
            "sms_share",
        ):
            setattr(pop, name, getattr(old, name)[leavers].copy())
        pop.act_day = return_day.astype(np.int64)
        pop.plan = st.plan[leavers].copy()
        pop.commit_day = commit.astype(np.int64)
        return pop

    return adapt


def simulate_returns(sim, sink: DatasetSink, n_chunks: int, level: int = 1) -> None:
    """Draw the returns of a simulated chunk's leavers, write the truth rows, and simulate
    the returners as a chunk of their own (whose leavers may come back in turn)."""
    p, st, window = sim.params, sim.state, sim.window
    leavers = np.flatnonzero(st.term_day < window.end_day)
    if len(leavers) == 0:
        return
    months = p.n_months
    hazards = return_hazards(sim, leavers, max(months, *TRUTH_MONTHS))
    exit_month = _exit_months(sim, leavers)
    # Only months inside the window can hold a return; later ones are the truth's business.
    rng = np.random.default_rng(np.random.SeedSequence(p.seed, spawn_key=(sim.chunk, 3)))
    u = rng.random((len(leavers), months))
    k = np.arange(1, months + 1)
    inside = (exit_month[:, None] + k[None, :]) < p.n_months
    comes = (u < 1.0 - np.exp(-hazards[:, :months])) & inside
    first = np.where(comes.any(axis=1), comes.argmax(axis=1) + 1, 0)
    back = first > 0
    month = exit_month + first
    start = window.month_days[np.minimum(month, p.n_months - 1)]
    end = window.month_days[np.minimum(month + 1, p.n_months)]
    day = start + np.floor(rng.random(len(leavers)) * (end - start)).astype(np.int64)
    day = np.maximum(day, st.term_day[leavers] + 1)  # a return is always after the exit

    returners = leavers[back]
    return_day = day[back]
    # A longer number than any id of the level before: ids never collide across levels.
    new_gid = sim.pop.gid[returners] + 10 ** (sim.width + level - 1)
    new_ids = prefixed_ids("C", new_gid, sim.width)
    returned_id = np.full(len(leavers), -1)
    returned_id[back] = np.arange(len(returners))
    _write_truth(sim, sink, leavers, hazards, returned_id, new_ids, day)
    if len(returners) == 0 or level > MAX_LEVELS:
        return
    returner_chunk = sim.chunk + level * n_chunks
    child = type(sim)(
        returner_chunk,
        new_gid,
        p,
        window,
        sim.width,
        stream=(2,),
        adapt=_returner_population(returners, return_day, sim),
    )
    child.previous_ids = sim.cust_ids.take(pa.array(returners))
    child.run(sink)
    simulate_returns(child, sink, n_chunks, level + 1)


def _write_truth(sim, sink, leavers, hazards, returned_id, new_ids, day) -> None:
    st = sim.state
    cum = np.cumsum(hazards, axis=1)
    back = returned_id >= 0
    columns = {
        "customer_id": sim.cust_ids.take(pa.array(leavers)),
        "terminated_at": to_date(st.term_day[leavers]),
        "termination_reason": take_str(catalog.TERMINATION_REASONS, st.reason[leavers]),
        "exit_cause": take_str(np.array(catalog.ALL_CAUSES), st.exit_cause[leavers]),
        "destination_operator": take_str(catalog.COMPETITORS, st.ported_to[leavers]),
        "monthly_fee": to_float(catalog.PLAN_FEE[st.plan[leavers]]),
        "return_hazard_first_month": to_float(hazards[:, 0]),
        **{f"p_return_{m}m": to_float(1.0 - np.exp(-cum[:, m - 1])) for m in TRUTH_MONTHS},
        "returned_customer_id": (
            take_str(new_ids, returned_id) if back.any() else pa.nulls(len(leavers), pa.string())
        ),
        "returned_at": to_date(np.where(back, day, 0), ~back),
    }
    sink.write("winback", columns)
