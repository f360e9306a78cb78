"""SHAP loss drivers: per-customer contributions, driver tables, findings and reasons.

Contributions are in raw-score (log-odds) space and add up to the model's raw score. Two methods:
- "treeshap": exact TreeSHAP from LightGBM's own `pred_contrib` (works with native categoricals);
  its cost grows with trees x leaves x depth^2, about 3 ms a customer for a 1M-row model.
- "path": path attributions (Saabas): each split on the customer's path through a tree credits
  its feature with the change in the tree's expected output. Cost grows with trees x depth,
  about 100x faster; it is what makes reasons for a million customers fit a nightly run.
For the logistic baseline both are the exact linear SHAP values. The feature registry maps each
feature to its cause family and reason text.
"""

from __future__ import annotations

import itertools
import logging
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache

import numba
import numpy as np
import pandas as pd

from churnml.config import Attribution
from churnml.features import CAUSE_FAMILIES, FeatureParams, FeatureSpec, feature_spec
from churnml.features.reasons import format_money, humanize_days, trend_words
from churnml.model import ChurnModel, as_sklearn_frame
from churnml.progress import progress

log = logging.getLogger(__name__)

UNMAPPED_FAMILY = "other"
ATTRIBUTION_METHODS = tuple(method.value for method in Attribution)
PATH_CHUNK_ROWS = 100_000


# Operators that models explained in this process gave their own columns to (per-operator
# share features exist only for the competitors chosen at training time).
_COMPETITORS: set[str] = set()


def _spec(feature: str) -> FeatureSpec | None:
    """The registry entry of a feature; None for columns outside it (snapshot datasets)."""
    return _spec_for(feature, tuple(sorted(_COMPETITORS)))


@cache
def _spec_for(feature: str, competitors: tuple[str, ...]) -> FeatureSpec | None:
    try:
        return feature_spec(feature)
    except KeyError:
        pass
    if not competitors:
        return None
    try:
        return feature_spec(feature, FeatureParams(competitors=list(competitors)))
    except KeyError:
        return None


def _note_competitors(model: ChurnModel) -> None:
    """Make the model's per-operator columns known to the reason texts and cause families."""
    settings = getattr(model, "settings", {}) or {}
    _COMPETITORS.update((settings.get("features") or {}).get("competitors") or [])


@dataclass(frozen=True)
class Contributions:
    """SHAP values (rows x features, log-odds) with the base value and the explained rows.

    `causes` maps columns outside the registry (snapshot datasets) to cause families.
    """

    values: pd.DataFrame
    base_value: float
    features: pd.DataFrame
    causes: Mapping[str, str] = field(default_factory=dict)


def cause_family_of(feature: str, causes: Mapping[str, str] | None = None) -> str:
    """The cause family of a feature: the registry's, else the dataset's mapping, else other."""
    spec = _spec(feature)
    if spec:
        return spec.cause_family
    return (causes or {}).get(feature, UNMAPPED_FAMILY)


def cause_label(family: str) -> str:
    return CAUSE_FAMILIES.get(family, family.replace("_", " "))


def describe_feature(feature: str) -> str:
    spec = _spec(feature)
    return spec.description if spec else feature.replace("_", " ")


def contributions(
    model: ChurnModel, features: pd.DataFrame, method: str | Attribution
) -> Contributions:
    """Per-row, per-feature contributions to the raw (uncalibrated) log-odds score."""
    if method not in ATTRIBUTION_METHODS:
        raise ValueError(f"attribution method {method!r} unknown; use one of {ATTRIBUTION_METHODS}")
    if method == "path":
        return path_contributions(model, features)
    return shap_contributions(model, features)


def _column_causes(model: ChurnModel) -> dict[str, str]:
    """The snapshot dataset's column -> cause family map the model was trained with."""
    return dict(getattr(model, "settings", {}).get("column_causes", {}) or {})


def shap_contributions(model: ChurnModel, features: pd.DataFrame) -> Contributions:
    """Exact TreeSHAP values (linear SHAP for the logistic baseline)."""
    _note_competitors(model)
    prepared = model.spec.prepare(features)
    columns = model.spec.columns
    if model.kind == "lightgbm":
        raw = model.estimator.predict(prepared, pred_contrib=True)
        values = pd.DataFrame(raw[:, :-1], columns=columns, index=features.index)
        base = float(raw[0, -1]) if len(raw) else 0.0
    else:
        values, base = _linear_contributions(model, prepared)
    return Contributions(
        values=values, base_value=base, features=prepared, causes=_column_causes(model)
    )


