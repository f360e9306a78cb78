"""Time to churn: a discrete-time hazard model, survival curves and lifetime value.

Each (customer, cutoff) row of the churn sample becomes up to K person-period rows, one per
calendar month k after the cutoff (month k is (cutoff + k-1 months, cutoff + k months]). A
month is a row only when the customer was still there at its start and the month lies wholly
before the censoring date (the data's `as_of`, or an out-of-time fold's test cutoff): a
customer seen only until then contributes the months observed, no more. Its target is 1 when
the customer left for a counted reason (`label.reasons`) in that month. A month in which the
customer left for another reason (non-payment, say) is a competing exit: it counts as half a
month at risk without an exit (the actuarial life-table rule) and ends the customer's rows.

One LightGBM model on the customer's features at the cutoff plus the month k and the features
that move with it (tenure and days to the commitment end, k-1 months on) gives the monthly
hazard h(k | x); the survival curve is S(t) = prod_{k <= t} (1 - h(k)), nonincreasing by
construction. Loading a fitted `HazardModel` needs numpy, pandas and LightGBM only.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np
import pandas as pd

from churnml.model import FeatureFrameSpec, TrainingError
from churnml.progress import Progress, lightgbm_callback, progress

log = logging.getLogger(__name__)

DAYS_PER_MONTH = 365.25 / 12
MONTH_FEATURE = "month"
# Features that move in a known way as the months pass: base feature -> (name, days per month).
MOVING_FEATURES = {
    "tenure_days": ("tenure_days_at_month", DAYS_PER_MONTH),
    "days_to_commitment_end": ("days_to_commitment_end_at_month", -DAYS_PER_MONTH),
}
COMPETING_EXIT_WEIGHT = 0.5  # actuarial rule: a month with another exit is half a month at risk
HOLDOUT_BUCKETS = 5  # early stopping: one customer in five held out (by a hash of the id)


@dataclass
class PersonPeriods:
    """Person-period rows: `row` indexes the (customer, cutoff) frame, `month` is k (1..K)."""

    row: np.ndarray
    month: np.ndarray
    event: np.ndarray
    weight: np.ndarray
    competing: np.ndarray  # the month of an exit for a reason not counted

    def __len__(self) -> int:
        return len(self.row)

    def take(self, mask: np.ndarray) -> PersonPeriods:
        return PersonPeriods(
            self.row[mask],
            self.month[mask],
            self.event[mask],
            self.weight[mask],
            self.competing[mask],
        )


def month_edges(cutoffs: pd.Series, months: int) -> np.ndarray:
    """(n, months + 1) array of month boundaries: column k is cutoff + k calendar months."""
    cutoffs = pd.to_datetime(cutoffs).astype("datetime64[ns]")
    unique = pd.DatetimeIndex(cutoffs.unique())
    table = np.stack(
        [(unique + pd.DateOffset(months=k)).to_numpy("datetime64[ns]") for k in range(months + 1)],
        axis=1,
    )
    position = unique.get_indexer(pd.DatetimeIndex(cutoffs))
    return table[position]


def exit_facts(customers: pd.DataFrame, keys: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per key row: the customer's exit time (NaT while active) and its termination reason."""
    info = customers.assign(customer_id=customers["customer_id"].astype(str)).set_index(
        "customer_id"
    )
    ids = keys["customer_id"].astype(str)
    exit_at = pd.to_datetime(info["terminated_at"]).reindex(ids).to_numpy("datetime64[ns]")
    reason = info["termination_reason"].astype(object).reindex(ids).to_numpy()
    return exit_at, reason


def person_periods(
    keys: pd.DataFrame,
    customers: pd.DataFrame,
    censor_at: pd.Timestamp,
    months: int,
    reasons: list[str] | tuple[str, ...],
) -> PersonPeriods:
    """The person-period rows of `keys` (customer_id, cutoff, optional weight) up to `censor_at`.

    Only months that end on or before `censor_at` exist, so an exit after it is never seen
    (the customer simply has fewer months); a customer who left has no month after the exit.
    """
    exit_at, reason = exit_facts(customers, keys)
    counted = np.isin(reason.astype(str), list(reasons))
    edges = month_edges(keys["cutoff"], months)
    censor = np.datetime64(pd.Timestamp(censor_at).to_datetime64(), "ns")
    base_weight = keys["weight"].to_numpy(float) if "weight" in keys else np.ones(len(keys))
    has_exit = ~np.isnat(exit_at)
    parts = []
    for k in range(1, months + 1):
        start, end = edges[:, k - 1], edges[:, k]
        observed = end <= censor
        at_risk = ~has_exit | (exit_at > start)
        keep = observed & at_risk
        exit_now = has_exit & (exit_at > start) & (exit_at <= end)
        event = exit_now & counted
        weight = np.where(exit_now & ~counted, COMPETING_EXIT_WEIGHT, 1.0) * base_weight
        index = np.flatnonzero(keep)
        parts.append(
            PersonPeriods(
                index,
                np.full(len(index), k, dtype=np.int16),
                event[index].astype(np.int8),
                weight[index],
                (exit_now & ~counted)[index],
            )
        )
    return PersonPeriods(
        *(
            np.concatenate([getattr(p, name) for p in parts])
            for name in ("row", "month", "event", "weight", "competing")
        )
    )


