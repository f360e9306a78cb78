"""Batch scoring: churn probabilities with reasons, value tier, revenue at risk and an action.

Pure functions here; the job that reads, locks, logs and publishes is `jobs.run_scoring`.
"""

from __future__ import annotations

import json
import logging
import operator
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from churnml.config import ActionRule, Attribution, EvaluationConfig, ScoringConfig
from churnml.contract import SCORE_COLUMNS
from churnml.explain import cause_label, contributions, customer_reasons
from churnml.features import FeatureParams
from churnml.features.account import value_tier_sql
from churnml.features.reasons import reason_problems
from churnml.io import output_lock
from churnml.model import ChurnModel

log = logging.getLogger(__name__)

DAYS_PER_MONTH = 365.25 / 12
# Optional extensions of the contract's scores table.
EXTRA_COLUMNS = (
    "main_cause",
    "reason_method",
    "monthly_revenue",
    "expected_profit",
    "priority_rank",
    "script",
)
NO_ACTION = "no action"
# With an uplift model (churnml.uplift): customers a contact would push away, never called.
DO_NOT_CONTACT = "do not contact"
UPLIFT_COLUMNS = ("uplift", "expected_incremental_profit")
# What the contact list shows, in order (a list for people: rounded, causes in words).
CONTACT_COLUMNS = (
    "priority",
    "customer_id",
    "churn_probability",
    "risk_band",
    "value_tier",
    "monthly_revenue",
    "revenue_at_risk",
    "expected_profit",
    "currency",
    "main_cause",
    "reason_1",
    "reason_2",
    "reason_3",
    "action",
    "script",
)
PSI_BINS = 10


def risk_bands(probability: np.ndarray, customer_id: np.ndarray | None = None) -> np.ndarray:
    """Decile bands of the score distribution: "R01" is the riskiest 10 %, "R10" the safest.

    "R" for risk, so a band never reads like a value tier (A-D). Equal probabilities are
    ordered by customer id when ids are given (the same bands whatever the rows' order, on
    either engine), else by position.
    """
    if customer_id is None:
        order = np.argsort(-probability, kind="stable")
    else:
        order = np.lexsort((np.asarray(customer_id).astype(str), -probability))
    ranks = np.empty(len(probability), dtype=np.int64)
    ranks[order] = np.arange(len(probability))
    decile = np.minimum(ranks * 10 // max(len(probability), 1), 9) + 1
    return np.array([f"R{d:02d}" for d in decile])


def value_tiers(
    revenue: np.ndarray, customer_id: np.ndarray, cuts: list[float] | tuple[float, ...]
) -> np.ndarray:
    """A/B/C/D by revenue rank among the scored customers, with the feature library's rule
    (`value_tier_sql`: exact shares, ties broken by a hash of the id)."""
    frame = pd.DataFrame(
        {
            "_row": np.arange(len(revenue)),
            "customer_id": np.asarray(customer_id).astype(str),
            "revenue": np.asarray(revenue, dtype=float),
            "weight": 1.0,
            "cutoff": 0,
        }
    )
    frame["revenue"] = frame["revenue"].where(np.isfinite(frame["revenue"]))
    with duckdb.connect() as con:
        con.register("scored", frame)
        tiers = con.execute(
            f"SELECT {value_tier_sql('revenue', list(cuts))} AS tier FROM scored ORDER BY _row"
        ).fetchnumpy()["tier"]
    return np.asarray(tiers, dtype=object)


_COMPARISONS = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
}
_CONDITION = re.compile(r"^\s*(.+?)\s*(<=|>=|==|!=|<|>)\s*(.+?)\s*$")
_NULL_TEST = re.compile(r"^\s*(.+?)\s+is\s+(not\s+)?null\s*$")