def path_contributions(model: ChurnModel, features: pd.DataFrame) -> Contributions:
    """Path (Saabas) attributions: like TreeSHAP they add up to the raw score, at tree-depth cost.

    The base value is the count-weighted expected output of the trees, the same as TreeSHAP's.
    """
    _note_competitors(model)
    prepared = model.spec.prepare(features)
    if model.kind != "lightgbm":
        values, base = _linear_contributions(model, prepared)
        return Contributions(
            values=values, base_value=base, features=prepared, causes=_column_causes(model)
        )
    booster = model.estimator
    values = np.empty((len(prepared), len(model.spec.columns)))
    paths = None
    starts = range(0, len(prepared), PATH_CHUNK_ROWS)
    for start in progress(starts, "path attributions", unit="chunks of 100k rows"):
        chunk = prepared.iloc[start : start + PATH_CHUNK_ROWS]
        # The trees `predict` uses (the best iteration's), one column each.
        leaves = np.ascontiguousarray(booster.predict(chunk, pred_leaf=True), dtype=np.int32)
        paths = paths or _leaf_paths(booster, n_trees=leaves.shape[1])
        values[start : start + len(chunk)] = _sum_leaf_paths(
            leaves, paths.tree_offset, paths.start, paths.feature, paths.delta, values.shape[1]
        )
    frame = pd.DataFrame(values, columns=model.spec.columns, index=features.index)
    base_value = paths.base_value if paths else 0.0
    return Contributions(
        values=frame, base_value=base_value, features=prepared, causes=_column_causes(model)
    )


@dataclass(frozen=True)
class _LeafPaths:
    """For every leaf of every tree (global id = tree_offset[tree] + leaf index), the features
    split on between the root and the leaf and the change in expected output each one made,
    stored CSR-style: entries start[leaf] .. start[leaf + 1]."""

    tree_offset: np.ndarray
    start: np.ndarray
    feature: np.ndarray
    delta: np.ndarray
    base_value: float


def _leaf_paths(booster, n_trees: int) -> _LeafPaths:
    trees = booster.dump_model()["tree_info"][:n_trees]
    tree_offset = np.cumsum([0] + [tree["num_leaves"] for tree in trees[:-1]]).astype(np.int64)
    per_leaf: dict[int, dict[int, float]] = {}
    base_value = 0.0
    for offset, tree in zip(tree_offset, trees, strict=True):
        root = tree["tree_structure"]
        _expected_outputs(root)
        base_value += root["expected"]
        stack: list[tuple[dict, dict[int, float]]] = [(root, {})]
        while stack:
            node, credited = stack.pop()
            if "split_feature" not in node:
                per_leaf[int(offset) + node.get("leaf_index", 0)] = credited
                continue
            feature = node["split_feature"]
            for child in (node["left_child"], node["right_child"]):
                change = child["expected"] - node["expected"]
                stack.append((child, {**credited, feature: credited.get(feature, 0.0) + change}))
    n_leaves = int(tree_offset[-1]) + trees[-1]["num_leaves"] if trees else 0
    counts = np.array([len(per_leaf.get(leaf, {})) for leaf in range(n_leaves)], dtype=np.int64)
    start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    entries = [item for leaf in range(n_leaves) for item in per_leaf.get(leaf, {}).items()]
    return _LeafPaths(
        tree_offset=tree_offset,
        start=start,
        feature=np.array([feature for feature, _ in entries], dtype=np.int32),
        delta=np.array([change for _, change in entries], dtype=np.float64),
        base_value=base_value,
    )


def _expected_outputs(node: dict) -> tuple[float, float]:
    """Annotate every node with the mean leaf value of the training rows that reached it."""
    if "split_feature" not in node:
        node["expected"] = node["leaf_value"]
        return node.get("leaf_count", 0), node["leaf_value"]
    left_count, left = _expected_outputs(node["left_child"])
    right_count, right = _expected_outputs(node["right_child"])
    count = left_count + right_count
    if count:
        node["expected"] = (left_count * left + right_count * right) / count
    else:
        node["expected"] = (left + right) / 2
    return count, node["expected"]


