"""Point-in-time sample: (customer, cutoff) rows with a churn label and an out-of-time split.

Nothing here looks at a row on or after a cutoff to decide eligibility, and labels look only
at what happens after it. See `docs/sampling.md` for the rules in plain words.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from churnml.config import LabelConfig, SamplingConfig
from churnml.contract import EVENT_TIME_COLUMNS, FEATURE_TABLES, TERMINATION_REASONS
from churnml.io import (
    connect,
    dataset_as_of,
    read_table,
    scan_sql,
    table_path,
)

log = logging.getLogger(__name__)

INVOLUNTARY_REASONS = ("non_payment",)
SPLITS = ("train", "validation", "test")


class SamplingError(ValueError):
    """The data cannot give the sample the settings ask for."""


@dataclass(frozen=True)
class Sample:
    """Labelled (customer, cutoff) rows and their per-cutoff summary.

    `rows` columns: customer_id, cutoff, split, label, exit_reason (the termination reason in the
    label window, or null), involuntary (bool), weight (1 unless negatives were down-sampled).
    """

    rows: pd.DataFrame
    summary: pd.DataFrame
    as_of: pd.Timestamp
    events_start: pd.Timestamp
    # Rolling-origin evaluation (sampling.scheme=rolling): the folds and the refit's cutoffs.
    folds: tuple[Fold, ...] = ()
    refit_cutoffs: tuple[pd.Timestamp, ...] = ()

    def split(self, name: str) -> pd.DataFrame:
        return self.rows[self.rows["split"] == name].reset_index(drop=True)


def event_table_starts(dataset_dir: Path) -> dict[str, pd.Timestamp]:
    """The earliest event time of each event table the features read (customers excluded)."""
    starts: dict[str, pd.Timestamp] = {}
    with connect() as con:
        for table in FEATURE_TABLES:
            columns = EVENT_TIME_COLUMNS[table]
            path = table_path(dataset_dir, table)
            if table == "customers" or path is None:
                continue
            value = con.execute(
                f"SELECT min(CAST({columns[0]} AS TIMESTAMP)) FROM {scan_sql(path)}"
            ).fetchone()[0]
            if value is not None:
                starts[table] = pd.Timestamp(value)
    return starts


def events_start(dataset_dir: Path) -> pd.Timestamp:
    """The earliest event time in the event tables: features have no history before it."""
    starts = event_table_starts(dataset_dir)
    if starts:
        return min(starts.values())
    customers = read_table(dataset_dir, "customers", ["activated_at"])
    return pd.Timestamp(customers["activated_at"].min())


def label_window(cutoff: pd.Timestamp, label: LabelConfig) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The (start, end] interval whose events decide the label of a row at `cutoff`."""
    start = cutoff + pd.Timedelta(days=label.gap_days)
    return start, start + pd.Timedelta(days=label.horizon_days)


def labelled_cutoffs(
    sampling: SamplingConfig,
    label: LabelConfig,
    as_of: pd.Timestamp,
    first_event: pd.Timestamp,
) -> list[pd.Timestamp]:
    """The candidate cutoffs whose whole label window lies inside the data, oldest first."""
    if sampling.cutoffs:
        candidates = pd.DatetimeIndex(sorted({pd.Timestamp(c) for c in sampling.cutoffs}))
    else:
        start = (
            pd.Timestamp(sampling.start)
            if sampling.start
            else first_event + pd.Timedelta(days=sampling.min_history_days)
        )
        end = pd.Timestamp(sampling.end) if sampling.end else as_of
        candidates = pd.date_range(start.ceil("D"), end, freq=sampling.frequency)
    fits = [c for c in candidates if label_window(c, label)[1] <= as_of]
    if len(fits) < len(candidates):
        log.info(
            "%d cutoffs dropped: their label windows run past as_of %s",
            len(candidates) - len(fits),
            as_of.date(),
        )
    return sorted(fits)