def condition_mask(condition: str, features: pd.DataFrame | None, index: pd.Index) -> pd.Series:
    """Rows where one playbook condition holds ("days_to_commitment_end < 0", "x is null").

    A feature the data do not have makes the condition false for every row (the rule is then
    skipped, never guessed); a comparison with a missing value is false.
    """
    null_test = _NULL_TEST.match(condition)
    match = None if null_test else _CONDITION.match(condition)
    if null_test is None and match is None:
        raise ValueError(
            f"playbook condition {condition!r}: write 'feature < number', 'feature == text' "
            "or 'feature is null' / 'is not null'"
        )
    column = (null_test or match).group(1).strip("`")
    if features is None or column not in features:
        return pd.Series(False, index=index)
    values = features[column].reset_index(drop=True).set_axis(index)
    if null_test:
        return values.notna() if null_test.group(2) else values.isna()
    op, raw = match.group(2), match.group(3).strip().strip("'\"")
    try:
        target: float | str = float(raw)
        numeric = pd.to_numeric(values, errors="coerce")
        return _COMPARISONS[op](numeric, target).fillna(False).astype(bool)
    except ValueError:
        text = values.astype("string")
        return _COMPARISONS[op](text, raw).fillna(False).astype(bool)


def apply_playbook(
    main_cause: pd.Series,
    tier: pd.Series,
    rules: list[ActionRule],
    default_action: str,
    default_script: str = "",
    features: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The retention playbook per customer: the first rule matching cause, tier and facts wins.

    A rule's `cause`, `tiers` or `when` left empty matches any value. Returns `action` and
    `script` (the agent's line) per customer.
    """
    action = pd.Series(default_action, index=main_cause.index, dtype=object)
    script = pd.Series(default_script, index=main_cause.index, dtype=object)
    decided = pd.Series(False, index=main_cause.index)
    for rule in rules:
        match = ~decided
        if rule.cause:
            match &= main_cause == rule.cause
        if rule.tiers:
            match &= tier.isin(rule.tiers)
        for condition in rule.when:
            match &= condition_mask(condition, features, main_cause.index)
        action[match] = rule.action
        script[match] = rule.script
        decided |= match
    return pd.DataFrame({"action": action, "script": script})


def choose_actions(
    main_cause: pd.Series,
    tier: pd.Series,
    rules: list[ActionRule],
    default_action: str,
    features: pd.DataFrame | None = None,
) -> pd.Series:
    """The action alone (see `apply_playbook`)."""
    return apply_playbook(main_cause, tier, rules, default_action, "", features)["action"]


# The per-customer columns `score_rows` gives (each row depends on that customer alone).
ROW_COLUMNS = (
    "customer_id",
    "churn_probability",
    "value_tier",
    "revenue_at_risk",
    "reason_1",
    "reason_2",
    "reason_3",
    "main_cause",
    "reason_method",
    "monthly_revenue",
    "expected_profit",
    "action",
    "script",
)
# What the exact reasons of the customers at the top of the call lists replace.
REASON_COLUMNS = (
    "reason_1",
    "reason_2",
    "reason_3",
    "main_cause",
    "reason_method",
    "action",
    "script",
)


def score_rows(
    model: ChurnModel,
    features: pd.DataFrame,
    settings: ScoringConfig,
    decision: EvaluationConfig,
    tier: np.ndarray | None = None,
    exact: bool = False,
) -> pd.DataFrame:
    """The columns of each customer's score that depend on that customer alone (`ROW_COLUMNS`):
    probability, money, reasons, main cause and the playbook's action. The one scoring
    function of both engines: the Spark engine runs it on each partition (mapInPandas).

    `tier`: the value tiers when the features lack `value_tier` (they rank customers against
    each other, so the caller computes them); `exact`: reasons from exact SHAP values whatever
    `settings.attribution` says (the top of the call lists).
    """
    probability = model.predict_proba(features)
    revenue_column = settings.revenue_feature
    if revenue_column in features:
        revenue = pd.to_numeric(features[revenue_column], errors="coerce").to_numpy(float)
    else:
        revenue = np.full(len(features), np.nan)
    if tier is None:
        tier = features["value_tier"].astype(object).to_numpy()
    horizon_months = model.settings.get("label", {}).get("horizon_days", 60) / DAYS_PER_MONTH
    revenue_at_risk = probability * np.nan_to_num(revenue, nan=0.0) * horizon_months
    value_kept = np.nan_to_num(revenue, nan=0.0) * decision.months_kept
    expected_profit = (
        probability * decision.save_rate * (value_kept - decision.offer_cost)
        - decision.contact_cost
    )
    started = time.perf_counter()
    method = Attribution.treeshap if exact else settings.attribution
    approximate = method == Attribution.path and model.kind == "lightgbm"
    reasons = customer_reasons(
        contributions(model, features, method), top_n=3, currency=settings.currency
    )
    reasons["reason_method"] = "path" if approximate else "shap"
    log.info(
        "reasons (%s) for %d customers in %.1f s",
        method.value,
        len(reasons),
        time.perf_counter() - started,
    )
    _log_reason_problems(reasons)
    main_cause = reasons["main_cause"].fillna("none").astype(str)
    frame = pd.DataFrame(
        {
            "customer_id": features["customer_id"].astype(str).to_numpy(),
            "churn_probability": probability,
            "value_tier": tier,
            "revenue_at_risk": revenue_at_risk,
            "reason_1": reasons["reason_1"].to_numpy(),
            "reason_2": reasons["reason_2"].to_numpy(),
            "reason_3": reasons["reason_3"].to_numpy(),
            "main_cause": main_cause.to_numpy(),
            "reason_method": reasons["reason_method"].to_numpy(),
            "monthly_revenue": revenue,
            "expected_profit": expected_profit,
        }
    )
    playbook = apply_playbook(
        frame["main_cause"],
        frame["value_tier"],
        settings.actions,
        settings.default_action,
        settings.default_script,
        features.reset_index(drop=True),
    )
    frame["action"] = playbook["action"].to_numpy()
    frame["script"] = playbook["script"].to_numpy()
    return frame


def needs_exact_reasons(model: ChurnModel, settings: ScoringConfig) -> bool:
    """Whether the customers at the top of the call lists get exact SHAP reasons."""
    approximate = settings.attribution == Attribution.path and model.kind == "lightgbm"
    return approximate and settings.exact_reasons_rows > 0


def finish_scores(
    rows: pd.DataFrame, scoring_date: pd.Timestamp, model_name: str, model_version: str, run_id: str
) -> pd.DataFrame:
    """The published scores table from `score_rows` output: risk bands over all customers,
    the model's identity, the priority order."""
    frame = rows.assign(
        scoring_date=pd.Timestamp(scoring_date),
        risk_band=risk_bands(
            rows["churn_probability"].to_numpy(float), rows["customer_id"].to_numpy()
        ),
        model_name=model_name,
        model_version=str(model_version),
        run_id=run_id,
    )
    return rank_by_priority(frame)[[*SCORE_COLUMNS, *EXTRA_COLUMNS]]


def score_frame(
    model: ChurnModel,
    features: pd.DataFrame,
    scoring_date: pd.Timestamp,
    model_name: str,
    model_version: str,
    run_id: str,
    settings: ScoringConfig,
    decision: EvaluationConfig,
) -> pd.DataFrame:
    """Scores for every row of `features` (one per eligible customer), ranked by priority.

    With path attributions, the customers at the top of the call lists (by revenue at risk and
    by expected profit) still get reasons from exact SHAP values: `reason_method` says which.
    """
    tier = None
    if "value_tier" not in features:
        cuts = FeatureParams(**model.settings.get("features", {})).value_tier_cuts
        revenue = (
            pd.to_numeric(features[settings.revenue_feature], errors="coerce").to_numpy(float)
            if settings.revenue_feature in features
            else np.full(len(features), np.nan)
        )
        tier = value_tiers(revenue, features["customer_id"].to_numpy(), cuts)
    rows = score_rows(model, features, settings, decision, tier)
    if needs_exact_reasons(model, settings):
        started = time.perf_counter()
        top = _top_of_call_lists(
            rows["customer_id"].to_numpy(),
            rows["churn_probability"].to_numpy(),
            rows["revenue_at_risk"].to_numpy(),
            rows["expected_profit"].to_numpy(),
            settings.exact_reasons_rows,
        )
        exact = score_rows(
            model,
            features.iloc[top],
            settings,
            decision,
            None if tier is None else tier[top],
            exact=True,
        )
        positions = [rows.columns.get_loc(c) for c in REASON_COLUMNS]
        rows.iloc[top, positions] = exact[list(REASON_COLUMNS)].to_numpy()
        log.info(
            "reasons from exact SHAP for the %d customers at the top of the call lists in %.1f s",
            len(top),
            time.perf_counter() - started,
        )
    return finish_scores(rows, scoring_date, model_name, model_version, run_id)


def _log_reason_problems(reasons: pd.DataFrame) -> None:
    """Warn when a reason breaks the house rules (a new feature's template, say): cheap, since
    the texts repeat; the run goes on, as a clumsy reason is no reason to withhold scores."""
    texts = pd.unique(reasons[["reason_1", "reason_2", "reason_3"]].to_numpy().ravel())
    bad = {t: p for t in texts if isinstance(t, str) and (p := reason_problems(t))}
    if bad:
        examples = "; ".join(f"{t!r}: {', '.join(p)}" for t, p in list(bad.items())[:5])
        log.warning("%d distinct reason texts break the wording rules, e.g. %s", len(bad), examples)


def rank_by_priority(frame: pd.DataFrame) -> pd.DataFrame:
    """The one order of the scores and the contact list: `priority_rank` 1 = call first.

    Customers worth calling (an action, and a positive expected profit of the call) come first,
    by expected profit; then everyone else, by expected profit too. So the contact list is the
    first rows of this order and its `priority` is the same number.
    """
    profit = _profit_column(frame)
    callable_rows = _worth_calling(frame)
    ranked = (
        frame.assign(_callable=callable_rows)
        .sort_values(
            ["_callable", profit, "churn_probability", "customer_id"],
            ascending=[False, False, False, True],
            kind="stable",
        )
        .drop(columns="_callable")
        .reset_index(drop=True)
    )
    ranked["priority_rank"] = np.arange(1, len(ranked) + 1)
    return ranked


def _profit_column(frame: pd.DataFrame) -> str:
    """What ranks the calls: the incremental profit when an uplift model scored, else the
    expected profit of the churn model's save rate."""
    return (
        "expected_incremental_profit"
        if "expected_incremental_profit" in frame
        else ("expected_profit")
    )


def _worth_calling(frame: pd.DataFrame) -> pd.Series:
    action = frame["action"]
    return (action != NO_ACTION) & (action != DO_NOT_CONTACT) & (frame[_profit_column(frame)] > 0)


def short_contact_list_warning(
    contacts: int, rows: int, settings: ScoringConfig, uplift: pd.Series | None = None
) -> str | None:
    """Why the contact list has fewer customers than its places, or None when it is full.

    A short list is a finding, not a failure: calling anyone else is expected to lose money.
    With an uplift model (`uplift`: the scored customers' uplift) it usually means the
    campaigns so far showed no group a contact saves enough to pay for the offer."""
    if contacts >= min(settings.contact_list_size, rows):
        return None
    why = (
        "an action and a positive expected profit"
        if uplift is None
        else (
            f"a positive expected incremental profit (uplift x value saved - expected offer "
            f"cost; mean uplift {uplift.mean():+.3f}, highest {uplift.max():+.3f})"
        )
    )
    return (
        f"the contact list has {contacts:,} of its {settings.contact_list_size:,} places: "
        f"only they have {why}"
    )


def sample_plan_frame(
    model: ChurnModel,
    rows: pd.DataFrame,
    main_cause: pd.Series,
    settings: ScoringConfig,
    decision: EvaluationConfig,
) -> pd.DataFrame:
    """What scoring would decide for a sample (the report's test rows): probability, money at
    risk, expected profit of a call and the playbook's action, per customer, as in `score_frame`.
    """
    probability = model.predict_proba(rows)
    if settings.revenue_feature in rows:
        revenue = pd.to_numeric(rows[settings.revenue_feature], errors="coerce").to_numpy(float)
    else:
        revenue = np.full(len(rows), np.nan)
    if "value_tier" in rows:
        tier = rows["value_tier"].astype(str).to_numpy()
    else:
        cuts = FeatureParams(**model.settings.get("features", {})).value_tier_cuts
        tier = value_tiers(revenue, rows["customer_id"].to_numpy(), cuts)
    horizon_months = model.settings.get("label", {}).get("horizon_days", 60) / DAYS_PER_MONTH
    kept = np.nan_to_num(revenue, nan=0.0)
    cause = pd.Series(main_cause.fillna("none").astype(str).to_numpy(), index=rows.index)
    playbook = apply_playbook(
        cause,
        pd.Series(tier, index=rows.index),
        settings.actions,
        settings.default_action,
        settings.default_script,
        rows,
    )
    return pd.DataFrame(
        {
            "main_cause": cause.to_numpy(),
            "churn_probability": probability,
            "revenue_at_risk": probability * kept * horizon_months,
            "expected_profit": probability
            * decision.save_rate
            * (kept * decision.months_kept - decision.offer_cost)
            - decision.contact_cost,
            "action": playbook["action"].to_numpy(),
            "weight": rows["weight"].to_numpy(float) if "weight" in rows else 1.0,
        }
    )


def retention_plan(plan: pd.DataFrame, contact_capacity: float, scale: float = 1.0) -> pd.DataFrame:
    """Per main cause: customers, expected churners, revenue at risk, the actions the playbook
    gives them, and the calls worth making (action and positive expected profit) against the
    contact capacity (a share of the base). `scale` turns a sample into the whole population;
    rows carry their sampling weight.
    """
    frame = plan.assign(
        _w=plan["weight"] * scale,
        _callable=(plan["action"] != NO_ACTION) & (plan["expected_profit"] > 0),
    )
    population = frame["_w"].sum()
    capacity = contact_capacity * population
    rows = []
    for cause, group in frame.groupby("main_cause", sort=False):
        w = group["_w"]
        actions = group.groupby("action")["_w"].sum().sort_values(ascending=False)
        calls = float(w[group["_callable"]].sum())
        rows.append(
            {
                "cause_family": cause,
                "cause": cause_label(cause) if cause != "none" else "no risk-raising reason",
                "customers": float(w.sum()),
                "share_of_base": float(w.sum() / population) if population else np.nan,
                "expected_churners": float((group["churn_probability"] * w).sum()),
                "revenue_at_risk": float((group["revenue_at_risk"] * w).sum()),
                "actions": ", ".join(f"{a} ({n:,.0f})" for a, n in actions.head(3).items()),
                "calls_worth_making": calls,
                "share_of_capacity": calls / capacity if capacity else np.nan,
            }
        )
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    return table.sort_values("revenue_at_risk", ascending=False).reset_index(drop=True)


def _top_of_call_lists(
    customer_id: np.ndarray,
    probability: np.ndarray,
    revenue_at_risk: np.ndarray,
    expected_profit: np.ndarray,
    size: int,
) -> np.ndarray:
    """Positions of the top `size` customers by priority (revenue at risk) or expected profit,
    with the same tie-breaks as the published rankings."""
    by_priority = np.lexsort((customer_id, -probability, -revenue_at_risk))[:size]
    by_profit = np.lexsort((customer_id, -probability, -expected_profit))[:size]
    return np.union1d(by_priority, by_profit)


def contact_list(scores: pd.DataFrame, size: int, currency: str = "") -> pd.DataFrame:
    """The first `size` customers worth calling, in `priority_rank` order, rounded for people.

    Worth calling: an action other than "no action" (or "do not contact") and a positive
    expected profit (incremental, when an uplift model scored). Money is
    rounded to cents and probabilities to 2 decimals here; scores.parquet keeps full precision.
    """
    callable_rows = scores[_worth_calling(scores)]
    top = callable_rows.sort_values("priority_rank", kind="stable").head(size)
    out = pd.DataFrame(
        {
            "priority": top["priority_rank"].to_numpy(),
            "customer_id": top["customer_id"].to_numpy(),
            "churn_probability": top["churn_probability"].round(2).to_numpy(),
            "risk_band": top["risk_band"].to_numpy(),
            "value_tier": top["value_tier"].to_numpy(),
            "monthly_revenue": top["monthly_revenue"].round(2).to_numpy(),
            "revenue_at_risk": top["revenue_at_risk"].round(2).to_numpy(),
            "expected_profit": top["expected_profit"].round(2).to_numpy(),
            "currency": currency,
            "main_cause": [cause_label(c) if c != "none" else "" for c in top["main_cause"]],
            "reason_1": top["reason_1"].to_numpy(),
            "reason_2": top["reason_2"].to_numpy(),
            "reason_3": top["reason_3"].to_numpy(),
            "action": top["action"].to_numpy(),
            "script": top["script"].to_numpy(),
        }
    )
    columns = list(CONTACT_COLUMNS)
    if "uplift" in top:  # ranked by uplift: show it beside the risk
        out["uplift"] = top["uplift"].round(3).to_numpy()
        out["expected_incremental_profit"] = top["expected_incremental_profit"].round(2).to_numpy()
        at = columns.index("expected_profit") + 1
        columns[at:at] = list(UPLIFT_COLUMNS)
    return out[columns]


def stability_edges(reference: np.ndarray, bins: int = PSI_BINS) -> np.ndarray:
    """The bin edges of the population stability index: deciles of the finite reference."""
    reference = reference[np.isfinite(reference)]
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)))
    if len(edges) >= 2:
        edges[0], edges[-1] = -np.inf, np.inf
    return edges


