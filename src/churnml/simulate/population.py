"""Static customer attributes: activation, plan, region, demographics and latent traits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from churnml.simulate import catalog
from churnml.simulate.params import SimulationParams

DAYS_PER_MONTH = 30.4375
N_CONTACTS = 8  # size of each customer's stable circle of contacts


@dataclass
class Window:
    """The simulated window: month starts as days since 1970-01-01 (n_months + 1 values)."""

    month_days: np.ndarray
    start_year: int
    start_month: int  # 0 = January

    @property
    def start_day(self) -> int:
        return int(self.month_days[0])

    @property
    def end_day(self) -> int:
        return int(self.month_days[-1])

    def month_day(self, month: np.ndarray | int) -> np.ndarray:
        """First day (days since epoch) of window month index `month` (may be negative)."""
        first = np.datetime64(int(self.month_days[0]), "D").astype("datetime64[M]")
        return (first + np.asarray(month)).astype("datetime64[D]").astype(np.int64)


@dataclass
class Population:
    """Per-customer static draws for one chunk (arrays of length n)."""

    gid: np.ndarray  # global customer index
    act_day: np.ndarray
    postpaid: np.ndarray
    plan: np.ndarray
    commit_day: np.ndarray  # -1 when no commitment
    region: np.ndarray  # -1 when unknown
    birth_year: np.ndarray  # -1 when unknown
    age: np.ndarray
    gender: np.ndarray  # index into F, M, U; -1 unknown
    activity: np.ndarray  # heavy / light user level, mean about 1
    frailty: np.ndarray  # unobserved churn proneness, mean 1
    price_sensitivity: np.ndarray
    payer_type: np.ndarray  # 0 reliable, 1 sometimes late, 2 chronically late
    location_factor: np.ndarray  # personal coverage (indoor, fringe) on the region's drop rate
    data_share: np.ndarray
    sms_share: np.ndarray
    contact_type: np.ndarray  # (n, N_CONTACTS) peer network of each contact
    contact_target: np.ndarray  # (n, N_CONTACTS) local index of on-net contacts
    contact_operator: np.ndarray  # (n, N_CONTACTS) competitor of off-net contacts


def make_window(params: SimulationParams) -> Window:
    """Month boundaries of the window; refuses a start date that is not a first of month."""
    start = np.datetime64(params.start_date, "D")
    month = start.astype("datetime64[M]")
    if month.astype("datetime64[D]") != start:
        raise ValueError(f"start_date must be the first day of a month, got {params.start_date}")
    if params.n_months < 1:
        raise ValueError("n_months must be at least 1")
    months = (month + np.arange(params.n_months + 1)).astype("datetime64[D]")
    year, mon = (int(x) for x in str(month).split("-"))
    return Window(months.astype(np.int64), year, mon - 1)


def _add_months(days: np.ndarray, months: np.ndarray) -> np.ndarray:
    """Calendar addition of whole months to days since epoch (day of month clipped to 28)."""
    d = days.astype("datetime64[D]")
    m = d.astype("datetime64[M]")
    dom = np.minimum((d - m.astype("datetime64[D]")).astype(np.int64), 27)
    return ((m + months).astype("datetime64[D]").astype(np.int64)) + dom


def draw_population(
    rng: np.random.Generator,
    gid: np.ndarray,
    window: Window,
    params: SimulationParams,
) -> Population:
    """Draw the static attributes of the customers `gid` (one chunk)."""
    n = len(gid)
    rate = params.monthly_acquisition_rate * params.n_months
    new_share = rate / (1.0 + rate)
    is_new = rng.random(n) < new_share
    tenure_days = np.minimum(
        rng.exponential(params.mean_tenure_months * DAYS_PER_MONTH, n), 20 * 365.25
    )
    old_act = window.start_day - 1 - np.floor(tenure_days).astype(np.int64)
    new_act = rng.integers(window.start_day, window.end_day, n)
    act_day = np.where(is_new, new_act, old_act)

    age = np.clip(rng.normal(43.0, 15.0, n), 18, 88).astype(np.int64)
    birth_year = window.start_year - age
    birth_year[rng.random(n) < 0.03] = -1
    gender = rng.choice(4, size=n, p=[0.48, 0.47, 0.02, 0.03])
    gender[gender == 3] = -1

    young = age < 27
    p_prepaid = np.clip(params.prepaid_share * np.where(young, 1.6, 0.85), 0, 1)
    postpaid = rng.random(n) >= p_prepaid

    activity = rng.lognormal(-0.18, 0.6, n)
    need = activity * rng.lognormal(0.0, 0.3, n)
    post_plan = 3 + np.searchsorted([0.6, 1.1, 2.0], need)
    pre_plan = np.searchsorted([0.7, 1.4], need)
    plan = np.where(postpaid, post_plan, pre_plan)

    has_commit = postpaid & (rng.random(n) < params.commitment_share)
    term = np.where(rng.random(n) < 0.4, 12, 24)
    tenure_at_start = (window.start_day - act_day) / DAYS_PER_MONTH
    first_end = _add_months(act_day, term)
    # Long-standing customers have re-contracted since: their current lock-in ends anywhere
    # from a year before the window to a full term after its start.
    renewed = window.start_day + np.floor(
        rng.uniform(-12.0, term.astype(float)) * DAYS_PER_MONTH
    ).astype(np.int64)
    commit_day = np.where(tenure_at_start < term, first_end, renewed)
    commit_day = np.where(has_commit, np.maximum(commit_day, act_day + 30), -1)

    region = rng.choice(len(catalog.REGIONS), size=n, p=catalog.REGION_WEIGHT)
    region[rng.random(n) < 0.01] = -1

    frailty = rng.lognormal(-0.5 * params.frailty_sigma**2, params.frailty_sigma, n)
    price_sensitivity = rng.beta(2.0, 3.0, n) * 2.0
    payer_type = rng.choice(3, size=n, p=[0.82, 0.13, 0.05])
    location_factor = rng.lognormal(-0.08, 0.4, n)
    data_share = np.clip(rng.normal(np.where(young, 0.45, 0.32), 0.08), 0.1, 0.7)
    sms_share = np.clip(rng.normal(np.where(young, 0.22, 0.15), 0.05), 0.03, 0.4)

    onnet_share = rng.beta(5.0, 4.0, n)
    u = rng.random((n, N_CONTACTS))
    rest = rng.choice(3, size=(n, N_CONTACTS), p=[0.75, 0.17, 0.08]) + 1
    contact_type = np.where(u < onnet_share[:, None], catalog.ON_NET, rest)
    contact_target = rng.integers(0, max(n - 1, 1), (n, N_CONTACTS))
    # Never one's own contact: shift targets at or above self by one.
    contact_target = contact_target + (contact_target >= np.arange(n)[:, None])
    contact_target = np.minimum(contact_target, n - 1)
    contact_operator = rng.choice(3, size=(n, N_CONTACTS), p=catalog.COMPETITOR_SHARE)

    return Population(
        gid=gid,
        act_day=act_day,
        postpaid=postpaid,
        plan=plan,
        commit_day=commit_day,
        region=region,
        birth_year=birth_year,
        age=age,
        gender=gender,
        activity=activity,
        frailty=frailty,
        price_sensitivity=price_sensitivity,
        payer_type=payer_type,
        location_factor=location_factor,
        data_share=data_share,
        sms_share=sms_share,
        contact_type=contact_type,
        contact_target=contact_target,
        contact_operator=contact_operator,
    )
