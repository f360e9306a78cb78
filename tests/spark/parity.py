"""Comparing the two engines' outputs: equal within 1e-9 with the same null pattern."""

from __future__ import annotations

import numpy as np
import pandas as pd

TOLERANCE = 1e-9


def _text(values: pd.Series) -> list:
    return [None if pd.isna(v) else str(v) for v in values.astype(object)]


def feature_differences(duck: pd.DataFrame, spark: pd.DataFrame) -> list[str]:
    """One line per column that differs (values, nulls, kind or presence)."""
    problems = []
    if list(duck.columns) != list(spark.columns):
        return [f"columns differ: {sorted(set(duck.columns) ^ set(spark.columns))}"]
    if len(duck) != len(spark):
        return [f"rows differ: {len(duck)} vs {len(spark)}"]
    for column in duck.columns:
        a, b = duck[column], spark[column]
        categorical = isinstance(a.dtype, pd.CategoricalDtype) or a.dtype == object
        if categorical or column in ("customer_id", "cutoff"):
            x, y = _text(a), _text(b)
            if x != y:
                rows = [i for i in range(len(x)) if x[i] != y[i]]
                problems.append(f"{column}: {len(rows)} rows differ, e.g. row {rows[0]}")
            continue
        x, y = a.to_numpy(float), b.to_numpy(float)
        nulls = np.isnan(x) != np.isnan(y)
        far = ~np.isnan(x) & ~np.isnan(y) & (np.abs(x - y) > TOLERANCE)
        if nulls.any() or far.any():
            i = int(np.flatnonzero(nulls | far)[0])
            problems.append(
                f"{column}: {int(nulls.sum())} null mismatches, {int(far.sum())} values off "
                f"by > {TOLERANCE}, e.g. row {i}: duckdb {x[i]!r} spark {y[i]!r}"
            )
    return problems
