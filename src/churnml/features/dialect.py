"""The engine-specific SQL of the feature library: one `Dialect` per engine.

The families' SQL (features/*.py) is the one source of truth. It is written in the SQL that
DuckDB and Spark SQL share (ANSI aggregates with FILTER, CASE, window functions, `max_by`,
`greatest`, `nullif`, ANSI intervals and timestamp literals); the few constructs the two engines
spell or compute differently go through these methods. `SparkDialect` (churnml.spark.features)
overrides them; docs/spark.md says why this was chosen over transpiling with sqlglot.
"""

from __future__ import annotations

import pandas as pd


class Dialect:
    """DuckDB's spelling (the default engine)."""

    name = "duckdb"

    def seconds_between(self, start: str, end: str) -> str:
        """Seconds from `start` to `end` as DOUBLE (fractions of a second kept)."""
        return f"(epoch({end}) - epoch({start}))"

    def hour(self, ts: str) -> str:
        return f"hour({ts})"

    def is_weekend(self, ts: str) -> str:
        return f"(isodow({ts}) >= 6)"

    def minus_days(self, ts: str, days: int) -> str:
        return f"({ts} - INTERVAL '{int(days)}' DAY)"  # ANSI, Spark too

    def timestamp(self, value: pd.Timestamp) -> str:
        return f"TIMESTAMP '{pd.Timestamp(value).isoformat(sep=' ')}'"

    def year(self, ts: str) -> str:
        return f"year({ts})"

    def materialized(self) -> str:
        """CTE hint: compute a CTE used several times once."""
        return "MATERIALIZED "

    def hash64(self, value: str) -> str:
        """A 64-bit hash: grouping and joining on it beats doing so on strings (collisions
        between two ids have a probability around 1e-19 per pair)."""
        return f"hash({value})"

    def text_type(self) -> str:
        """The type name of text in a CAST."""
        return "VARCHAR"

    def last_value_ignore_nulls(self, expr: str) -> str:
        """The last non-null value of a window frame (followed by OVER (...))."""
        return f"last_value({expr} IGNORE NULLS)"

    def quantile(self, expr: str, q: float) -> str:
        """The exact quantile `q` of a group, interpolated between the two nearest values."""
        return f"quantile_cont({expr}, {float(q)!r})"

    def feature_value(self, expr: str) -> str:
        """A numeric feature as the engine's output holds it: NaN for missing (numpy arrays
        come out without masks; rounding happens in `engine._to_frame`)."""
        return f"coalesce(CAST({expr} AS DOUBLE), CAST('NaN' AS DOUBLE))"

    def finalize(self, sql: str) -> str:
        """The statement as the engine runs it (DuckDB: as written)."""
        return sql