def plan_cutoffs(
    sampling: SamplingConfig,
    label: LabelConfig,
    as_of: pd.Timestamp,
    first_event: pd.Timestamp,
) -> pd.DataFrame:
    """Choose the cutoffs of a single split (`sampling.scheme=single_split`) and their splits.

    The test cutoff is the latest one whose whole label window lies inside the data; the
    validation cutoffs come before it and the training cutoffs before those, each split's label
    windows ending at or before the next split's first cutoff, so that no training label is
    observed after the period it is evaluated on.
    """
    fits = labelled_cutoffs(sampling, label, as_of, first_event)
    window = pd.Timedelta(days=label.gap_days + label.horizon_days)
    remaining = sorted(fits, reverse=True)
    plan: list[tuple[pd.Timestamp, str]] = []
    for split, count in (
        ("test", sampling.test_cutoffs),
        ("validation", sampling.validation_cutoffs),
        ("train", sampling.max_train_cutoffs),
    ):
        chosen = remaining[:count]
        if len(chosen) < count and split != "train":
            raise SamplingError(
                f"not enough cutoffs for the {split} split: the data from {first_event.date()} "
                f"to {as_of.date()} leaves {len(fits)} cutoffs with a complete "
                f"{label.gap_days}+{label.horizon_days}-day label window"
            )
        plan += [(c, split) for c in chosen]
        if chosen:
            earliest = min(chosen)
            remaining = [c for c in remaining if c + window <= earliest]
    if not any(split == "train" for _, split in plan):
        raise SamplingError(
            f"no training cutoff left: the data from {first_event.date()} to {as_of.date()} is "
            f"too short for {sampling.min_history_days} days of history plus the validation and "
            f"test label windows (sampling.scheme=rolling trains on shorter histories)"
        )
    frame = pd.DataFrame(plan, columns=["cutoff", "split"]).sort_values("cutoff")
    return frame.reset_index(drop=True)


@dataclass(frozen=True)
class Fold:
    """One out-of-time evaluation: a model trained on `train_cutoffs` is judged at `test_cutoff`.

    `validation_cutoff` is the out-of-time cutoff for early stopping and the fold's calibrator;
    None when the history leaves no room for one (early stopping then holds out a fifth of the
    training customers). `embargoed` is False only for the last-resort fold of a very short
    history: its training labels overlap the test window, so its customers are split in two
    (`customer_half`) and the test never sees a customer the model was trained on.
    """

    test_cutoff: pd.Timestamp
    train_cutoffs: tuple[pd.Timestamp, ...]
    validation_cutoff: pd.Timestamp | None = None
    embargoed: bool = True

    def describe(self) -> str:
        train = f"{self.train_cutoffs[0].date()} to {self.train_cutoffs[-1].date()}"
        val = (
            f"validation {self.validation_cutoff.date()}"
            if self.validation_cutoff is not None
            else "early stopping on a customer hold-out"
        )
        embargo = "" if self.embargoed else ", label windows overlap: customers split in halves"
        return (
            f"test {self.test_cutoff.date()}: trained on {len(self.train_cutoffs)} cutoffs "
            f"({train}), {val}{embargo}"
        )


def plan_folds(
    cutoffs: list[pd.Timestamp], window: pd.Timedelta, folds: int, max_train_cutoffs: int
) -> list[Fold]:
    """Rolling-origin folds, newest test cutoff first.

    Each of the latest `folds` labelled cutoffs is a test; its model learns only from cutoffs
    whose label windows end at or before it (the embargo), so no training label is observed
    after the test cutoff. When not even one such fold exists (a history of about 6 months),
    one fold tests the latest cutoff with a model trained on the earlier ones and on the other
    half of the customers (`Fold.embargoed` False).
    """
    labelled = sorted(cutoffs)
    out: list[Fold] = []
    for test in reversed(labelled):
        if len(out) == folds:
            break
        pool = [c for c in labelled if c + window <= test]
        if not pool:
            break
        validation = pool[-1]
        train = [c for c in pool if c + window <= validation][-max_train_cutoffs:]
        if train:
            out.append(Fold(test, tuple(train), validation))
        else:
            out.append(Fold(test, tuple(pool[-max_train_cutoffs:]), None))
    if not out and len(labelled) >= 2 and folds > 0:
        out.append(Fold(labelled[-1], tuple(labelled[:-1][-max_train_cutoffs:]), None, False))
    return out


