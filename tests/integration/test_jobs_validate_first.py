"""Every job that reads the raw tables checks them first: `churnml lost`, `review` and `uplift`
stop on broken input with the validator's message (exit 2) before they write anything."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_dataset import BROKEN_RULES, write_tiny_dataset

from churnml.config import compose_config
from churnml.lost_job import run_lost
from churnml.review import run_review
from churnml.uplift import run_uplift
from churnml.validation import ContractViolation

BREAK = "calls.customer_id.present_in_customers"


@pytest.fixture(scope="module")
def broken_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = write_tiny_dataset(tmp_path_factory.mktemp("broken") / "tiny")
    next(b for b in BROKEN_RULES if b.id == BREAK).mutate(path)
    return path


@pytest.mark.parametrize(
    ("job", "run"), [("lost", run_lost), ("review", run_review), ("uplift", run_uplift)]
)
def test_job_refuses_broken_input_before_writing(
    job: str, run, broken_dataset: Path, tmp_path: Path
) -> None:
    cfg = compose_config(
        job,
        [
            f"paths.root_dir={tmp_path}",
            f"run_dir={tmp_path}/logs/{job}",
            f"data.path={broken_dataset}",
            "data.name=tiny",
        ],
    )
    with pytest.raises(ContractViolation) as caught:
        run(cfg)
    failures = [(f.table, f.column, f.rule) for f in caught.value.report.failures]
    assert ("calls", "customer_id", "present in customers") in failures
    written = {p.relative_to(tmp_path).parts[0] for p in tmp_path.rglob("*") if p.is_file()}
    assert written <= {"logs"}, written  # no MLflow store, no outputs; only the run's log folder
