"""The local Spark settings of the tests (one session for the whole test session)."""

from __future__ import annotations

from churnml.config import SparkConfig

# Small shuffles and no UI: the tests' tables hold thousands of rows, not millions. The status
# store keeps only the last few SQL executions (a feature build's plans are large). A 2 GB
# driver spent 40 % of a session in full GCs by the second scoring run (the old generation
# held over 1.5 GB of long[] pages it could not free): 4 GB.
TEST_SPARK = SparkConfig(
    master="local[2]",
    app_name="churnml-tests",
    conf={
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.shuffle.partitions": "2",
        "spark.default.parallelism": "2",
        "spark.sql.adaptive.coalescePartitions.enabled": "true",
        "spark.driver.memory": "4g",
        "spark.sql.ui.retainedExecutions": "5",
        "spark.ui.retainedJobs": "20",
        "spark.ui.retainedStages": "20",
        "spark.ui.retainedTasks": "200",
        "spark.ui.dagGraph.retainedRootRDDs": "20",
        "spark.sql.maxPlanStringLength": "10000",
    },
)
