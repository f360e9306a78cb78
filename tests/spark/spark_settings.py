"""The local Spark settings of the tests (one session for the whole test session)."""

from __future__ import annotations

from churnml.config import SparkConfig

# Small shuffles and no UI: the tests' tables hold thousands of rows, not millions. The status
# store keeps every SQL execution's plan, and a feature build's plan text is large: hundreds
# of them filled a 2 GB heap (the JVM spent 40 % of a test session in full GCs), so it keeps
# only the last few.
TEST_SPARK = SparkConfig(
    master="local[2]",
    app_name="churnml-tests",
    conf={
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.shuffle.partitions": "2",
        "spark.default.parallelism": "2",
        "spark.sql.adaptive.coalescePartitions.enabled": "true",
        "spark.driver.memory": "2g",
        "spark.sql.ui.retainedExecutions": "5",
        "spark.ui.retainedJobs": "20",
        "spark.ui.retainedStages": "20",
        "spark.ui.retainedTasks": "200",
        "spark.ui.dagGraph.retainedRootRDDs": "20",
        "spark.sql.maxPlanStringLength": "10000",
    },
)
