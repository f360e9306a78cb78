"""The Spark session the jobs use, and file-system moves through Hadoop's FileSystem API (the
same code for local paths, HDFS, S3 and ABFS)."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import TYPE_CHECKING

from churnml.spark import require_pyspark

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from churnml.config import SparkConfig

log = logging.getLogger(__name__)

# Settings every churnml session runs with, whatever the cluster's defaults: the features'
# stamps are naive UTC (docs/data-contract.md), so the session's zone must be UTC.
REQUIRED_CONF = {"spark.sql.session.timeZone": "UTC"}


def quiet_pandas_warning() -> None:
    """pyspark 4.3 warns on every pandas conversion that it does not fully support pandas 3;
    the conversions churnml uses (arrow toPandas, createDataFrame, mapInPandas) are covered by
    the parity tests, so the warning is noise in the job log."""
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")


def spark_session(settings: SparkConfig | None = None) -> SparkSession:
    """The active Spark session (spark-submit, Databricks, a notebook), or a new one built from
    `settings` (`spark.master`, `spark.conf`). Local mode when no master is set anywhere."""
    require_pyspark()
    from pyspark.sql import SparkSession

    quiet_pandas_warning()
    active = SparkSession.getActiveSession()
    if active is None:
        builder = SparkSession.builder.appName(settings.app_name if settings else "churnml")
        master = settings.master if settings else None
        if master:
            builder = builder.master(master)
        # No master anywhere: pyspark's launcher runs local[*]. Under spark-submit the JVM
        # starts first (PYSPARK_GATEWAY_PORT is set) and its master and Python settings win.
        submitted = "PYSPARK_GATEWAY_PORT" in os.environ
        if not submitted and (master or "local").startswith("local"):
            # Python workers run this interpreter (the project's venv), not the system python.
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        for key, value in (settings.conf if settings else {}).items():
            builder = builder.config(key, str(value))
        for key, value in REQUIRED_CONF.items():
            builder = builder.config(key, value)
        active = builder.getOrCreate()
        log.info("Spark %s session, master %s", active.version, active.sparkContext.master)
    for key, value in REQUIRED_CONF.items():
        active.conf.set(key, value)
    return active


def _fs(spark: SparkSession, path: str):
    jvm = spark.sparkContext._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    return hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), hadoop_path


def path_exists(spark: SparkSession, path: str) -> bool:
    fs, p = _fs(spark, path)
    return bool(fs.exists(p))


def is_file(spark: SparkSession, path: str) -> bool:
    fs, p = _fs(spark, path)
    return bool(fs.exists(p) and fs.getFileStatus(p).isFile())


def remove(spark: SparkSession, path: str) -> None:
    fs, p = _fs(spark, path)
    if fs.exists(p):
        fs.delete(p, True)


def make_dirs(spark: SparkSession, path: str) -> None:
    fs, p = _fs(spark, path)
    fs.mkdirs(p)


def rename(spark: SparkSession, source: str, target: str) -> None:
    """Move `source` to `target` (which must not exist); fails loudly, never half-way."""
    fs, src = _fs(spark, source)
    _, dst = _fs(spark, target)
    if not fs.rename(src, dst):
        raise OSError(f"could not move {source} to {target}")


def write_text(spark: SparkSession, path: str, text: str) -> None:
    """Write a small text file (the contact list, monitoring.json) on any Hadoop file system."""
    fs, p = _fs(spark, path)
    fs.setWriteChecksum(False)  # no .crc files beside the published files on local disk
    stream = fs.create(p, True)
    try:
        data = text.encode("utf-8")
        stream.write(bytearray(data))
    finally:
        stream.close()


def read_text(spark: SparkSession, path: str) -> str:
    """A small text file (manifest.json) from any file system Spark reads."""
    return spark.read.text(path, wholetext=True).first()[0]