def downsample(pp: PersonPeriods, max_rows: int, seed: int) -> tuple[PersonPeriods, float]:
    """Bring the rows to about `max_rows`, each kept row weighted by 1 / its rate, so the
    weighted rows are an unbiased image of all of them.

    Months without any exit go first: every exit and other-exit month is kept while they fill
    at most half of `max_rows`; past that (a very large base), they are sampled too, so the
    quiet months still make half the rows. Returns the rows and the quiet months' rate.
    """
    plain = (pp.event == 0) & ~pp.competing
    n_plain, n_exits = int(plain.sum()), int((~plain).sum())
    if len(pp) <= max_rows or n_plain == 0:
        return pp, 1.0
    exit_rate = min(1.0, (max_rows / 2) / max(n_exits, 1))
    rate = min(1.0, (max_rows - exit_rate * n_exits) / n_plain)
    draw = np.random.default_rng(seed).random(len(pp))
    keep = np.where(plain, draw < rate, draw < exit_rate)
    weight = pp.weight / np.where(plain, rate, exit_rate)
    out = PersonPeriods(pp.row, pp.month, pp.event, weight, pp.competing).take(keep)
    return out, rate


@dataclass
class HazardDesign:
    """How the model's input matrix is made from a feature frame: base features, then the month
    and the moving features."""

    spec: FeatureFrameSpec
    moving: dict[str, str] = field(default_factory=dict)  # base feature -> moving name

    @property
    def columns(self) -> list[str]:
        return [*self.spec.columns, MONTH_FEATURE, *self.moving.values()]

    @property
    def categorical_indices(self) -> list[int]:
        n = len(self.spec.numeric)
        return list(range(n, n + len(self.spec.categorical)))

    @classmethod
    def infer(cls, frame: pd.DataFrame, feature_columns: list[str]) -> HazardDesign:
        spec = FeatureFrameSpec.infer(frame, feature_columns)
        moving = {b: MOVING_FEATURES[b][0] for b in MOVING_FEATURES if b in spec.numeric}
        return cls(spec, moving)

    def base_matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """(n, columns) float32 matrix with the month columns still empty; categoricals as
        codes of the fixed levels (missing: NaN)."""
        prepared = self.spec.prepare(frame)
        out = np.full((len(frame), len(self.columns)), np.nan, dtype=np.float32)
        for j, column in enumerate(self.spec.numeric):
            out[:, j] = prepared[column].to_numpy(np.float32)
        offset = len(self.spec.numeric)
        for j, column in enumerate(self.spec.categorical):
            codes = prepared[column].cat.codes.to_numpy().astype(np.float32)
            codes[codes < 0] = np.nan
            out[:, offset + j] = codes
        return out

    def set_month(self, matrix: np.ndarray, base: np.ndarray, month: np.ndarray | int) -> None:
        """Fill the month columns in place for month k (an int or one per row); `base` holds
        the rows' moving features at the cutoff."""
        n = len(self.spec.columns)
        matrix[:, n] = month
        for j, name in enumerate(self.moving):
            step = MOVING_FEATURES[name][1]
            matrix[:, n + 1 + j] = base[:, j] + step * (np.asarray(month, dtype=np.float32) - 1)

    def moving_base(self, matrix: np.ndarray) -> np.ndarray:
        index = [self.spec.numeric.index(name) for name in self.moving]
        return matrix[:, index].copy() if index else np.zeros((len(matrix), 0), np.float32)

    def person_period_matrix(self, frame: pd.DataFrame, pp: PersonPeriods) -> np.ndarray:
        """One row per person-month; only the frame rows still used after down-sampling are
        prepared (at 1M rows, about a third of them)."""
        used, position = np.unique(pp.row, return_inverse=True)
        base = self.base_matrix(frame.iloc[used])
        matrix = base[position]
        self.set_month(matrix, self.moving_base(base)[position], pp.month)
        return matrix