def customer_half(customer_ids: pd.Series) -> np.ndarray:
    """0 or 1 per customer from a hash of the id: a split that never depends on row order."""
    hashed = pd.util.hash_pandas_object(customer_ids.astype(str), index=False).to_numpy()
    return (hashed % 2).astype(int)


def plan_rolling(
    sampling: SamplingConfig,
    label: LabelConfig,
    as_of: pd.Timestamp,
    first_event: pd.Timestamp,
) -> tuple[pd.DataFrame, list[Fold], list[pd.Timestamp]]:
    """The cutoffs of rolling-origin evaluation, its folds and the refit's training cutoffs.

    The refit learns from the latest `max_train_cutoffs` labelled cutoffs, test cutoffs
    included: the newest labels the data hold. Each cutoff's `split` is its first role among
    test (of some fold), validation (of some fold), train.
    """
    fits = labelled_cutoffs(sampling, label, as_of, first_event)
    window = pd.Timedelta(days=label.gap_days + label.horizon_days)
    folds = plan_folds(fits, window, sampling.folds, sampling.max_train_cutoffs)
    if not folds:
        raise SamplingError(
            f"not enough cutoffs to train and test a model: the data from {first_event.date()} "
            f"to {as_of.date()} leaves {len(fits)} cutoff(s) with a complete "
            f"{label.gap_days}+{label.horizon_days}-day label window after "
            f"{sampling.min_history_days} days of history; rolling evaluation needs 2 "
            "(about 6 months of events with the default settings)"
        )
    refit = fits[-sampling.max_train_cutoffs :]
    roles: dict[pd.Timestamp, str] = {c: "train" for c in refit}
    for fold in folds:
        for c in fold.train_cutoffs:
            roles.setdefault(c, "train")
        if fold.validation_cutoff is not None and roles.get(fold.validation_cutoff) != "test":
            roles[fold.validation_cutoff] = "validation"
        roles[fold.test_cutoff] = "test"
    frame = pd.DataFrame(sorted(roles.items()), columns=["cutoff", "split"])
    return frame, folds, refit


def eligible_customers(customers: pd.DataFrame, cutoff: pd.Timestamp, min_tenure_days: int):
    """Mask of customers activated at least `min_tenure_days` before and still active at cutoff."""
    activated = pd.to_datetime(customers["activated_at"])
    terminated = pd.to_datetime(customers["terminated_at"])
    tenure_ok = activated <= cutoff - pd.Timedelta(days=min_tenure_days)
    still_there = terminated.isna() | (terminated > cutoff)
    return tenure_ok & still_there


def _termination_labels(
    rows: pd.DataFrame, customers: pd.DataFrame, label: LabelConfig
) -> pd.DataFrame:
    info = customers.set_index("customer_id")[["terminated_at", "termination_reason"]]
    joined = rows.join(info, on="customer_id")
    terminated = pd.to_datetime(joined["terminated_at"])
    start = joined["cutoff"] + pd.Timedelta(days=label.gap_days)
    end = start + pd.Timedelta(days=label.horizon_days)
    in_window = (terminated > start) & (terminated <= end)
    reason = joined["termination_reason"].astype(object).where(in_window)
    out = rows.copy()
    out["exit_reason"] = reason.astype("string")
    out["label"] = reason.isin(list(label.reasons)).astype("int8")
    out["involuntary"] = reason.isin(INVOLUNTARY_REASONS)
    out["left_in_gap"] = (terminated > joined["cutoff"]) & (terminated <= start)
    return out


