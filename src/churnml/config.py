"""Typed configuration schemas (Hydra structured configs).

YAML under `churnml/conf/` holds values only; these dataclasses give every key its type, so a
typo in an override fails when the config is composed, not an hour into training.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf

from churnml.features.params import FeatureParams

log = logging.getLogger(__name__)

CONF_DIR = Path(__file__).resolve().parent / "conf"  # shipped in the package


@dataclass
class PathsConfig:
    root_dir: str = "."
    data_dir: str = MISSING
    raw_dir: str = MISSING
    interim_dir: str = MISSING
    scores_dir: str = MISSING
    reports_dir: str = MISSING
    log_dir: str = MISSING
    mlflow_dir: str = MISSING


@dataclass
class DataConfig:
    """Where the raw data is and what shape it has (`events`: contract tables; `snapshot`)."""

    # Names the registered model and the outputs; left empty, it is derived from `path`.
    name: str | None = None
    kind: str = "events"
    path: str = MISSING
    # Snapshot datasets: one row per customer (docs/data-contract.md, Snapshot datasets).
    id_column: str | None = "customer_id"
    label_column: str | None = None
    positive_label: Any = None
    revenue_column: str | None = None
    categorical_columns: list[str] = field(default_factory=list)
    drop_columns: list[str] = field(default_factory=list)
    # New columns from pandas expressions over the file's columns (backquote names with spaces).
    derived_columns: dict[str, str] = field(default_factory=dict)
    test_path: str | None = None  # a separate test file; else a stratified split
    test_size: float = 0.25
    cv_folds: int = 0  # > 0: also run repeated stratified cross-validation (small data)
    cv_repeats: int = 1
    # The one currency of the dataset's money (docs/data-contract.md), shown in reasons and reports.
    currency: str = "EUR"
    # Snapshot datasets: column -> cause family (contract.CAUSE_FAMILIES); columns not named
    # here are guessed from their names when `guess_causes` (the guess is logged).
    column_causes: dict[str, str] = field(default_factory=dict)
    guess_causes: bool = True


@dataclass
class LabelConfig:
    """What counts as churn: `termination` (explicit exit) or `inactivity` (silence)."""

    kind: str = "termination"
    horizon_days: int = 60
    gap_days: int = 0
    reasons: list[str] = field(default_factory=lambda: ["voluntary", "port_out"])


@dataclass
class SamplingConfig:
    """Which cutoffs, which customers at each, and how the cutoffs split out of time."""

    frequency: str = "MS"
    start: str | None = None
    end: str | None = None
    cutoffs: list[str] = field(default_factory=list)
    min_history_days: int = 90
    min_tenure_days: int = 30
    test_cutoffs: int = 1
    validation_cutoffs: int = 1
    max_train_cutoffs: int = 12
    negative_sample_rate: float = 1.0
    # rolling: the latest `folds` labelled cutoffs are each tested by a model trained before
    # them; the registered model is then refit on every labelled cutoff (docs/sampling.md).
    # single_split: one train / validation / test split; the registered model never sees the
    # validation and test cutoffs.
    scheme: str = "rolling"
    folds: int = 3


@dataclass
class ModelConfig:
    name: str = "lightgbm"
    params: dict[str, Any] = field(default_factory=dict)
    num_boost_round: int = 2000
    early_stopping_rounds: int = 100
    calibration: str = "beta"
    # model=auto (snapshot data): each named candidate (params over `params`) is scored by
    # stratified `search_folds`-fold CV on the training rows, then a seeded Optuna search runs
    # for `search_budget_s` seconds (at most `search_max_trials` trials; 0 s: no search); the
    # best CV AUC wins. On event data, auto is the LightGBM defaults (tune: `churnml tune`).
    candidates: dict[str, dict[str, Any]] = field(default_factory=dict)
    search_budget_s: float = 120.0
    search_folds: int = 5
    search_max_trials: int = 200


@dataclass
class EvaluationConfig:
    """Decision settings: what a retention contact costs and what a saved customer is worth."""

    offer_cost: float = 10.0
    contact_cost: float = 2.0
    save_rate: float = 0.3
    months_kept: float = 12.0
    contact_capacity: float = 0.1
    segment_columns: list[str] = field(
        default_factory=lambda: ["value_tier", "payment_type", "lifecycle_stage"]
    )


class Attribution(StrEnum):
    """How per-customer contributions are computed; see `churnml.explain`."""

    treeshap = "treeshap"
    path = "path"


@dataclass
class ExplainConfig:
    enabled: bool = True
    attribution: Attribution = Attribution.treeshap
    max_rows: int = 20_000
    top_drivers: int = 15
    dependence_plots: int = 4
    currency: str = ""  # set from data.currency by conf/explain/default.yaml


@dataclass
class TrackingConfig:
    """MLflow settings; the MLFLOW_TRACKING_URI environment variable wins over `tracking_uri`."""

    tracking_uri: str = MISSING
    artifact_dir: str = MISSING
    experiment_name: str = "churnml"
    # Left empty: `churnml_<data.name>`, so each dataset has its own champion.
    registered_model_name: str | None = None
    champion_alias: str = "champion"
    challenger_alias: str = "challenger"
    promotion_metric: str = "test_roc_auc"
    register: bool = True  # false for tuning trials: metrics only, no model version
    # A tracking server that does not answer fails the run within about
    # request_timeout_s x (request_max_retries + 1), not after minutes of retries.
    request_timeout_s: int = 10
    request_max_retries: int = 1


@dataclass
class ValidationConfig:
    enabled: bool = True
    # Verdicts of table files that passed, by file fingerprint: unchanged files are not rescanned.
    cache: bool = True
    cache_dir: str = "data/validation_cache"
    # Plausible ranges: a larger value is an export or unit error (docs/data-contract.md).
    max_amount: float = 1_000_000.0  # any money amount: bills, payments, fees, transfers
    max_call_duration_s: int = 86_400
    max_volume_mb: float = 1_000_000.0


@dataclass
class SparkConfig:
    """The Spark session and where the raw tables are (features.engine / scoring.engine spark).

    Under spark-submit, Databricks or a notebook the active session is used as it is, and
    `master` and `conf` are ignored (the cluster's settings win; `spark.sql.session.timeZone`
    is set to UTC in any case). `tables` maps a contract table to any Spark path or to
    `catalog:<db>.<table>`; a table not named is read from `<data.path>/<table>.parquet`
    (or .csv). docs/spark.md has the settings for each kind of cluster.
    """

    master: str | None = None
    app_name: str = "churnml"
    conf: dict[str, str] = field(default_factory=dict)
    tables: dict[str, str] = field(default_factory=dict)


@dataclass
class HazardConfig:
    """The time-to-churn model (`churnml.hazard`): monthly hazards, survival and lifetime value.

    Trained beside the churn model by `churnml train` and used by `churnml score` (both skip it
    when `enabled` is false). docs/time-to-churn.md explains every setting.
    """

    enabled: bool = True
    months: int = 12  # K: the span of the survival curve S(1..K), in calendar months
    horizons_days: list[int] = field(default_factory=lambda: [30, 90, 180, 365])
    # Person-period rows above this many: months without an exit are down-sampled (weighted).
    max_rows: int = 250_000
    params: dict[str, Any] = field(default_factory=dict)
    num_boost_round: int = 600
    early_stopping_rounds: int = 40
    # The test cutoff is the latest one with this many days observed after it; a second,
    # older test cutoff with the longest horizon observed checks the long horizons (long_fold).
    test_follow_up_days: int = 90
    long_fold: bool = True
    promotion_metric: str = "hazard_test_concordance"
    # Lifetime value: monthly revenue x margin_rate x S(t), discounted monthly.
    margin_rate: float = 0.35
    annual_discount_rate: float = 0.1
    # Value x potential matrix: tiers counted as high, for current value and lifetime value.
    high_tiers: list[str] = field(default_factory=lambda: ["A", "B", "C"])
    # Contact list order: expected_profit (the churn model's) or lifetime_value_at_risk.
    contact_ranking: str = "expected_profit"


@dataclass
class TrainConfig:
    paths: PathsConfig = field(default_factory=PathsConfig)
    data: DataConfig = field(default_factory=DataConfig)
    label: LabelConfig = field(default_factory=LabelConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    features: FeatureParams = field(default_factory=FeatureParams)
    model: ModelConfig = field(default_factory=ModelConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    explain: ExplainConfig = field(default_factory=ExplainConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    # The retention playbook, so the loss-driver report can say what to do about each cause.
    scoring: ScoringConfig = field(default_factory=lambda: ScoringConfig())
    hazard: HazardConfig = field(default_factory=HazardConfig)
    spark: SparkConfig = field(default_factory=SparkConfig)
    seed: int = 42
    run_dir: str = MISSING


@dataclass
class ActionRule:
    """One row of the retention playbook: main cause (and value tiers, and facts) -> action.

    `when` tests the customer's feature values, all of which must hold, so the action fits the
    facts ("days_to_commitment_end < 0": out of contract; "overdue_amount > 0"; "x is null").
    `script` is the line the agent opens with: why we call, what we offer.
    """

    action: str = MISSING
    cause: str | None = None
    tiers: list[str] = field(default_factory=list)
    when: list[str] = field(default_factory=list)
    script: str = ""


@dataclass
class ScoringConfig:
    date: str | None = None
    output_dir: str = MISSING
    model_alias: str = "champion"
    model_version: str | None = None
    write_csv: bool = False
    contact_list_size: int = 500
    revenue_feature: str = "arpu_monthly_3m"
    psi_threshold: float = 0.2
    psi_top_features: int = 10
    attribution: Attribution = Attribution.path
    exact_reasons_rows: int = 5000
    # A scoring date with less event history than the model's longest feature window is
    # refused (exit 2); true scores it anyway, with a warning in monitoring.json.
    allow_short_history: bool = False
    default_action: str = "monitor"
    default_script: str = ""
    actions: list[ActionRule] = field(default_factory=list)
    # Scores of this dataset go to <output_dir>/scoring_date=<date>/ (what production reads);
    # any other dataset's to <output_dir>/dataset=<name>/scoring_date=<date>/.
    production_dataset: str = "telco_sim"
    currency: str = ""  # set from data.currency by conf/scoring/default.yaml
    # duckdb: one machine; spark: features and scores on the Spark session (`spark` settings,
    # docs/spark.md), written partitioned by scoring_date with the same checks and moves.
    engine: str = "duckdb"


@dataclass
class ScoreConfig:
    paths: PathsConfig = field(default_factory=PathsConfig)
    data: DataConfig = field(default_factory=DataConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    hazard: HazardConfig = field(default_factory=HazardConfig)
    uplift: UpliftConfig = field(default_factory=lambda: UpliftConfig())
    spark: SparkConfig = field(default_factory=SparkConfig)
    run_dir: str = MISSING


@dataclass
class LostSettings:
    """How the lost-customer table is built and judged (docs/lost-customers.md)."""

    # A voluntary exit with a port-out request (not cancelled) this many days before it is a
    # port-out: the number went to another operator.
    port_out_window_days: int = 30
    # Early warning: was the customer in the top risk decile this many days before leaving?
    lookback_days: list[int] = field(default_factory=lambda: [30, 60, 90])
    # A stored score date counts for a lookback when it is at most this many days older.
    score_staleness_days: int = 31
    # Contact-list coverage: on a contact list in the this many days before the exit.
    contact_days: int = 90
    # Without stored scores, recompute with the champion at month starts (false: leave empty).
    recompute_with_champion: bool = True
    # Lifetime value lost when the scores carry none: monthly revenue x these months.
    lifetime_months: float = 24.0


@dataclass
class WinbackSettings:
    """The win-back model and list (churnml.winback)."""

    enabled: bool = True
    horizon_months: int = 6  # returns within this many months of the list date
    max_months_since_exit: int = 12  # older exits are no longer on the list
    test_cutoffs: int = 3  # the latest labelled month starts judge the model out of time
    min_returns: int = 20  # fewer returns in the training months: no model, one log line
    exclude_exit_types: list[str] = field(default_factory=lambda: ["non-payment"])
    min_monthly_revenue: float = 10.0  # below it a customer is not worth an offer
    value_months: float = 12.0  # value of a return: monthly revenue x these months
    list_size: int = 500
    default_offer: str = "welcome-back call"
    offers: dict[str, str] = field(default_factory=dict)  # main cause -> suggested offer


@dataclass
class LostConfig:
    paths: PathsConfig = field(default_factory=PathsConfig)
    data: DataConfig = field(default_factory=DataConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    # The silence definition of the inactivity label (conf/label/inactivity.yaml).
    silence: LabelConfig = field(default_factory=LabelConfig)
    lost: LostSettings = field(default_factory=LostSettings)
    winback: WinbackSettings = field(default_factory=WinbackSettings)
    seed: int = 42
    run_dir: str = MISSING


@dataclass
class ValidateConfig:
    paths: PathsConfig = field(default_factory=PathsConfig)
    data: DataConfig = field(default_factory=DataConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    run_dir: str = MISSING


@dataclass
class ReviewConfig:
    """The three-month campaign review (`churnml review`, churnml.review)."""

    months: list[int] = field(default_factory=lambda: [1, 2, 3])
    confidence: float = 0.95
    # Fewer customers than this in treatment or control: "too small to tell".
    min_group_size: int = 30
    # The smallest change of churn (0.03 = 3 points) worth detecting: an interval that spans
    # zero says "no effect found" only when the groups could have seen a change this large.
    min_effect: float = 0.03
    segments: list[str] = field(
        default_factory=lambda: ["offer", "channel", "value_tier", "cause_family"]
    )
    # The cause family of each customer at the campaign date, from the champion's reasons.
    causes_from_champion: bool = True
    report_name: str = "campaign_review"


@dataclass
class UpliftConfig:
    """The uplift model (`churnml uplift`, churnml.uplift) and how scoring uses it."""

    horizon_months: int = 3  # churn within this many months of the campaign
    learner: str = "auto"  # auto (chosen out of time), t_learner or x_learner
    # The latest share of campaigns judges the learners, in `test_blocks` blocks, each
    # predicted by learners trained on the campaigns whose follow-up had ended by then.
    test_share: float = 0.6
    test_blocks: int = 3
    rounds: int = 50  # LightGBM boosting rounds of each model (200 learnt mostly noise)
    # Fewer treatment or control rows than this (in training) is too little to learn from.
    min_group_rows: int = 20
    # The share of a ranking contacted when comparing uplift with risk targeting.
    capacity_share: float = 0.3
    # Calibration on the later campaigns: bins of raw predicted uplift (equal counts).
    calibration_bins: int = 10
    # Scoring: "do not contact" when the calibrated uplift is below minus harm_threshold and
    # its one-sided harm_confidence upper bound is below zero (the evidence says it harms).
    harm_threshold: float = 0.01
    harm_confidence: float = 0.95
    # Registered as <tracking.registered_model_name><suffix>, beside the churn model.
    model_suffix: str = "_uplift"


@dataclass
class UpliftJobConfig:
    paths: PathsConfig = field(default_factory=PathsConfig)
    data: DataConfig = field(default_factory=DataConfig)
    label: LabelConfig = field(default_factory=LabelConfig)
    features: FeatureParams = field(default_factory=FeatureParams)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    review: ReviewConfig = field(default_factory=ReviewConfig)
    uplift: UpliftConfig = field(default_factory=UpliftConfig)
    seed: int = 42
    run_dir: str = MISSING


@dataclass
class ReviewJobConfig:
    paths: PathsConfig = field(default_factory=PathsConfig)
    data: DataConfig = field(default_factory=DataConfig)
    label: LabelConfig = field(default_factory=LabelConfig)
    features: FeatureParams = field(default_factory=FeatureParams)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    review: ReviewConfig = field(default_factory=ReviewConfig)
    # Saved customers are valued at the time-to-churn model's lifetime value when one is
    # registered (its margin and discount settings).
    hazard: HazardConfig = field(default_factory=HazardConfig)
    run_dir: str = MISSING


def register_configs() -> None:
    """Register the schemas with Hydra's ConfigStore (called by the `churnml` command)."""
    from hydra.core.config_store import ConfigStore  # not at import: serving needs no Hydra

    store = ConfigStore.instance()
    store.store(name="train_schema", node=TrainConfig)
    store.store(name="score_schema", node=ScoreConfig)
    store.store(name="validate_schema", node=ValidateConfig)
    store.store(name="lost_schema", node=LostConfig)
    store.store(name="review_schema", node=ReviewJobConfig)
    store.store(name="uplift_schema", node=UpliftJobConfig)