class HazardModel:
    """A fitted discrete-time hazard model: monthly hazards and survival over `months`.

    `settings` records what scoring must repeat (as the churn model's do) and the recipe the
    champion gate retrains; `reference` holds the test cutoff's mean curve.
    """

    kind = "lightgbm_hazard"

    def __init__(self, design: HazardDesign, booster: lgb.Booster, months: int):
        self.design = design
        self.booster = booster
        self.months = months
        self.settings: dict = {}
        self.baseline: np.ndarray | None = None  # Kaplan-Meier monthly hazards of training

    @property
    def spec(self) -> FeatureFrameSpec:
        return self.design.spec

    @property
    def feature_names(self) -> list[str]:
        return self.design.spec.columns

    def hazards(self, features: pd.DataFrame, batch_rows: int = 250_000) -> np.ndarray:
        """(n, months) monthly hazards h(k | x): the chance of a counted exit in month k for a
        customer still there at its start."""
        out = np.empty((len(features), self.months), dtype=np.float64)
        # The threads it was trained with (hazard.params.num_threads; 0: every core).
        threads = int(self.settings.get("hazard_params", {}).get("num_threads", 0))
        starts = range(0, len(features), batch_rows)
        for start in progress(starts, "survival curves", unit="batches"):
            part = features.iloc[start : start + batch_rows]
            matrix = self.design.base_matrix(part)
            base = self.design.moving_base(matrix)
            for k in range(1, self.months + 1):
                self.design.set_month(matrix, base, k)
                out[start : start + len(part), k - 1] = self.booster.predict(
                    matrix, num_threads=threads
                )
        return np.clip(out, 0.0, 1.0)

    def survival(self, features: pd.DataFrame) -> np.ndarray:
        """(n, months) S(1..months): the chance of still being a customer after month t."""
        return survival_from_hazards(self.hazards(features))


def survival_from_hazards(hazards: np.ndarray) -> np.ndarray:
    return np.cumprod(1.0 - np.clip(hazards, 0.0, 1.0), axis=1)


def survival_at(survival: np.ndarray, months: float) -> np.ndarray:
    """S at a fractional number of months: the hazard is constant inside a month, so the
    survival between two month ends is S(m) x (S(m+1) / S(m)) ** fraction."""
    total = survival.shape[1]
    if months > total + 1e-9:
        raise ValueError(f"{months:.2f} months is past the curve's span of {total} months")
    whole = int(np.floor(months))
    fraction = months - whole
    padded = np.concatenate([np.ones((len(survival), 1)), survival], axis=1)
    if whole >= total:
        return padded[:, total]
    before, after = padded[:, whole], padded[:, whole + 1]
    ratio = np.divide(after, before, out=np.zeros_like(after), where=before > 0)
    return before * ratio**fraction


def horizon_months(days: int) -> float:
    """Days to months: a month is 365.25 / 12 = 30.44 days (90 days: 2.96 months)."""
    return days / DAYS_PER_MONTH


def churn_probabilities(survival: np.ndarray, horizons_days: list[int]) -> dict[str, np.ndarray]:
    """`churn_probability_<d>d` = 1 - S(d days), nondecreasing in d (horizons sorted)."""
    out = {}
    previous = np.zeros(len(survival))
    for days in sorted(horizons_days):
        p = 1.0 - survival_at(survival, horizon_months(days))
        p = np.maximum(p, previous)  # float rounding never breaks the order
        out[f"churn_probability_{days}d"] = p
        previous = p
    return out


def expected_remaining_months(survival: np.ndarray) -> np.ndarray:
    """Restricted mean time to churn over the span: sum of (S(t-1) + S(t)) / 2, the exact mean
    when exits fall evenly inside their month (a customer who never leaves gets the span)."""
    padded = np.concatenate([np.ones((len(survival), 1)), survival], axis=1)
    return ((padded[:, :-1] + padded[:, 1:]) / 2).sum(axis=1)


def monthly_discount(annual_rate: float) -> float:
    return (1.0 + annual_rate) ** (1.0 / 12) - 1.0


def discount_factors(months: int, annual_rate: float) -> np.ndarray:
    return (1.0 + monthly_discount(annual_rate)) ** -np.arange(1, months + 1)


def lifetime_value(
    survival: np.ndarray, monthly_revenue: np.ndarray, margin_rate: float, annual_rate: float
) -> np.ndarray:
    """Expected discounted margin over the span: sum_t revenue x margin x S(t) / (1 + r)^t."""
    factors = discount_factors(survival.shape[1], annual_rate)
    revenue = np.nan_to_num(np.asarray(monthly_revenue, dtype=float), nan=0.0)
    return revenue * margin_rate * (survival * factors).sum(axis=1)


def lifetime_value_at_risk(
    survival: np.ndarray, monthly_revenue: np.ndarray, margin_rate: float, annual_rate: float
) -> np.ndarray:
    """The discounted margin the churn risk puts at stake: what the customer would bring over
    the span if certain to stay, minus the lifetime value."""
    certain = lifetime_value(np.ones_like(survival), monthly_revenue, margin_rate, annual_rate)
    return certain - lifetime_value(survival, monthly_revenue, margin_rate, annual_rate)


