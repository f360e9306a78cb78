"""`churnml lost`: the lost-customer table, the early-warning report and the win-back list.

Reads the raw data and the score history (stored score files; the champion scored at month
starts where none were kept), computes everything before the first byte is published, then
publishes the date's folder at once (`io.publish_folder`) and logs it to MLflow.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import pandas as pd

from churnml import early_warning, scoring, tracking
from churnml.config import LostConfig
from churnml.errors import NoEligibleCustomersError
from churnml.features import FeatureParams, build_features
from churnml.io import (
    DatasetError,
    dataset_as_of,
    dataset_fingerprint,
    output_folder,
    output_lock,
    parse_timestamp,
    publish_folder,
    read_table,
    require_dataset,
    write_atomic,
)
from churnml.jobs import _check_events, _job_run, longest_window_days
from churnml.lost import (
    ScoreHistory,
    ScoreSnapshot,
    attach_campaigns,
    attach_scores,
    exit_records,
    lookbacks,
    lost_columns,
    needed_dates,
    read_stored_snapshot,
    stored_score_dates,
)
from churnml.progress import progress
from churnml.sampling import eligible_customers, event_table_starts
from churnml.tracking import NoChampionError
from churnml.winback import WinbackUnavailable, run_winback

log = logging.getLogger(__name__)

REPORT_FILE = "early_warning.html"
REPORT_WINBACK_COLUMNS = (
    "rank",
    "customer_id",
    "exit_type",
    "destination_operator",
    "months_since_exit",
    "monthly_revenue",
    "main_cause",
    "p_return",
    "expected_value",
    "offer",
)


@dataclass(frozen=True)
class LostResult:
    folder: Path
    lost_path: Path
    report_path: Path
    winback_path: Path | None
    rows: int
    run_id: str
    metrics: dict[str, float]
    notes: list[str]


def lost_folder(cfg: LostConfig, date: pd.Timestamp) -> Path:
    """`<scoring.output_dir>/[dataset=<name>/]lost_date=<date>`, beside the scores."""
    return output_folder(
        cfg.scoring.output_dir,
        cfg.data.name,
        cfg.scoring.production_dataset,
        f"lost_date={date.date().isoformat()}",
    )


def scores_parent(cfg: LostConfig) -> Path:
    """The folder holding this dataset's `scoring_date=<date>` folders."""
    return output_folder(
        cfg.scoring.output_dir, cfg.data.name, cfg.scoring.production_dataset, "x"
    ).parent


def _champion_snapshots(
    cfg: LostConfig, dataset_dir: Path, dates: list[pd.Timestamp], notes: list[str]
) -> list[ScoreSnapshot]:
    """The champion's scores at `dates` (month starts no stored score covers)."""
    if not dates:
        return []
    if not cfg.lost.recompute_with_champion:
        notes.append(
            f"{len(dates)} month start(s) have no stored scores and lost.recompute_with_champion "
            "is false: those lookbacks are not judged"
        )
        return []
    try:
        model, version, model_run_id = tracking.load_registered_model(
            cfg.tracking, alias=cfg.scoring.model_alias, version=cfg.scoring.model_version
        )
    except NoChampionError as error:
        log.warning(
            "no stored scores for %d dates and no champion to score them: %s", len(dates), error
        )
        notes.append(f"No stored scores for {len(dates)} month start(s) and no champion: {error}")
        return []
    params = FeatureParams(**model.settings["features"])
    starts = event_table_starts(dataset_dir)
    first = (
        max(starts.values()) + pd.Timedelta(days=longest_window_days(params)) if starts else None
    )
    usable = [d for d in sorted(dates) if first is None or d >= first]
    if len(usable) < len(dates):
        notes.append(
            f"{len(dates) - len(usable)} month start(s) before {first.date()} have too little "
            "event history to score: lookbacks that need them are not judged"
        )
    customers = read_table(
        dataset_dir, "customers", ["customer_id", "activated_at", "terminated_at"]
    )
    customers["customer_id"] = customers["customer_id"].astype(str)
    min_tenure = model.settings.get("min_tenure_days", 30)
    spines = []
    for day in usable:
        mask = eligible_customers(customers, day, min_tenure)
        spines.append(
            pd.DataFrame({"customer_id": customers.loc[mask, "customer_id"], "cutoff": day})
        )
    spine = pd.concat(spines, ignore_index=True) if spines else pd.DataFrame()
    if spine.empty:
        return []
    spine["cutoff"] = spine["cutoff"].astype("datetime64[us]")
    started = time.perf_counter()
    features = build_features(dataset_dir, spine, params)
    log.info("features for %d month starts in %.1f s", len(usable), time.perf_counter() - started)
    # Path reasons for everyone: these scores only say why, they call nobody.
    settings = replace(cfg.scoring, exact_reasons_rows=0)
    snapshots = []
    groups = dict(list(features.groupby("cutoff", sort=True)))
    for day in progress(sorted(groups), "scoring the champion at month starts", unit="dates"):
        part = groups[day].reset_index(drop=True)
        scores = scoring.score_frame(
            model,
            part,
            pd.Timestamp(day),
            cfg.tracking.registered_model_name,
            version,
            model_run_id,
            settings,
            cfg.evaluation,
        )
        contacts = scoring.contact_list(scores, cfg.scoring.contact_list_size)
        snapshots.append(
            ScoreSnapshot(
                pd.Timestamp(day),
                scores.set_index("customer_id"),
                frozenset(contacts["customer_id"].astype(str)),
                "champion",
            )
        )
    notes.append(
        f"{len(snapshots)} month start(s) scored now by {cfg.tracking.registered_model_name} "
        f"v{version}: it learnt from labels of these months, so early-warning figures from "
        "them are optimistic; stored nightly scores are the honest record"
    )
    return snapshots