@numba.njit(parallel=True, cache=True)
def _sum_leaf_paths(leaves, tree_offset, start, feature, delta, n_features):
    values = np.zeros((leaves.shape[0], n_features))
    for row in numba.prange(leaves.shape[0]):
        for tree in range(leaves.shape[1]):
            leaf = tree_offset[tree] + leaves[row, tree]
            for entry in range(start[leaf], start[leaf + 1]):
                values[row, feature[entry]] += delta[entry]
    return values


def _linear_contributions(model: ChurnModel, prepared: pd.DataFrame) -> tuple[pd.DataFrame, float]:
    """Exact SHAP for a linear model: coef x (x - mean), summed back over one-hot columns."""
    pipeline = model.estimator
    transformer, logreg = pipeline[0], pipeline[-1]
    design = transformer.transform(as_sklearn_frame(prepared, model.spec))
    design = design.toarray() if hasattr(design, "toarray") else np.asarray(design)
    # Background distribution = the explained rows, as for interventional linear SHAP.
    centred = design - design.mean(axis=0)
    parts = centred * logreg.coef_[0]
    names = transformer.get_feature_names_out()
    owners = []
    for name in names:
        block, _, rest = name.partition("__")
        if block == "numeric":
            owners.append(rest)
        else:
            owners.append(next(c for c in model.spec.categorical if rest.startswith(f"{c}_")))
    values = pd.DataFrame(parts, columns=owners, index=prepared.index)
    values = values.T.groupby(level=0, sort=False).sum().T.reindex(columns=model.spec.columns)
    base = float(logreg.intercept_[0] + (design.mean(axis=0) * logreg.coef_[0]).sum())
    return values.fillna(0.0), base


def driver_table(contrib: Contributions, labels: pd.Series | None = None) -> pd.DataFrame:
    """Features ranked by mean |SHAP|, with cause family and direction of effect."""
    values = contrib.values
    table = pd.DataFrame(
        {
            "feature": values.columns,
            "description": [describe_feature(c) for c in values.columns],
            "cause_family": [cause_family_of(c, contrib.causes) for c in values.columns],
            "mean_abs_shap": values.abs().mean().to_numpy(),
            "mean_shap": values.mean().to_numpy(),
            "share_raising_risk": (values > 0).mean().to_numpy(),
        }
    )
    if labels is not None:
        churned = labels.to_numpy() == 1
        table["mean_shap_churners"] = values[churned].mean().to_numpy() if churned.any() else np.nan
    total = table["mean_abs_shap"].sum()
    table["share_of_total"] = table["mean_abs_shap"] / total if total > 0 else 0.0
    table = table.sort_values("mean_abs_shap", ascending=False, kind="stable")
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table.reset_index(drop=True)


def cause_family_contributions(contrib: Contributions) -> pd.DataFrame:
    """Per-row SHAP summed over each cause family's features (SHAP values add up)."""
    families = [cause_family_of(c, contrib.causes) for c in contrib.values.columns]
    return contrib.values.T.groupby(families, sort=False).sum().T


def cause_family_table(
    contrib: Contributions, drivers: pd.DataFrame, main_causes: pd.Series | None = None
) -> pd.DataFrame:
    """Importance of each cause family (the causes the operators' playbooks name).

    Two measures that do not grow with the number of features in a family:
    - `share_of_top_reasons`: the share of customers whose main cause (first reason) is the
      family; the order of the table when `main_causes` is given.
    - `mean_abs_shap`: the mean absolute value of the family's summed contribution per customer.
      Summing the features' own mean |SHAP| instead would reward families with many correlated
      features whose effects cancel.
    """
    by_family = cause_family_contributions(contrib)
    grouped = drivers.groupby("cause_family", sort=False).agg(
        features=("feature", "count"), top_feature=("feature", "first")
    )
    grouped["mean_abs_shap"] = by_family.abs().mean().reindex(grouped.index)
    grouped["share_of_total"] = grouped["mean_abs_shap"] / grouped["mean_abs_shap"].sum()
    order = ["mean_abs_shap"]
    if main_causes is not None:
        shares = main_causes.value_counts(normalize=False) / max(len(main_causes), 1)
        grouped["share_of_top_reasons"] = shares.reindex(grouped.index).fillna(0.0)
        order = ["share_of_top_reasons", "mean_abs_shap"]
    else:
        grouped["share_of_top_reasons"] = np.nan
    grouped = grouped.sort_values(order, ascending=False).reset_index()
    grouped.insert(1, "cause", [cause_label(f) for f in grouped["cause_family"]])
    return grouped[
        [
            "cause_family",
            "cause",
            "share_of_top_reasons",
            "mean_abs_shap",
            "share_of_total",
            "features",
            "top_feature",
        ]
    ]