def _inactivity_labels(
    rows: pd.DataFrame, dataset_dir: Path, customers: pd.DataFrame, label: LabelConfig
) -> pd.DataFrame:
    """Silence label: no outgoing activity and no payment in the window (contract: inactivity).

    Rows for customers who were not active in the same length of time before the cutoff are
    dropped: silence is only a churn signal for someone who was active.
    """
    days = pd.Timedelta(days=label.horizon_days)
    activity = []
    calls, payments = table_path(dataset_dir, "calls"), table_path(dataset_dir, "payments")
    if calls is None and payments is None:
        raise SamplingError("the inactivity label needs a calls or payments table; neither exists")
    if calls is not None:
        activity.append(
            f"SELECT customer_id, CAST(started_at AS TIMESTAMP) AS t FROM {scan_sql(calls)} "
            "WHERE direction = 'out'"
        )
    if payments is not None:
        activity.append(
            f"SELECT customer_id, CAST(paid_at AS TIMESTAMP) AS t FROM {scan_sql(payments)}"
        )
    spine = rows[["customer_id", "cutoff"]].copy()
    spine["window_start"] = spine["cutoff"] + pd.Timedelta(days=label.gap_days)
    spine["window_end"] = spine["window_start"] + days
    spine["before_start"] = spine["cutoff"] - days
    with connect() as con:
        con.register("spine", spine)
        flags = con.execute(
            f"""
            WITH activity AS ({" UNION ALL ".join(activity)})
            SELECT s.customer_id, s.cutoff,
                   bool_or(a.t > s.window_start AND a.t <= s.window_end) AS active_after,
                   bool_or(a.t >= s.before_start AND a.t < s.cutoff) AS active_before
            FROM spine s JOIN activity a
              ON a.customer_id = s.customer_id
             AND a.t >= s.before_start AND a.t <= s.window_end
            GROUP BY s.customer_id, s.cutoff
            """
        ).df()
    out = rows.merge(flags, on=["customer_id", "cutoff"], how="left")
    out["active_after"] = out["active_after"].fillna(False).astype(bool)
    out["active_before"] = out["active_before"].fillna(False).astype(bool)
    dropped = int((~out["active_before"]).sum())
    if dropped:
        log.info(
            "%d rows dropped: no activity in the %d days before their cutoff", dropped, days.days
        )
    out = out[out["active_before"]].drop(columns=["active_before"])
    terminated = _termination_labels(out[["customer_id", "cutoff", "split"]], customers, label)
    out["exit_reason"] = terminated["exit_reason"].to_numpy()
    out["involuntary"] = terminated["involuntary"].to_numpy()
    out["left_in_gap"] = terminated["left_in_gap"].to_numpy()
    silent = ~out.pop("active_after")
    out["label"] = (silent & ~out["involuntary"]).astype("int8")
    return out.reset_index(drop=True)


def downsample_negatives(rows: pd.DataFrame, rate: float, seed: int) -> pd.DataFrame:
    """Keep each training negative with probability `rate` and weight kept ones by 1 / rate.

    The weights make the weighted training set an unbiased image of the full one, so a model
    fitted with them still gives calibrated probabilities. Validation and test rows are kept.
    """
    if not 0 < rate <= 1:
        raise SamplingError(f"sampling.negative_sample_rate must be in (0, 1], got {rate}")
    rows = rows.copy()
    rows["weight"] = 1.0
    if rate == 1:
        return rows
    negatives = (rows["split"] == "train") & (rows["label"] == 0)
    draw = np.random.default_rng(seed).random(len(rows))
    keep = ~negatives | (draw < rate)
    rows.loc[negatives, "weight"] = 1.0 / rate
    return rows[keep].reset_index(drop=True)


