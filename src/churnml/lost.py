"""The lost-customer table: every subscription that ended up to a date, once, with why it left,
where it went, what it was worth, whether the early warning saw it coming and what was offered.

Pure functions here (`exit_records`, `attach_scores`, `attach_campaigns`); the score history
they read (`ScoreHistory`: stored score files, else the champion scored at month starts) and
the job that writes and logs everything are in `run_lost`. Column meanings: docs/lost-customers.md.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from churnml.config import LabelConfig, LostSettings
from churnml.io import DatasetError, connect, read_table, scan_sql, table_columns, table_path

log = logging.getLogger(__name__)

EXIT_TYPES = ("voluntary", "port-out", "silence", "non-payment", "other")
_REASON_TYPE = {
    "voluntary": "voluntary",
    "port_out": "port-out",
    "non_payment": "non-payment",
    "other": "other",
}
DAYS_PER_MONTH = 365.25 / 12
TOP_DECILE = "R01"
CAMPAIGN_COLUMNS = (
    "campaigns_before_exit",
    "contacts_before_exit",
    "last_offer",
    "last_offer_at",
    "offer_accepted",
)
SCORE_FIELDS = ("churn_probability", "risk_band", "value_tier", "monthly_revenue")


def _last_activity(dataset_dir: Path, before: pd.Timestamp) -> pd.DataFrame:
    """Per customer, the last outgoing call or payment strictly before `before` (the activity
    the inactivity label counts)."""
    parts = []
    calls, payments = table_path(dataset_dir, "calls"), table_path(dataset_dir, "payments")
    stamp = f"TIMESTAMP '{before:%Y-%m-%d %H:%M:%S}'"
    if calls is not None:
        parts.append(
            f"SELECT customer_id, CAST(started_at AS TIMESTAMP) AS t FROM {scan_sql(calls)} "
            f"WHERE direction = 'out' AND started_at < {stamp}"
        )
    if payments is not None:
        parts.append(
            f"SELECT customer_id, CAST(paid_at AS TIMESTAMP) AS t FROM {scan_sql(payments)} "
            f"WHERE paid_at < {stamp}"
        )
    if not parts:
        return pd.DataFrame({"customer_id": pd.Series(dtype=str), "last_activity": []})
    with connect() as con:
        return con.execute(
            f"SELECT customer_id, max(t) AS last_activity FROM ({' UNION ALL '.join(parts)}) "
            "GROUP BY customer_id"
        ).df()


def _activity_start(dataset_dir: Path) -> pd.Timestamp | None:
    """From when the activity silence is judged on is recorded: the later start of the calls
    and payments tables (a line that only pays would look silent before payments begin)."""
    from churnml.sampling import event_table_starts

    starts = event_table_starts(dataset_dir)
    kept = [starts[t] for t in ("calls", "payments") if t in starts]
    return max(kept) if kept else None


def exit_records(
    dataset_dir: Path, date: pd.Timestamp, settings: LostSettings, silence: LabelConfig
) -> pd.DataFrame:
    """One row per subscription that ended on or before `date`.

    Terminated subscriptions take their exit type from the termination reason; a voluntary
    exit with a port-out request (not cancelled) in the `port_out_window_days` before it is a
    port-out. A subscription still open at `date` whose line has been silent (no outgoing
    activity and no payment, the inactivity label's rule) for `silence.horizon_days` has
    ended by silence on the day of its last activity.
    """
    date = pd.Timestamp(date)
    columns = ["customer_id", "activated_at", "terminated_at", "termination_reason"]
    present = table_columns(table_path(dataset_dir, "customers"))
    optional = ("initial_plan_id", "payment_type", "region", "previous_customer_id")
    extra = [c for c in optional if c in present]
    customers = read_table(dataset_dir, "customers", [*columns, *extra])
    customers["customer_id"] = customers["customer_id"].astype(str)
    customers["activated_at"] = pd.to_datetime(customers["activated_at"])
    customers["terminated_at"] = pd.to_datetime(customers["terminated_at"])
    customers = customers[customers["activated_at"] <= date]

    terminated = customers[customers["terminated_at"].notna()]
    terminated = terminated[terminated["terminated_at"] <= date].copy()
    terminated["exit_date"] = terminated["terminated_at"]
    terminated["exit_type"] = terminated["termination_reason"].map(_REASON_TYPE).fillna("other")

    still_open = customers[customers["terminated_at"].isna() | (customers["terminated_at"] > date)]
    silent_days = pd.Timedelta(days=silence.horizon_days)
    start = _activity_start(dataset_dir)
    if start is None or start > date - silent_days:
        log.info(
            "silence not judged at %s: the calls and payments do not cover the %d days before it",
            date.date(),
            silence.horizon_days,
        )
        quiet = still_open.iloc[:0].assign(last_activity=pd.NaT)
        since = pd.Series(dtype="datetime64[ns]")
        silent = pd.Series(dtype=bool)
    else:
        last = _last_activity(dataset_dir, date)
        last["customer_id"] = last["customer_id"].astype(str)
        still_open = still_open.merge(last, on="customer_id", how="left")
        known_from = still_open["activated_at"].where(still_open["activated_at"] > start, start)
        since = pd.to_datetime(still_open["last_activity"]).fillna(known_from)
        silent = (still_open["activated_at"] <= date - silent_days) & (since < date - silent_days)
        quiet = still_open[silent].copy()
    quiet["exit_date"] = since[silent].dt.normalize()
    quiet["exit_type"] = "silence"
    quiet["termination_reason"] = None
    log.info(
        "%d subscriptions ended by %s: %d terminated, %d silent for %d days",
        len(terminated) + len(quiet),
        date.date(),
        len(terminated),
        len(quiet),
        silence.horizon_days,
    )
    exits = pd.concat(
        [terminated.drop(columns=["terminated_at"]), quiet.drop(columns=["terminated_at"])],
        ignore_index=True,
    ).drop(columns=["last_activity"], errors="ignore")
    exits = _attach_port_outs(dataset_dir, exits, settings.port_out_window_days)
    exits = _attach_plan(dataset_dir, exits)
    exits["tenure_months"] = (exits["exit_date"] - exits["activated_at"]).dt.days / DAYS_PER_MONTH
    exits["exit_month"] = exits["exit_date"].dt.to_period("M").dt.to_timestamp()
    exits = _attach_returns(customers, exits)
    return exits.sort_values(["exit_date", "customer_id"], kind="stable").reset_index(drop=True)


def _attach_port_outs(dataset_dir: Path, exits: pd.DataFrame, window_days: int) -> pd.DataFrame:
    """The latest port-out request before each exit that no cancellation followed."""
    out = exits.assign(destination_operator=None, port_out_requested_at=pd.NaT)
    transfers = table_path(dataset_dir, "transfers")
    if transfers is None or exits.empty:
        if transfers is None:
            log.info("no transfers table: no port-out records, destinations unknown")
        return out
    with connect() as con:
        con.register("exits", exits[["customer_id", "exit_date"]])
        requests = con.execute(
            f"""
            WITH t AS (
                SELECT customer_id, CAST(occurred_at AS TIMESTAMP) AS at, kind, operator
                FROM {scan_sql(transfers)}
                WHERE kind IN ('port_out_request', 'port_out_cancel')
            ),
            req AS (
                SELECT e.customer_id, t.at, t.operator, e.exit_date
                FROM exits e JOIN t ON t.customer_id = e.customer_id
                WHERE t.kind = 'port_out_request' AND t.at < e.exit_date + INTERVAL 1 DAY
            )
            SELECT r.customer_id, arg_max(r.operator, r.at) AS operator, max(r.at) AS at
            FROM req r
            WHERE NOT EXISTS (
                SELECT 1 FROM t c
                WHERE c.customer_id = r.customer_id AND c.kind = 'port_out_cancel'
                  AND c.at > r.at AND c.at < r.exit_date + INTERVAL 1 DAY
            )
            GROUP BY r.customer_id
            """
        ).df()
    requests["customer_id"] = requests["customer_id"].astype(str)
    found = out[["customer_id"]].merge(requests, on="customer_id", how="left")
    at = pd.to_datetime(found["at"])
    recent = at >= out["exit_date"] - pd.Timedelta(days=window_days)
    reason = out["termination_reason"]
    upgraded = (reason == "voluntary") & recent
    out.loc[upgraded.to_numpy(), "exit_type"] = "port-out"
    is_port = (out["exit_type"] == "port-out").to_numpy()
    out["destination_operator"] = found["operator"].where(is_port).to_numpy()
    out["port_out_requested_at"] = at.where(is_port).to_numpy()
    return out


def _attach_plan(dataset_dir: Path, exits: pd.DataFrame) -> pd.DataFrame:
    """The tariff plan at the exit: the last plan change before it, else the initial plan."""
    plan = exits.get("initial_plan_id", pd.Series(None, index=exits.index)).copy()
    transfers = table_path(dataset_dir, "transfers")
    if transfers is not None and not exits.empty:
        with connect() as con:
            con.register("exits", exits[["customer_id", "exit_date"]])
            changes = con.execute(
                f"""
                SELECT e.customer_id, arg_max(t.to_plan_id, t.occurred_at) AS plan
                FROM exits e JOIN {scan_sql(transfers)} t ON t.customer_id = e.customer_id
                WHERE t.kind = 'plan_change' AND t.to_plan_id IS NOT NULL
                  AND t.occurred_at < e.exit_date + INTERVAL 1 DAY
                GROUP BY e.customer_id
                """
            ).df()
        latest = exits[["customer_id"]].merge(
            changes.astype({"customer_id": str}), on="customer_id", how="left"
        )["plan"]
        plan = latest.where(latest.notna(), plan.to_numpy()).to_numpy()
    out = exits.drop(columns=["initial_plan_id"], errors="ignore")
    out["plan"] = plan
    return out


def _attach_returns(customers: pd.DataFrame, exits: pd.DataFrame) -> pd.DataFrame:
    """The new subscription of a customer who came back (`previous_customer_id`, contract v2)."""
    out = exits.assign(returned_customer_id=None, returned_at=pd.NaT)
    if "previous_customer_id" not in customers:
        return out
    back = customers[customers["previous_customer_id"].notna()]
    back = back.sort_values("activated_at").drop_duplicates("previous_customer_id")
    link = pd.DataFrame(
        {
            "customer_id": back["previous_customer_id"].astype(str).to_numpy(),
            "returned_customer_id": back["customer_id"].to_numpy(),
            "returned_at": pd.to_datetime(back["activated_at"]).to_numpy(),
        }
    )
    return exits.merge(link, on="customer_id", how="left")


# -- the score history -----------------------------------------------------------------------
@dataclass
class ScoreSnapshot:
    """The scores of one date: per customer the fields the lost table uses, the contact list."""

    date: pd.Timestamp
    scores: pd.DataFrame  # indexed by customer_id
    contacts: frozenset[str]
    source: str  # "stored" or "champion"


@dataclass
class ScoreHistory:
    """Scores by date; stored files first, the champion's where none were kept."""

    snapshots: dict[pd.Timestamp, ScoreSnapshot] = field(default_factory=dict)

    def dates(self) -> list[pd.Timestamp]:
        return sorted(self.snapshots)

    def add(self, snapshot: ScoreSnapshot) -> None:
        self.snapshots[pd.Timestamp(snapshot.date)] = snapshot


def stored_score_dates(scores_parent: Path) -> dict[pd.Timestamp, Path]:
    """The scoring dates with a published scores.parquet under a dataset's scores folder."""
    found: dict[pd.Timestamp, Path] = {}
    if not scores_parent.is_dir():
        return found
    for folder in scores_parent.glob("scoring_date=*"):
        if (folder / "scores.parquet").is_file():
            try:
                day = pd.Timestamp(folder.name.split("=", 1)[1])
            except ValueError:
                log.warning("skipping %s: not a date", folder)
                continue
            found[day] = folder
    return found


STORED_REQUIRED = ("customer_id", "risk_band")


def read_stored_snapshot(day: pd.Timestamp, folder: Path) -> ScoreSnapshot:
    """A published scores folder as a snapshot (the contact list from contact_list.csv).

    A file that cannot be read, or lacks the columns the table needs, is bad input: the run
    stops naming the file rather than judging the warning on part of the history.
    """
    path = folder / "scores.parquet"
    try:
        scores = pd.read_parquet(path)
        contacts: frozenset[str] = frozenset()
        if (folder / "contact_list.csv").is_file():
            listed = pd.read_csv(folder / "contact_list.csv", usecols=["customer_id"], dtype=str)
            contacts = frozenset(listed["customer_id"])
    except (OSError, ValueError, pa.ArrowException) as error:
        raise DatasetError(f"{folder}: stored scores cannot be read ({error})") from error
    missing = [c for c in STORED_REQUIRED if c not in scores]
    if missing:
        raise DatasetError(f"{path}: stored scores lack the column(s) {', '.join(missing)}")
    scores["customer_id"] = scores["customer_id"].astype(str)
    return ScoreSnapshot(day, scores.set_index("customer_id"), contacts, "stored")


def reference_date(
    available: list[pd.Timestamp], target: pd.Timestamp, staleness_days: int, strict: bool
) -> pd.Timestamp | None:
    """The latest available date on or before `target` (before it when `strict`) and at most
    `staleness_days` older; None when there is none."""
    if not available:
        return None
    values = np.array(available, dtype="datetime64[ns]")
    side = "left" if strict else "right"
    position = np.searchsorted(values, np.datetime64(target, "ns"), side=side) - 1
    if position < 0:
        return None
    day = pd.Timestamp(values[position])
    return day if target - day <= pd.Timedelta(days=staleness_days) else None


def month_start_on_or_before(target: pd.Timestamp, strict: bool) -> pd.Timestamp:
    """The month start on or before `target` (strictly before it when `strict`)."""
    start = target.to_period("M").to_timestamp()
    if strict and start >= target:
        start = (target - pd.Timedelta(days=1)).to_period("M").to_timestamp()
    return start


def lookbacks(settings: LostSettings) -> list[int]:
    """0 (the cutoff just before the exit: reasons, value) and the early-warning lookbacks."""
    return [0, *sorted({int(d) for d in settings.lookback_days})]


def needed_dates(
    exits: pd.DataFrame, stored: list[pd.Timestamp], settings: LostSettings
) -> set[pd.Timestamp]:
    """Month starts the champion must score: lookbacks no stored score date covers."""
    needed: set[pd.Timestamp] = set()
    for days in lookbacks(settings):
        for exit_date in exits["exit_date"].drop_duplicates():
            target = exit_date - pd.Timedelta(days=days)
            strict = days == 0
            if reference_date(stored, target, settings.score_staleness_days, strict) is None:
                needed.add(month_start_on_or_before(target, strict))
    return needed


def attach_scores(
    exits: pd.DataFrame, history: ScoreHistory, settings: LostSettings
) -> pd.DataFrame:
    """The scores before each exit: value, reasons and cause at the last date before it, the
    risk band at each lookback, and whether a contact list named the customer before it.

    For each lookback the date is the latest scored date on or before exit - days (before the
    exit for the reasons) and at most `score_staleness_days` older; a customer that date did
    not score (too new, say) has a date and no band: not flagged.
    """
    out = exits.copy()
    dates = history.dates()
    for days in lookbacks(settings):
        strict = days == 0
        ref = [
            reference_date(
                dates, e - pd.Timedelta(days=days), settings.score_staleness_days, strict
            )
            for e in out["exit_date"]
        ]
        suffix = "before_exit" if days == 0 else f"{days}d_before"
        out[f"score_date_{suffix}"] = pd.to_datetime(pd.Series(ref, index=out.index, dtype=object))
        fields = [*SCORE_FIELDS]
        if days == 0:
            fields += ["main_cause", "reason_1", "reason_2", "reason_3", "lifetime_value"]
        values = {f: np.full(len(out), None, dtype=object) for f in fields}
        sources = np.full(len(out), None, dtype=object)
        for day, rows in pd.Series(range(len(out))).groupby(pd.Series(ref, dtype=object)):
            snapshot = history.snapshots[pd.Timestamp(day)]
            ids = out["customer_id"].iloc[rows.to_numpy()]
            for f in fields:
                if f in snapshot.scores:
                    values[f][rows.to_numpy()] = snapshot.scores[f].reindex(ids).to_numpy()
            # Where this customer's scores came from: nothing when that date did not score them.
            sources[rows.to_numpy()] = np.where(
                ids.isin(snapshot.scores.index).to_numpy(), snapshot.source, None
            )
        if days == 0:
            for f in fields:
                out[f] = values[f]
            out["score_source"] = sources
        else:
            out[f"risk_band_{suffix}"] = values["risk_band"]
            out[f"churn_probability_{suffix}"] = pd.to_numeric(
                pd.Series(values["churn_probability"], index=out.index), errors="coerce"
            )
    for column in ("churn_probability", "monthly_revenue", "lifetime_value"):
        out[column] = pd.to_numeric(out[column], errors="coerce")
    out = out.rename(
        columns={
            "churn_probability": "churn_probability_before_exit",
            "risk_band": "risk_band_before_exit",
            "value_tier": "last_value_tier",
        }
    )
    has_ltv = out["lifetime_value"].notna()
    out["lifetime_value_method"] = np.where(
        has_ltv, "scores", np.where(out["monthly_revenue"].notna(), "revenue x months", None)
    )
    out["lifetime_value_lost"] = out["lifetime_value"].where(
        has_ltv, out["monthly_revenue"] * settings.lifetime_months
    )
    out = out.drop(columns=["lifetime_value"])
    out["on_contact_list"] = _on_contact_list(out, history, settings.contact_days)
    return out


def _on_contact_list(exits: pd.DataFrame, history: ScoreHistory, days: int) -> np.ndarray:
    """Whether a contact list dated in the `days` before the exit named the customer."""
    covered = np.zeros(len(exits), dtype=bool)
    ids = exits["customer_id"].to_numpy()
    for day, snapshot in history.snapshots.items():
        if not snapshot.contacts:
            continue
        in_window = (exits["exit_date"] > day) & (
            exits["exit_date"] - day <= pd.Timedelta(days=days)
        )
        listed = np.fromiter((i in snapshot.contacts for i in ids), bool, len(ids))
        covered |= in_window.to_numpy() & listed
    return covered


def attach_campaigns(dataset_dir: Path, exits: pd.DataFrame) -> pd.DataFrame:
    """Campaigns and offers before each exit, and their outcome (contract v2 `campaigns`);
    without the table the columns stay empty and one log line says why."""
    out = exits.copy()
    path = table_path(dataset_dir, "campaigns")
    if path is None:
        log.info(
            "no campaigns table in %s: campaign columns of the lost table left empty", dataset_dir
        )
        for column in CAMPAIGN_COLUMNS:
            out[column] = None
        return out
    with connect() as con:
        con.register("exits", exits[["customer_id", "exit_date"]])
        found = con.execute(
            f"""
            WITH c AS (
                SELECT customer_id, CAST(assigned_at AS TIMESTAMP) AS assigned_at,
                       CAST(contacted_at AS TIMESTAMP) AS contacted_at, offer,
                       CAST(accepted AS BOOLEAN) AS accepted
                FROM {scan_sql(path)}
            )
            SELECT e.customer_id,
                   count(*) AS campaigns_before_exit,
                   count(*) FILTER (WHERE c.contacted_at < e.exit_date) AS contacts_before_exit,
                   arg_max(c.offer, c.contacted_at)
                       FILTER (WHERE c.contacted_at < e.exit_date) AS last_offer,
                   max(c.contacted_at) FILTER (WHERE c.contacted_at < e.exit_date)
                       AS last_offer_at,
                   bool_or(c.accepted) FILTER (WHERE c.contacted_at < e.exit_date)
                       AS offer_accepted
            FROM exits e JOIN c ON c.customer_id = e.customer_id
            WHERE c.assigned_at < e.exit_date
            GROUP BY e.customer_id
            """
        ).df()
    found["customer_id"] = found["customer_id"].astype(str)
    out = out.merge(found, on="customer_id", how="left")
    out["campaigns_before_exit"] = out["campaigns_before_exit"].fillna(0).astype("int64")
    out["contacts_before_exit"] = out["contacts_before_exit"].fillna(0).astype("int64")
    return out


# The lost table's columns, in order (docs/lost-customers.md explains each).
LOST_COLUMNS = (
    "customer_id",
    "exit_date",
    "exit_month",
    "exit_type",
    "termination_reason",
    "destination_operator",
    "port_out_requested_at",
    "activated_at",
    "tenure_months",
    "payment_type",
    "region",
    "plan",
    "last_value_tier",
    "monthly_revenue",
    "lifetime_value_lost",
    "lifetime_value_method",
    "main_cause",
    "reason_1",
    "reason_2",
    "reason_3",
    "churn_probability_before_exit",
    "risk_band_before_exit",
    "score_date_before_exit",
    "score_source",
    "on_contact_list",
    *CAMPAIGN_COLUMNS,
    "returned_customer_id",
    "returned_at",
)


def lost_columns(table: pd.DataFrame) -> list[str]:
    """The lost table's columns in order: LOST_COLUMNS, then the early-warning lookbacks."""
    days = sorted({int(c.split("_")[-2][:-1]) for c in table.columns if c.endswith("d_before")})
    early = [
        f"{name}_{d}d_before"
        for d in days
        for name in ("score_date", "risk_band", "churn_probability")
        if f"{name}_{d}d_before" in table
    ]
    return [c for c in LOST_COLUMNS if c in table] + early