MIN_GROUP_SHARE = 0.01  # a finding speaks of at least 1 % of the base ...
MIN_GROUP_ROWS = 30  # ... and of at least this many customers
MIN_RATIO = 1.2  # below this, the group does not churn notably more often than the rest
THRESHOLD_QUANTILES = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98)
BAND_EDGES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def _candidate_groups(
    feature: pd.Series, shap: pd.Series, unit: str = "number"
) -> Iterator[tuple[np.ndarray, str]]:
    """Groups of rows where a feature raises risk, as (mask, condition).

    Categorical features: the levels whose mean SHAP is positive. Numeric features: the tail
    (high or low, by the sign of the SHAP trend) beyond each of a few quantile thresholds,
    rounded in the feature's unit first (whole %, days, months) so the words match the group.
    """
    if isinstance(feature.dtype, pd.CategoricalDtype) or feature.dtype == object:
        text = feature.astype(str).where(feature.notna(), "missing")
        levels = pd.DataFrame({"v": text, "s": shap}).groupby("v")["s"].mean()
        risky = levels[levels > 0].sort_values(ascending=False).index.tolist()
        for count in range(1, min(len(risky), 3) + 1):
            if count < len(levels):
                yield text.isin(risky[:count]).to_numpy(), f"is {' or '.join(risky[:count])}"
        return
    numeric = pd.to_numeric(feature, errors="coerce")
    valid = numeric.notna().to_numpy()
    if (~valid).any() and shap[~valid].mean() > 0:
        yield ~valid, "is missing"  # e.g. no commitment at all
    if valid.sum() < MIN_GROUP_ROWS or numeric[valid].nunique() < 2:
        return
    # Bands between deciles: a feature may raise risk in the middle (a contract ending soon).
    edges = sorted({round_threshold(float(q), unit) for q in numeric[valid].quantile(BAND_EDGES)})
    for low, high in itertools.pairwise(edges):
        band = ((numeric >= low) & (numeric < high)).fillna(False).to_numpy(dtype=bool)
        if band.any() and shap[band].mean() > 0:
            yield band, f"between {low} {high}"
    correlation = np.corrcoef(numeric[valid], shap[valid])[0, 1]
    if not np.isfinite(correlation) or correlation == 0:
        return
    seen: set[float] = set()
    for q in THRESHOLD_QUANTILES:
        if correlation > 0:
            threshold = round_threshold(float(numeric[valid].quantile(q)), unit)
            if threshold not in seen:
                seen.add(threshold)
                yield (numeric >= threshold).fillna(False).to_numpy(dtype=bool), f">= {threshold}"
        else:
            threshold = round_threshold(float(numeric[valid].quantile(1 - q)), unit)
            if threshold not in seen:
                seen.add(threshold)
                yield (numeric <= threshold).fillna(False).to_numpy(dtype=bool), f"<= {threshold}"


def round_threshold(value: float, unit: str) -> float:
    """A threshold a person can read: whole %, whole days (months past 60 days), 2 digits."""
    if not math.isfinite(value) or value == 0:
        return value
    if unit in ("share", "points", "trend"):
        return round(value, 2)
    if unit in ("days", "days_until"):
        if abs(value) < 60:
            return float(round(value))
        return round(value / (365.25 / 12)) * (365.25 / 12)
    magnitude = math.floor(math.log10(abs(value)))
    if unit == "count" and abs(value) >= 1:  # whole numbers, 2 significant digits
        return float(round(value, -max(magnitude - 1, 0)))
    return float(round(value, 1 - magnitude))