def build_history(
    cfg: LostConfig, dataset_dir: Path, exits: pd.DataFrame, notes: list[str]
) -> ScoreHistory:
    """Stored score files where they exist, the champion at month starts for the rest."""
    history = ScoreHistory()
    stored = stored_score_dates(scores_parent(cfg))
    if exits.empty:
        return history
    earliest = exits["exit_date"].min() - pd.Timedelta(
        days=max(lookbacks(cfg.lost)) + cfg.lost.score_staleness_days + cfg.lost.contact_days
    )
    relevant = {d: f for d, f in stored.items() if earliest <= d <= exits["exit_date"].max()}
    for day, folder in progress(sorted(relevant.items()), "reading stored scores", unit="dates"):
        history.add(read_stored_snapshot(day, folder))
    if relevant:
        notes.append(f"{len(relevant)} stored score date(s) read from {scores_parent(cfg)}")
    missing = sorted(needed_dates(exits, history.dates(), cfg.lost))
    for snapshot in _champion_snapshots(cfg, dataset_dir, missing, notes):
        history.add(snapshot)
    return history


def run_lost(cfg: LostConfig) -> LostResult:
    """`churnml lost`: build, judge, rank, publish and log (one MLflow run)."""
    if cfg.data.kind != "events":
        raise DatasetError(
            "churnml lost needs event data (customers with their terminations), not a snapshot"
        )
    dataset_dir = require_dataset(cfg.data.path)
    if cfg.validation.enabled:
        _check_events(cfg, dataset_dir, Path(cfg.run_dir))
    as_of = dataset_as_of(dataset_dir)
    date = parse_timestamp(cfg.scoring.date, "scoring.date") if cfg.scoring.date else as_of
    if date > as_of:
        raise DatasetError(f"scoring.date {date} is after the data's as_of {as_of}")
    folder = lost_folder(cfg, date)
    with _job_run(cfg, "lost") as run_id, output_lock(folder):
        tracking.set_tags({"mlflow.runName": f"lost-{cfg.data.name}-{date.date()}"})
        return _lost(cfg, dataset_dir, date, folder, run_id)