def summarize_sample(rows: pd.DataFrame) -> pd.DataFrame:
    """Per cutoff: eligible count, churners, churn rate, exits by reason and involuntary churn.

    Counts are of the full eligible population: down-sampled rows count by their weight.
    """
    weight = rows["weight"] if "weight" in rows else pd.Series(1.0, index=rows.index)
    frame = rows.assign(
        _w=weight,
        _churn=rows["label"] * weight,
        _invol=rows["involuntary"] * weight,
    )
    grouped = frame.groupby(["cutoff", "split"], sort=True)
    summary = grouped.agg(
        eligible=("_w", "sum"), churners=("_churn", "sum"), involuntary=("_invol", "sum")
    )
    by_reason = (
        frame.dropna(subset=["exit_reason"])
        .pivot_table(index=["cutoff", "split"], columns="exit_reason", values="_w", aggfunc="sum")
        .reindex(columns=list(TERMINATION_REASONS))
        .add_prefix("exits_")
    )
    summary = summary.join(by_reason).fillna(0.0)
    summary["churn_rate"] = summary["churners"] / summary["eligible"]
    summary["involuntary_rate"] = summary["involuntary"] / summary["eligible"]
    summary = summary.round(6).reset_index()
    count_columns = ["eligible", "churners", "involuntary", *by_reason.columns]
    summary[count_columns] = summary[count_columns].round().astype("int64")
    return summary


def sample_customers(
    dataset_dir: Path,
    label: LabelConfig,
    sampling: SamplingConfig,
    seed: int,
    as_of: pd.Timestamp | None = None,
) -> Sample:
    """Build the labelled, split sample of (customer, cutoff) rows for a raw dataset."""
    started = time.perf_counter()
    as_of = as_of if as_of is not None else dataset_as_of(dataset_dir)
    first_event = events_start(dataset_dir)
    if pd.isna(first_event):
        raise SamplingError(f"{dataset_dir}: no customers and no events to sample from")
    folds: list[Fold] = []
    refit: list[pd.Timestamp] = []
    if sampling.scheme == "rolling":
        plan, folds, refit = plan_rolling(sampling, label, as_of, first_event)
        for fold in folds:
            log.info("fold %s", fold.describe())
    elif sampling.scheme == "single_split":
        plan = plan_cutoffs(sampling, label, as_of, first_event)
    else:
        raise SamplingError(
            f"unknown sampling.scheme {sampling.scheme!r}: use rolling or single_split"
        )
    customers = read_table(
        dataset_dir,
        "customers",
        ["customer_id", "activated_at", "terminated_at", "termination_reason"],
    )
    customers["customer_id"] = customers["customer_id"].astype(str)
    parts = []
    for cutoff, split in plan.itertuples(index=False):
        mask = eligible_customers(customers, cutoff, sampling.min_tenure_days)
        parts.append(
            pd.DataFrame(
                {"customer_id": customers.loc[mask, "customer_id"].to_numpy(), "cutoff": cutoff}
            ).assign(split=split)
        )
    rows = pd.concat(parts, ignore_index=True)
    rows["cutoff"] = rows["cutoff"].astype("datetime64[us]")
    if label.kind == "termination":
        rows = _termination_labels(rows, customers, label)
    elif label.kind == "inactivity":
        rows = _inactivity_labels(rows, dataset_dir, customers, label)
    else:
        raise SamplingError(f"unknown label.kind {label.kind!r}: use termination or inactivity")
    gap_leavers = int(rows["left_in_gap"].sum())
    if gap_leavers:
        log.info(
            "%d rows dropped: the customer left within the %d-day gap", gap_leavers, label.gap_days
        )
    rows = rows[~rows.pop("left_in_gap")]
    rows = downsample_negatives(rows, sampling.negative_sample_rate, seed)
    rows = rows.sort_values(["cutoff", "customer_id"], kind="stable").reset_index(drop=True)
    summary = summarize_sample(rows)
    log.info(
        "sample: %d rows over %d cutoffs (%s to %s), %.1f s",
        len(rows),
        rows["cutoff"].nunique(),
        rows["cutoff"].min().date(),
        rows["cutoff"].max().date(),
        time.perf_counter() - started,
    )
    return Sample(
        rows=rows,
        summary=summary,
        as_of=as_of,
        events_start=first_event,
        folds=tuple(folds),
        refit_cutoffs=tuple(refit),
    )