def feature_label(feature: str) -> str:
    """A short name for a feature: its description's first clause ("outgoing voice minutes in
    the last 30 days"), or a snapshot column's own name."""
    spec = _spec(feature)
    if spec is None:
        return feature.replace("_", " ")
    text = spec.description.split(". ")[0].rstrip(".")
    text = re.sub(r"\s*\([^)]*\)", "", text).split(": ")[0].strip()
    if text[1:2].isupper():  # an acronym: "SMS sent ..."
        return text
    return text[:1].lower() + text[1:]


def value_words(value: float, unit: str, currency: str = "") -> str:
    """A number in its unit, rounded for people: 9 %, EUR 43.20, 3 months, +12 points."""
    if unit == "share":
        return f"{value * 100:.0f} %"
    if unit == "points":
        return f"{value * 100:+.0f} points"
    if unit == "trend":
        return trend_words(value) or "unchanged"
    if unit == "money":
        return format_money(value, currency, 2 if abs(value) < 100 else 0)
    if unit in ("days", "days_until"):
        return humanize_days(value)
    return _format_number(value)


def _condition_words(feature: str, condition: str, currency: str = "") -> str:
    """`>= 0.09` on dropped_call_rate_30d -> "with share of voice calls dropped ... ≥ 9 %"."""
    operator, _, raw = condition.partition(" ")
    spec = _spec(feature)
    label = feature_label(feature)
    if condition == "is missing":
        null_words = spec.null_reason if spec else None
        # A missing share or "days since" means nothing to measure, not a zero: say so.
        if null_words:
            return f"with {null_words}"
        return f"whose {label} is undefined (nothing to measure)"
    if operator == "between":
        low, high = (float(v) for v in raw.split())
        unit = spec.unit if spec else "number"
        if unit == "days_until":
            if low == 0:
                return f"whose contract ends within {humanize_days(high)}"
            if low > 0:
                return f"whose contract ends in {humanize_days(low)} to {humanize_days(high)}"
            if high <= 0:
                return f"whose contract ended {humanize_days(high)} to {humanize_days(low)} ago"
            return (
                f"whose contract ended up to {humanize_days(low)} ago or ends within "
                f"{humanize_days(high)}"
            )
        return (
            f"with {label} from {value_words(low, unit, currency)} to under "
            f"{value_words(high, unit, currency)}"
        )
    if operator == "is":
        labels = dict(spec.labels) if spec else {}
        levels = [labels.get(level, level.replace("_", " ")) for level in raw.split(" or ")]
        return f"whose {label} is {' or '.join(levels)}"
    value = float(raw)
    unit = spec.unit if spec else "number"
    if unit == "days_until":
        span = humanize_days(value)
        if operator == "<=":
            if value < 0:
                return f"whose contract ended {span} ago or earlier"
            return f"whose contract ends within {span} or has ended"
        if value < 0:
            return f"whose contract ended less than {span} ago or is still running"
        return f"whose contract ends in {span} or later"
    if unit == "trend" and trend_words(value) and (value < 0) == (operator == "<="):
        core = label.removeprefix("change of ").removeprefix("the ")
        when = " (last 30 days vs the 2 months before)" if "30d_vs_prev60d" in feature else ""
        return f"with {core} {trend_words(value)} or more{when}"
    if operator == "<=" and value == 0 and unit in ("count", "money", "share", "number"):
        return f"with no {label.removeprefix('number of ')}"
    if operator == ">=" and unit == "share" and value >= 1:
        return f"with {label} at 100 %"
    symbol = "≥" if operator == ">=" else "≤"
    return f"with {label} {symbol} {value_words(value, unit, currency)}"


def _format_number(value: float) -> str:
    if abs(value) >= 100 or float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:.2g}" if abs(value) < 1 else f"{value:.1f}"