def _lost(
    cfg: LostConfig, dataset_dir: Path, date: pd.Timestamp, folder: Path, run_id: str
) -> LostResult:
    notes: list[str] = []
    exits = exit_records(dataset_dir, date, cfg.lost, cfg.silence)
    if exits.empty:
        raise NoEligibleCustomersError(f"no subscription of {dataset_dir} ended by {date.date()}")
    history = build_history(cfg, dataset_dir, exits, notes)
    table = attach_campaigns(dataset_dir, attach_scores(exits, history, cfg.lost))
    if table["campaigns_before_exit"].isna().all():
        notes.append("No campaigns table: campaigns and offers before the exits are not known")
    table = table[lost_columns(table)]
    if not table["customer_id"].is_unique:  # a bug in a join, never bad data
        raise RuntimeError("a subscription appears twice in the lost table")

    days = [d for d in lookbacks(cfg.lost) if d > 0]
    by_month = early_warning.hit_rates(table, days)
    by_exit_type = early_warning.hit_rates_by(table, "exit_type", days)
    revenue = {c: early_warning.revenue_lost(table, c) for c in early_warning.DIMENSIONS}
    metrics = early_warning.summarize(table, days)

    winback_csv, winback_card, winback_top, winback_metrics = _winback(
        cfg, dataset_dir, table, date, notes
    )
    metrics.update(winback_metrics)

    currency = cfg.scoring.currency
    card = {
        "Dataset": cfg.data.name,
        "Date": str(date.date()),
        "Lost customers": f"{len(table):,}",
        f"Monthly revenue lost ({currency})": f"{metrics['monthly_revenue_lost']:,.0f}",
        f"Lifetime value lost ({currency})": f"{metrics['lifetime_value_lost']:,.0f}",
        "Revenue a contact list covered": _share(metrics["share_revenue_covered"]),
        **{f"Flagged {d} days before": _share(metrics[f"share_flagged_{d}d"]) for d in days},
    }
    page = early_warning.render_report(
        early_warning.EarlyWarningReport(
            title=f"Lost customers and early warning: {cfg.data.name}, {date.date()}",
            card=card,
            lookback_days=days,
            by_month=by_month,
            by_exit_type=by_exit_type,
            revenue=revenue,
            currency=currency,
            notes=notes,
            winback_card=winback_card,
            winback_top=winback_top,
        )
    )
    files = {
        "lost_customers.parquet": lambda tmp: table.to_parquet(tmp, index=False),
        "early_warning_by_month.csv": lambda tmp: by_month.to_csv(tmp, index=False),
        REPORT_FILE: lambda tmp: tmp.write_text(page, encoding="utf-8"),
    }
    if winback_csv is not None:
        files["winback_list.csv"] = lambda tmp: winback_csv.to_csv(tmp, index=False)
    publish_folder(folder, files)
    report_copy = Path(cfg.paths.reports_dir) / REPORT_FILE
    write_atomic(report_copy, lambda tmp: tmp.write_text(page, encoding="utf-8"))

    tracking.log_params(
        {
            "lost_date": date.isoformat(),
            "output": str(folder),
            "silence_days": cfg.silence.horizon_days,
            "lost": asdict(cfg.lost),
            "winback": asdict(cfg.winback),
        }
    )
    tracking.log_dataset_input(
        name=cfg.data.name,
        source=str(dataset_dir),
        digest=dataset_fingerprint(dataset_dir),
        context="lost",
        tags={"lost_date": str(date.date()), "rows": str(len(table))},
    )
    tracking.log_metrics(metrics)
    tracking.log_frame(table, "lost/lost_customers.parquet")
    tracking.log_frame(by_month, "lost/early_warning_by_month.csv")
    for column, frame in revenue.items():
        tracking.log_frame(frame, f"lost/revenue_lost_by_{column}.csv")
    if winback_csv is not None:
        tracking.log_frame(winback_csv, "lost/winback_list.csv")
    tracking.log_text(page, f"lost/{REPORT_FILE}")
    tracking.set_tags({"exit_code": 0})
    return LostResult(
        folder,
        folder / "lost_customers.parquet",
        folder / REPORT_FILE,
        folder / "winback_list.csv" if winback_csv is not None else None,
        len(table),
        run_id,
        metrics,
        notes,
    )


def _winback(
    cfg: LostConfig, dataset_dir: Path, table: pd.DataFrame, date: pd.Timestamp, notes: list[str]
) -> tuple[pd.DataFrame | None, dict[str, str], pd.DataFrame | None, dict[str, float]]:
    """The win-back list, the report's card and top rows, and the model's out-of-time metrics;
    or nothing, with a note saying why."""
    if not cfg.winback.enabled:
        notes.append("Win-back list switched off (winback.enabled=false)")
        return None, {}, None, {}
    if "previous_customer_id" not in _customer_columns(dataset_dir):
        log.info("customers has no previous_customer_id (contract v2): no win-back model")
        notes.append(
            "The data record no returns (customers.previous_customer_id): no win-back list"
        )
        return None, {}, None, {}
    try:
        result = run_winback(table, date, cfg.winback, cfg.silence.horizon_days, cfg.seed)
    except WinbackUnavailable as error:
        log.info("win-back list skipped: %s", error)
        notes.append(f"Win-back list skipped: {error}")
        return None, {}, None, {}
    ranked = result.ranked.round({"p_return": 3, "expected_value": 2, "months_since_exit": 1})
    if ranked.empty and result.candidates:
        notes.append(
            f"None of the {result.candidates:,} lost customers passed the win-back list's "
            "filters (exit type, winback.min_monthly_revenue; a customer with no scores "
            "before the exit has no known revenue)"
        )
    ev = result.evaluation
    card = {
        "Out-of-time ROC AUC": f"{ev.roc_auc:.3f}",
        "Top-decile lift": f"{ev.top_decile_lift:.2f}",
        "Tested on": f"{len(ev.test_cutoffs)} month starts from {ev.test_cutoffs[0].date()} "
        f"({ev.test_rows:,} rows, {ev.test_returns:,} returns)",
        "Trained on": f"{len(ev.train_cutoffs)} month starts to {ev.train_cutoffs[-1].date()} "
        f"({ev.train_rows:,} rows, {ev.train_returns:,} returns)",
        "Return window": f"{cfg.winback.horizon_months} months",
        "On the list": f"{len(ranked):,} of {result.candidates:,} lost customers",
    }
    return ranked, card, ranked.head(20)[list(REPORT_WINBACK_COLUMNS)], ev.metrics()


def _customer_columns(dataset_dir: Path) -> list[str]:
    from churnml.io import table_columns, table_path

    return table_columns(table_path(dataset_dir, "customers"))


def _share(value: float) -> str:
    return "n/a" if pd.isna(value) else f"{value:.0%}"
