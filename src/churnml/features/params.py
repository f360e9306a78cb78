"""Settings of the feature library, as a plain dataclass (a Hydra structured config uses it)."""

from __future__ import annotations

from dataclasses import dataclass, field

FAMILY_NAMES: tuple[str, ...] = ("calls", "transfers", "complaints", "arrears", "account")


@dataclass
class FeatureParams:
    """What to build and how.

    Windows are in days and end just before the cutoff: the 30-day window of a cutoff c is
    [c - 30 days, c). Trends always compare the last 30 days with the 60 before them.
    """

    families: list[str] = field(default_factory=lambda: list(FAMILY_NAMES))
    windows: list[int] = field(default_factory=lambda: [7, 30, 90])
    # Complaint counts by category are built for these windows only (6 categories each).
    complaint_category_windows: list[int] = field(default_factory=lambda: [30, 90])
    # Other operators that get their own share features (`peer_operator` / port-out operator
    # values). The top competitor's share is built whatever this list holds. Left empty, the
    # training job fills it with `resolve_feature_params`: the `competitor_top_k` operators
    # with the most outgoing voice minutes in the `competitor_lookback_days` before the
    # training cutoff. The filled list is recorded with the model, so scoring builds the same
    # columns whatever operators its own data hold.
    competitors: list[str] = field(default_factory=list)
    competitor_top_k: int = 5
    competitor_lookback_days: int = 180
    # Value for money: a plan covers a usage when this quantile of the 30-day outgoing minutes
    # and data of its subscribers (same payment type, same cutoff) reaches it; plans with fewer
    # subscribers than `plan_coverage_min_customers` at a cutoff are not compared.
    plan_coverage_quantile: float = 0.9
    plan_coverage_min_customers: int = 20
    # How far back the "days since the last ..." figures and open complaints look.
    history_days: int = 730
    night_start_hour: int = 22
    night_end_hour: int = 7
    low_satisfaction_max: int = 2
    # Value tier: cumulative shares of customers by 3-month revenue (A, B, C; the rest is D).
    value_tier_cuts: list[float] = field(default_factory=lambda: [0.01, 0.05, 0.20])
    # Life-cycle stage rules (see docs/features.md).
    lifecycle_acquisition_days: int = 90
    lifecycle_buildup_days: int = 365
    lifecycle_exit_days_before_commitment_end: int = 60
    lifecycle_exit_days_after_commitment_end: int = 30
    lifecycle_decline_trend: float = -0.3
    # Where the families' SQL runs: duckdb (one machine) or spark (the `spark` settings; the
    # same SQL through churnml.spark.features, the same values). Recorded with the model.
    engine: str = "duckdb"
    duckdb_threads: int | None = None
    duckdb_memory_limit: str | None = None
    duckdb_temp_dir: str | None = None