def stability_from_counts(reference: np.ndarray, edges: np.ndarray, counts: np.ndarray) -> float:
    """PSI from the current values' histogram over `edges` (computed anywhere: numpy here,
    each Spark partition in the Spark engine, then added up)."""
    reference = reference[np.isfinite(reference)]
    expected = np.histogram(reference, edges)[0] / len(reference)
    actual = counts / counts.sum()
    expected, actual = np.clip(expected, 1e-4, None), np.clip(actual, 1e-4, None)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def population_stability(reference: np.ndarray, current: np.ndarray, bins: int = PSI_BINS) -> float:
    """Population stability index of `current` against `reference` (deciles of the reference).

    Rule of thumb: < 0.1 stable, 0.1-0.2 some shift, > 0.2 a shift worth a look.
    """
    reference = reference[np.isfinite(reference)]
    current = current[np.isfinite(current)]
    if len(reference) == 0 or len(current) == 0:
        return float("nan")
    edges = stability_edges(reference, bins)
    if len(edges) < 2:
        return 0.0 if np.allclose(current, reference[0]) else float("inf")
    return stability_from_counts(reference, edges, np.histogram(current, edges)[0])


def monitor_population(
    model: ChurnModel, features: pd.DataFrame, probability: np.ndarray, settings: ScoringConfig
) -> dict:
    """PSI of the score and of the model's most important numeric features vs training."""

    def current(name: str) -> np.ndarray:
        if name == "churn_probability":
            return np.asarray(probability, dtype=float)
        return pd.to_numeric(features[name], errors="coerce").to_numpy(float)

    return monitoring_report(
        model,
        settings,
        lambda name, reference: population_stability(reference, current(name)),
    )


