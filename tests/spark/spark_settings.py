"""The local Spark settings of the tests (one session for the whole test session)."""

from __future__ import annotations

from churnml.config import SparkConfig

# Small shuffles and no UI: the tests' tables hold thousands of rows, not millions.
TEST_SPARK = SparkConfig(
    master="local[2]",
    app_name="churnml-tests",
    conf={
        "spark.ui.enabled": "false",
        "spark.sql.shuffle.partitions": "2",
        "spark.default.parallelism": "2",
        "spark.sql.adaptive.coalescePartitions.enabled": "true",
        "spark.driver.memory": "2g",
        "spark.ui.showConsoleProgress": "false",
    },
)
