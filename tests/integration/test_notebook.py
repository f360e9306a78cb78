"""The analyst notebook runs top to bottom against a real MLflow store."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow
NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "loss_drivers.ipynb"


def test_committed_notebook_has_no_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None


def test_loss_driver_notebook_executes(trained_project: Path, monkeypatch, tmp_path: Path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{trained_project / 'mlflow.db'}")
    monkeypatch.delenv("CHURNML_RUN_ID", raising=False)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    text = "\n".join(
        output.get("text", "") for cell in notebook.cells for output in cell.get("outputs", [])
    )
    assert "run " in text
    assert any("Customers " in line for line in text.splitlines()), text[-3000:]