def monitoring_report(model: ChurnModel, settings: ScoringConfig, psi) -> dict:
    """The monitoring report, with `psi(column, reference values)` computing each index (on
    pandas, or on Spark without bringing the scores to the driver)."""
    report: dict = {"threshold": settings.psi_threshold, "psi": {}, "warnings": []}
    if model.reference is None:
        report["warnings"].append("the model carries no training reference: PSI not computed")
        return report
    report["psi"]["churn_probability"] = psi(
        "churn_probability", model.reference["probability"].to_numpy(float)
    )
    for column in _top_numeric_features(model, settings.psi_top_features):
        report["psi"][column] = psi(
            column, pd.to_numeric(model.reference[column], errors="coerce").to_numpy(float)
        )
    for name, value in report["psi"].items():
        if value > settings.psi_threshold:
            message = f"population shift in {name}: PSI {value:.3f} > {settings.psi_threshold}"
            report["warnings"].append(message)
            log.warning(message)
    return report


def _top_numeric_features(model: ChurnModel, count: int) -> list[str]:
    if model.kind == "lightgbm":
        gain = model.estimator.feature_importance(importance_type="gain")
        ranked = [model.feature_names[i] for i in np.argsort(-gain, kind="stable")]
    else:
        ranked = list(model.feature_names)
    return [c for c in ranked if c in model.spec.numeric][:count]


@contextmanager
def scoring_lock(folder: Path) -> Iterator[None]:
    """An exclusive, non-blocking lock on one scoring date's output folder (`io.output_lock`:
    the lock file sits beside the folder and goes when the run ends, failed or not)."""
    with output_lock(folder):
        yield


def monitoring_json(report: dict) -> str:
    return json.dumps(report, indent=2, sort_keys=True, default=float)
