"""Apache Spark engine: the feature families' SQL, training samples and batch scoring on Spark.

Optional: install with `pip install churnml[spark]` (pyspark, and a Java 17+ runtime). The
modules import pyspark when used, so the DuckDB engine never needs it. See docs/spark.md.
"""

from __future__ import annotations


def require_pyspark():
    """The pyspark module, or a clear error saying how to install it."""
    try:
        import pyspark
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "the Spark engine needs pyspark: pip install 'churnml[spark]' (and a Java 17+ runtime)"
        ) from error
    return pyspark