def kaplan_meier_hazards(pp: PersonPeriods, months: int) -> np.ndarray:
    """The population's monthly hazards from person-period rows (weighted life table)."""
    exits = np.bincount(pp.month - 1, weights=pp.weight * pp.event, minlength=months)
    at_risk = np.bincount(pp.month - 1, weights=pp.weight, minlength=months)
    hazards = np.divide(exits, at_risk, out=np.zeros(months), where=at_risk > 0)
    # Months never observed take the last observed month's hazard.
    seen = np.flatnonzero(at_risk > 0)
    if len(seen):
        hazards[seen[-1] + 1 :] = hazards[seen[-1]]
    return hazards[:months]


def holdout_mask(customer_ids: pd.Series) -> np.ndarray:
    hashed = pd.util.hash_pandas_object(
        "hazard-holdout:" + customer_ids.astype(str), index=False
    ).to_numpy()
    return hashed % HOLDOUT_BUCKETS == 0


@dataclass
class HazardFit:
    model: HazardModel
    rows: int
    sampled_rate: float
    best_iteration: int
    seconds: float


def fit_hazard(
    frame: pd.DataFrame,
    feature_columns: list[str],
    customers: pd.DataFrame,
    censor_at: pd.Timestamp,
    settings,
    reasons: list[str] | tuple[str, ...],
    seed: int,
    rounds: int | None = None,
    params: dict | None = None,
    holdout_column: str = "customer_id",
) -> HazardFit:
    """Fit the hazard model on `frame`'s (customer, cutoff) rows, censored at `censor_at`.

    Without `rounds`, one customer in five is held out for early stopping (its rows are not
    trained on); with `rounds`, every row is trained on for that many rounds (the refit).
    `settings` is a `HazardConfig`; `params` overrides its LightGBM params (a champion's recipe).
    `holdout_column` names the unit held out together (a person, whatever their rows).
    """
    started = time.perf_counter()
    keys = frame[frame["cutoff"] < censor_at]
    if keys.empty:
        raise TrainingError(f"no (customer, cutoff) row before {censor_at.date()} to learn from")
    pp = person_periods(keys, customers, censor_at, settings.months, reasons)
    if pp.event.sum() == 0 or pp.event.sum() == len(pp):
        raise TrainingError("the person-period rows hold a single class: cannot fit hazards")
    pp, rate = downsample(pp, settings.max_rows, seed)
    design = HazardDesign.infer(frame, feature_columns)
    matrix = design.person_period_matrix(keys, pp)
    params = {
        "objective": "binary",
        "verbose": -1,
        **(settings.params if params is None else params),
        "seed": seed,
    }
    params.setdefault("metric", "binary_logloss")
    dataset_args = {
        "feature_name": design.columns,
        "categorical_feature": design.categorical_indices,
        "free_raw_data": True,
    }
    if rounds is None:
        held = holdout_mask(keys[holdout_column].iloc[pp.row].reset_index(drop=True))
        train = lgb.Dataset(matrix[~held], pp.event[~held], weight=pp.weight[~held], **dataset_args)
        valid = lgb.Dataset(matrix[held], pp.event[held], weight=pp.weight[held], reference=train)
        with Progress("hazard boosting", total=settings.num_boost_round, unit="rounds") as bar:
            booster = lgb.train(
                params,
                train,
                num_boost_round=settings.num_boost_round,
                valid_sets=[valid],
                valid_names=["holdout"],
                callbacks=[
                    lgb.early_stopping(settings.early_stopping_rounds, verbose=False),
                    lightgbm_callback(bar),
                ],
            )
        best = booster.best_iteration or settings.num_boost_round
    else:
        with Progress("hazard refit", total=rounds, unit="rounds") as bar:
            booster = lgb.train(
                params,
                lgb.Dataset(matrix, pp.event, weight=pp.weight, **dataset_args),
                num_boost_round=rounds,
                callbacks=[lightgbm_callback(bar)],
            )
        best = rounds
    model = HazardModel(design, booster, settings.months)
    model.baseline = kaplan_meier_hazards(pp, settings.months)
    model.settings["hazard_params"] = dict(params)
    seconds = time.perf_counter() - started
    log.info(
        "hazard model: %d person-months (other months kept at rate %.3f), %d exits, %d rounds, "
        "censored at %s, %.1f s",
        len(pp),
        rate,
        int(pp.event.sum()),
        best,
        censor_at.date(),
        seconds,
    )
    return HazardFit(model, len(pp), rate, best, seconds)
