"""The feature library: declarative feature specs per cause family, computed with DuckDB.

Public API: `build_features`, `FEATURES`, `FeatureSpec`, `CAUSE_FAMILIES`, `feature_spec`,
`FeatureParams`, `resolve_feature_params` (fills the data-dependent settings once, at training
time; see docs/features.md for every feature and the documented rules).
"""

from churnml.features.engine import build_features
from churnml.features.params import FAMILY_NAMES, FeatureParams
from churnml.features.registry import (
    CAUSE_FAMILIES,
    FEATURES,
    FeatureSpec,
    feature_definitions,
    feature_spec,
    feature_specs,
)
from churnml.features.resolve import resolve_feature_params

__all__ = [
    "CAUSE_FAMILIES",
    "FAMILY_NAMES",
    "FEATURES",
    "FeatureParams",
    "FeatureSpec",
    "build_features",
    "feature_definitions",
    "feature_spec",
    "feature_specs",
    "resolve_feature_params",
]