def dataset_name_from_path(path: str) -> str:
    """A dataset's name from its folder or file: `/data/telco/latest.csv` -> `latest`."""
    stem = Path(str(path).rstrip("/")).name
    stem = stem.split(".")[0] if "." in stem and not stem.startswith(".") else stem
    return re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_") or "dataset"


def _name_outputs(cfg: TrainConfig | ScoreConfig | ValidateConfig) -> None:
    """Fill the dataset name (from the path) and the model name (from the dataset) when unset."""
    if not cfg.data.name:
        cfg.data.name = dataset_name_from_path(cfg.data.path)
        log.info(
            "data.name is not set: calling the dataset %r after data.path (set data.name=... "
            "to choose; it names the registered model and the outputs)",
            cfg.data.name,
        )
    tracking = getattr(cfg, "tracking", None)
    if tracking is not None and not tracking.registered_model_name:
        tracking.registered_model_name = f"churnml_{cfg.data.name}"


def compose_config(config_name: str, overrides: list[str] | tuple[str, ...] = ()):
    """Compose a primary config (`train`, `score`) outside `@hydra.main`, typed.

    For tests, notebooks and benchmarks; the configs ship in the package. Without
    a `run_dir=` override, the run's folder is `<paths.log_dir>/<config_name>/<timestamp>`, as
    under `@hydra.main`.
    """
    overrides = list(overrides)
    if not any(o.startswith("run_dir=") for o in overrides):
        stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
        overrides.append(f"run_dir=${{paths.log_dir}}/{config_name}/{stamp}")
    from hydra import compose, initialize_config_dir

    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return to_object(compose(config_name=config_name, overrides=overrides))


def to_object(cfg: DictConfig) -> TrainConfig | ScoreConfig | ValidateConfig:
    """Resolve a composed Hydra config into the typed dataclass the library works with, and
    check its settings' ranges (a negative size or horizon fails here, not mid-run)."""
    from churnml.settings import check_settings

    typed = OmegaConf.to_object(cfg)
    _name_outputs(typed)
    return check_settings(typed)