def driver_findings(
    contrib: Contributions,
    labels: pd.Series,
    drivers: pd.DataFrame,
    top_n: int,
    currency: str = "",
) -> pd.DataFrame:
    """One plain-language finding per top driver, computed from the data.

    For each driver, the group of customers where it raises risk (by its SHAP values) that
    churns most often relative to the rest is found; the finding gives that ratio, both churn
    rates and the group's share of the base, with the threshold rounded and in the feature's
    unit. A driver with no such group of notable size and lift still gets a line: which way it
    pushes and for how many customers it raises risk.
    """
    rows = []
    y = labels.to_numpy()
    minimum = max(MIN_GROUP_ROWS, int(MIN_GROUP_SHARE * len(y)))
    for feature in drivers["feature"].head(top_n):
        best = None
        spec = _spec(feature)
        for mask, condition in _candidate_groups(
            contrib.features[feature], contrib.values[feature], spec.unit if spec else "number"
        ):
            inside, outside = y[mask], y[~mask]
            if len(inside) < minimum or len(outside) < minimum or outside.mean() == 0:
                continue
            if contrib.values[feature].to_numpy()[mask].mean() <= 0:
                continue
            ratio = inside.mean() / outside.mean()
            if ratio >= MIN_RATIO and (best is None or ratio > best[0]):
                best = (ratio, mask, condition, inside.mean(), outside.mean())
        if best is None:
            rows.append(_direction_finding(contrib, feature))
            continue
        ratio, mask, condition, rate_in, rate_out = best
        rows.append(
            {
                "feature": feature,
                "cause_family": cause_family_of(feature, contrib.causes),
                "condition": f"{feature} {condition}",
                "churn_rate_inside": rate_in,
                "churn_rate_outside": rate_out,
                "ratio": ratio,
                "share_of_base": mask.mean(),
                "finding": (
                    f"Customers {_condition_words(feature, condition, currency)} churn "
                    f"{ratio:.1f}x as often as the rest ({rate_in:.1%} vs {rate_out:.1%}); "
                    f"{mask.mean():.1%} of the base."
                ),
            }
        )
    columns = [
        "feature",
        "cause_family",
        "condition",
        "churn_rate_inside",
        "churn_rate_outside",
        "ratio",
        "share_of_base",
        "finding",
    ]
    return pd.DataFrame(rows, columns=columns)


def _direction_finding(contrib: Contributions, feature: str) -> dict:
    """The line for a top driver with no group that churns notably more: which way it acts."""
    shap = contrib.values[feature]
    raising = float((shap > 0).mean())
    values = pd.to_numeric(contrib.features[feature], errors="coerce")
    valid = values.notna() & shap.notna()
    direction = ""
    if valid.sum() > 2 and values[valid].nunique() > 1:
        correlation = np.corrcoef(values[valid], shap[valid])[0, 1]
        if np.isfinite(correlation) and abs(correlation) >= 0.1:
            direction = "higher values raise it" if correlation > 0 else "lower values raise it"
    label = feature_label(feature)
    how = f"; {direction}" if direction else ""
    return {
        "feature": feature,
        "cause_family": cause_family_of(feature, contrib.causes),
        "condition": "",
        "churn_rate_inside": np.nan,
        "churn_rate_outside": np.nan,
        "ratio": np.nan,
        "share_of_base": raising,
        "finding": (
            f"{label[:1].upper() + label[1:]} raises the churn risk of {raising:.0%} of "
            f"customers{how}; no group of at least {MIN_GROUP_SHARE:.0%} of the base churns "
            f"{MIN_RATIO}x as often as the rest by it alone."
        ),
    }


def _reason_text(feature: str, value, currency: str = "") -> str | None:
    """A registered feature's reason in words; a snapshot column as "column: value"."""
    spec = _spec(feature)
    if spec is not None:
        return spec.reason_text(value, currency)
    if value is None or pd.isna(value):
        return None
    if _is_number(value):
        value = _format_number(float(value))
    return f"{feature.replace('_', ' ')}: {value}"


def _reason_texts(feature: str, cells: np.ndarray, currency: str = "") -> np.ndarray:
    """`_reason_text` of every cell, rendered once per distinct value."""
    memo: dict = {}
    out = np.empty(len(cells), dtype=object)
    for i, value in enumerate(cells):
        try:
            out[i] = memo[value]
        except KeyError:
            out[i] = memo[value] = _reason_text(feature, value, currency)
        except TypeError:  # an unhashable value: no memo
            out[i] = _reason_text(feature, value, currency)
    return out


def _is_number(value) -> bool:
    return isinstance(value, int | float | np.integer | np.floating)


