"""Sums of non-integers are exact (registry.exact_sum): features do not depend on the order in
which an engine adds rows up, so DuckDB re-runs and Spark give the same bits."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from tiny_dataset import BOUNDARY_CUTOFF, write_boundary_dataset

from churnml.features import FeatureParams, build_features
from churnml.features.registry import exact_sum

# Two row orders whose plain float sums round the data trend to different sides of the 6th
# decimal (0.132812 and 0.132813 with single-threaded DuckDB before sums were exact).
ORDERS = {
    "forward": list(range(22)),
    "shuffled": [21, 11, 10, 18, 20, 14, 17, 5, 19, 13, 16, 8, 6, 0, 1, 2, 4, 15, 12, 3, 9, 7],
}


def test_features_at_a_rounding_boundary_do_not_depend_on_row_order(tmp_path: Path) -> None:
    params = FeatureParams(families=["calls"], duckdb_threads=1)  # one thread: sums in row order
    spine = pd.DataFrame({"customer_id": ["X1"], "cutoff": [BOUNDARY_CUTOFF]})
    frames = {
        name: build_features(write_boundary_dataset(tmp_path / name, order), spine, params)
        for name, order in ORDERS.items()
    }
    a, b = frames.values()
    numeric = [c for c in a.columns if a[c].dtype.kind == "f"]
    assert len(numeric) > 30
    assert [c for c in numeric if not np.array_equal(a[c], b[c], equal_nan=True)] == []
    # The exact sums (304.50 and 466.20 MB) and the exact trend 17/128, unrounded.
    assert a["data_mb_30d"].iloc[0] == 304.5
    assert a["data_mb_trend_30d_vs_prev60d"].iloc[0] == 0.1328125


def test_exact_sum_is_the_same_in_any_order() -> None:
    """Cents that a plain float sum adds up differently forwards and backwards."""
    values = [0.1, 0.2, 0.3, 1e6 + 0.01, -1e6, 0.07, 19.99, 5.55]
    forward, backward = 0.0, 0.0
    for v in values:
        forward += v
    for v in reversed(values):
        backward += v
    assert forward != backward  # the premise: order matters for a plain sum
    con = duckdb.connect()
    sums = []
    for order in (values, values[::-1]):
        rows = ", ".join(f"({i}, {v!r})" for i, v in enumerate(order))
        sql = f"SELECT {exact_sum('x')} FROM (SELECT x FROM (VALUES {rows}) t(i, x) ORDER BY i)"
        sums.append(con.execute(sql).fetchone()[0])
    assert sums[0] == sums[1] == 26.22
