"""The feature registry: one declarative entry per feature, the single source for SHAP grouping,
reason texts and `docs/features.md`.

Each family module declares its features with `FamilyBuilder`: a name, a plain-words
description, the source table and window, the cause family, a reason template, the SQL
expression computing it from the family's aggregates ("measures") and the value a customer
with no events gets. The raw columns a feature needs are derived from the measures it uses,
so a missing optional column drops exactly the features that need it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from churnml.contract import CAUSE_FAMILIES
from churnml.features.params import FAMILY_NAMES, FeatureParams
from churnml.features.reasons import (
    SIGNALS,
    UNITS,
    infer_signal,
    infer_unit,
    render_reason,
    style_for,
)

KINDS = ("numeric", "categorical")


@dataclass(frozen=True)
class FeatureSpec:
    """What one feature measures, where it comes from and how to cite it."""

    name: str
    description: str
    table: str
    window_days: int | None
    cause_family: str
    kind: str = "numeric"
    # Plain-words template for per-customer reasons: {value}, {pct} (value x 100) and {trend}
    # (a symmetric change in words, "down 71 %"); None: never cited as a reason.
    reason: str | None = None
    requires: tuple[str, ...] = ()
    # How the reason reads (features/reasons.py): the value's unit, whether more (`high`) or
    # less (`low`) is riskier, the text for a zero that is itself the signal ("no calls in 30
    # days"), for a missing value that is ("no contract"), and words for categorical codes.
    unit: str = "number"
    signal: str = "high"
    zero_reason: str | None = None
    null_reason: str | None = None
    labels: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.cause_family not in CAUSE_FAMILIES:
            raise ValueError(f"feature {self.name}: unknown cause family {self.cause_family!r}")
        if self.kind not in KINDS:
            raise ValueError(f"feature {self.name}: kind must be one of {KINDS}")
        if self.unit not in UNITS:
            raise ValueError(f"feature {self.name}: unit must be one of {UNITS}")
        if self.signal not in SIGNALS:
            raise ValueError(f"feature {self.name}: signal must be one of {SIGNALS}")

    def reason_text(self, value: object, currency: str = "") -> str | None:
        """This feature's reason for one customer's value; None when it is not worth citing."""
        return render_reason(
            self.reason,
            value,
            unit=self.unit,
            signal=self.signal,
            zero=self.zero_reason,
            null=self.null_reason,
            labels=dict(self.labels),
            currency=currency,
        )


@dataclass(frozen=True)
class Measure:
    """One aggregate over a family's event rows, and the raw columns (`table.column`) it reads."""

    sql: str
    requires: tuple[str, ...]


@dataclass(frozen=True)
class FeatureDef:
    """A registry entry: the public spec plus how the engine computes it.

    `fill` is the no-event rule: the value for a (customer, cutoff) with no rows in the
    family's table (0.0 for counts and sums, None = null for rates, shares, means, days since).
    """

    spec: FeatureSpec
    family: str
    expr: str
    fill: float | None = 0.0
    measures: tuple[str, ...] = ()
    needs_features: tuple[str, ...] = ()