def customer_reasons(contrib: Contributions, top_n: int = 3, currency: str = "") -> pd.DataFrame:
    """Each customer's top churn-raising drivers as plain text, plus the main cause family.

    Only features that raise the customer's risk (positive SHAP) and whose value is a fact worth
    citing are used (a zero count of complaints, a "ended -3 days" are skipped, and the next
    driver takes the slot); a customer with fewer such drivers gets empty trailing reasons.
    """
    values = contrib.values.to_numpy()
    columns = list(contrib.values.columns)
    citable = np.array([_spec(c) is None or _spec(c).reason is not None for c in columns])
    masked = np.where((values > 0) & citable, values, -np.inf)
    # Some candidates are skipped (non-events), so look further down than top_n.
    depth = min(top_n + 6, masked.shape[1])
    order = np.argsort(-masked, axis=1, kind="stable")[:, :depth]
    raising = np.isfinite(np.take_along_axis(masked, order, axis=1))
    n_rows = len(values)
    reasons = np.full((n_rows, top_n), None, dtype=object)
    main_family = np.full(n_rows, None, dtype=object)
    filled = np.zeros(n_rows, dtype=np.int64)
    # Slot by slot, only for the customers still short of reasons, and column by column, so
    # each distinct value of a feature is put into words once (texts repeat a lot).
    for slot in range(depth):
        open_rows = np.flatnonzero(raising[:, slot] & (filled < top_n))
        if not len(open_rows):
            break
        slot_columns = order[open_rows, slot]
        for j in np.unique(slot_columns):
            rows = open_rows[slot_columns == j]
            feature = columns[j]
            cells = contrib.features[feature].iloc[rows].to_numpy(object)
            texts = _reason_texts(feature, cells, currency)
            cited = np.array([t is not None for t in texts], dtype=bool)
            rows, texts = rows[cited], texts[cited]
            if not len(rows):
                continue
            reasons[rows, filled[rows]] = texts
            first = rows[filled[rows] == 0]
            main_family[first] = cause_family_of(feature, contrib.causes)
            filled[rows] += 1
    out = pd.DataFrame(
        reasons, columns=[f"reason_{k + 1}" for k in range(top_n)], index=contrib.values.index
    )
    out["main_cause"] = main_family
    return out


def segment_drivers(
    contrib: Contributions,
    labels: pd.Series,
    segments: pd.DataFrame,
    top_n: int = 3,
    main_causes: pd.Series | None = None,
) -> pd.DataFrame:
    """Per segment value: size, churn rate, its most common main cause and top drivers.

    The top cause is the one most customers of the segment have as their first reason (when
    `main_causes` is given), so a family with many features does not win by summing.
    """
    rows = []
    causes = main_causes.to_numpy() if main_causes is not None else None
    y = labels.to_numpy()
    abs_values = contrib.values.abs()
    family_abs = cause_family_contributions(contrib).abs()
    for column in segments.columns:
        keys = segments[column].astype(str).fillna("missing").to_numpy()
        for value in pd.unique(keys):
            mask = keys == value
            ranked = abs_values[mask].mean().sort_values(ascending=False)
            families = family_abs[mask].mean().sort_values(ascending=False)
            top_cause, top_share = families.index[0], np.nan
            if causes is not None:
                counts = pd.Series(causes[mask]).dropna().value_counts()
                if len(counts):
                    top_cause, top_share = counts.index[0], counts.iloc[0] / mask.sum()
            rows.append(
                {
                    "segment": column,
                    "value": value,
                    "rows": int(mask.sum()),
                    "share_of_base": mask.mean(),
                    "churn_rate": y[mask].mean(),
                    "top_cause": cause_label(top_cause),
                    "top_cause_share": top_share,
                    "top_drivers": ", ".join(ranked.index[:top_n]),
                }
            )
    return pd.DataFrame(rows)


def driver_change(families: pd.DataFrame, champion_families: pd.DataFrame) -> pd.DataFrame:
    """Cause-family shares now vs in the champion's report: what rose, what fell."""
    now = families.set_index("cause_family")["share_of_total"]
    before = champion_families.set_index("cause_family")["share_of_total"]
    table = pd.concat({"share_now": now, "share_champion": before}, axis=1).fillna(0.0)
    table["change_points"] = (table["share_now"] - table["share_champion"]) * 100
    table["direction"] = np.select(
        [table["change_points"] >= 1, table["change_points"] <= -1], ["rose", "fell"], "steady"
    )
    table.insert(0, "cause", [cause_label(f) for f in table.index])
    return table.sort_values("change_points", ascending=False).reset_index(names="cause_family")
