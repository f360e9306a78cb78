"""Run a `churnml` command the way a scheduler does: a child process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_pipeline(
    job: str,
    overrides: list[str],
    cwd: Path,
    timeout: int,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """`churnml <job>` with Hydra overrides, without the caller's MLFLOW_TRACKING_URI (so
    the configured store under `paths.root_dir` is the one used); `env` adds variables (TZ)."""
    return subprocess.run(
        [sys.executable, "-m", "churnml", job, *overrides],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env={**{k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}, **(env or {})},
    )