_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass
class FamilyBuilder:
    """Collects a family's feature definitions against its measures."""

    family: str
    table: str
    measures: dict[str, Measure]
    defs: list[FeatureDef] = field(default_factory=list)

    def add(
        self,
        name: str,
        description: str,
        cause_family: str,
        expr: str,
        *,
        window_days: int | None = None,
        reason: str | None = None,
        fill: float | None = 0.0,
        kind: str = "numeric",
        table: str | None = None,
        requires: tuple[str, ...] = (),
        needs_features: tuple[str, ...] = (),
        unit: str | None = None,
        signal: str | None = None,
        reason_zero: str | None = None,
        reason_null: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> None:
        """Declare one feature; unset reason metadata comes from `reasons.STYLES`, else is
        inferred from the template (so a new feature usually needs only its template)."""
        used = tuple(dict.fromkeys(t for t in _TOKEN.findall(expr) if t in self.measures))
        req = set(requires)
        for m in used:
            req.update(self.measures[m].requires)
        style = style_for(name)
        if reason is not None and style.template is not None:
            reason = style.template
        unit = unit or style.unit or infer_unit(reason, kind)
        spec = FeatureSpec(
            name=name,
            description=description,
            table=table or self.table,
            window_days=window_days,
            cause_family=cause_family,
            kind=kind,
            reason=reason,
            requires=tuple(sorted(req)),
            unit=unit,
            signal=signal or style.signal or infer_signal(cause_family, unit),
            zero_reason=reason_zero or style.zero,
            null_reason=reason_null or style.null,
            labels=tuple(sorted((labels or style.labels).items())),
        )
        self.defs.append(FeatureDef(spec, self.family, expr, fill, used, needs_features))


def within(days: int) -> str:
    """Row condition: the event lies in the last `days` days before the cutoff."""
    return f"age_s <= {int(days) * 86400}"


def prev60() -> str:
    """Row condition: the event lies in the 60 days before the last 30."""
    return f"age_s > {30 * 86400} AND age_s <= {90 * 86400}"


def cond_sum(cond: str, value: str = "1") -> str:
    """A conditional aggregate: one pass computes every window (no per-window scans).

    0 (not null) when no row matches. FILTER is ANSI SQL:2003 (DuckDB, Spark 3, Postgres).
    """
    if value == "1":
        return f"count(*) FILTER (WHERE {cond})"
    return f"coalesce(sum({value}) FILTER (WHERE {cond}), 0)"


# Non-integer values (money, megabytes, fractional seconds) are summed as whole numbers of
# millionths: integers below 2**53 add up exactly in DOUBLE and BIGINT, so a sum is the same
# bits in any order, on any engine and any run (floats summed as they are differ in the last
# bits with the order, and a result on a rounding boundary then differs visibly). Values with
# at most 6 decimals are summed without loss; finer ones are first rounded to 1e-6.
EXACT_UNIT = 1_000_000


def fixed(value: str) -> str:
    """A non-integer value as a whole number of millionths (floor(x * 1e6 + 0.5): the same
    IEEE operations on every engine)."""
    return f"floor({value} * {EXACT_UNIT}.0 + 0.5)"


def exact_sum(value: str, cond: str | None = None) -> str:
    """sum(value) (FILTER (WHERE cond)), exact and independent of the summation order; NULL
    when no row has a value, as sum()."""
    where = f" FILTER (WHERE {cond})" if cond else ""
    return f"(sum({fixed(value)}){where} / {EXACT_UNIT}.0)"


def slug(value: str) -> str:
    """An identifier-safe lower-case form of a category value (for feature names)."""
    out = re.sub(r"[^0-9a-z]+", "_", str(value).lower()).strip("_")
    return out or "unknown"


def feature_definitions(params: FeatureParams | None = None) -> list[FeatureDef]:
    """Every feature definition for these params, in registry order."""
    from churnml.features import account, arrears, calls, complaints, transfers

    params = params or FeatureParams()
    modules = {
        "calls": calls,
        "transfers": transfers,
        "complaints": complaints,
        "arrears": arrears,
        "account": account,
    }
    defs: list[FeatureDef] = []
    for family in FAMILY_NAMES:
        defs.extend(modules[family].definitions(params))
    return defs


def feature_specs(params: FeatureParams | None = None) -> tuple[FeatureSpec, ...]:
    """The public specs for these params (windows and competitors change the list)."""
    return tuple(d.spec for d in feature_definitions(params))


FEATURES: tuple[FeatureSpec, ...] = feature_specs()
_BY_NAME = {s.name: s for s in FEATURES}


def feature_spec(name: str, params: FeatureParams | None = None) -> FeatureSpec:
    """The spec of one feature by name (KeyError when unknown)."""
    if params is None and name in _BY_NAME:
        return _BY_NAME[name]
    for spec in feature_specs(params):
        if spec.name == name:
            return spec
    raise KeyError(f"no feature named {name!r} in the registry")
