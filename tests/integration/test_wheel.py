"""churnml as a user installs it: a wheel in a fresh virtual environment, run outside the checkout.

The wheel must carry its configs (Hydra `pkg://churnml.conf`) and the console script; outputs go
under the folder the command runs in. The new environment borrows the project's installed
dependencies (a path file) so the test needs no package index, but churnml itself comes only
from the wheel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PURELIB = "import sysconfig; print(sysconfig.get_paths()['purelib'])"


def _run(command: list[str], cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "PYTHONPATH")}
    done = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )
    assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


# Top-level folders of a working checkout that are no part of the package's sources.
CHECKOUT_ONLY = {".git", ".venv", "data", "logs", "mlruns", "reports", "build", "dist"}


def _project_outputs(folder: str, names: list[str]) -> set[str]:
    """copytree filter: leave out the checkout's own outputs, at the top level only."""
    if Path(folder) != ROOT:
        return {n for n in names if n == "__pycache__" or n.endswith(".egg-info")}
    return {n for n in names if n in CHECKOUT_ONLY or n == "mlflow.db" or n.endswith(".egg-info")}


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory) -> Path:
    """A fresh venv with the churnml wheel installed; returns its bin folder."""
    tmp = tmp_path_factory.mktemp("wheel")
    # Built from a copy: setuptools writes build/ and egg-info beside the sources.
    source = tmp / "source"
    shutil.copytree(ROOT, source, ignore=_project_outputs)
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp),
            str(source),
        ],
        cwd=tmp,
    )
    wheel = next(tmp.glob("churnml-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {n for n in names if n.startswith("churnml/conf/") and n.endswith(".yaml")}
    in_checkout = {
        f"churnml/{p.relative_to(ROOT / 'src' / 'churnml').as_posix()}"
        for p in (ROOT / "src" / "churnml" / "conf").rglob("*.yaml")
    }
    assert shipped == in_checkout
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp)
    site = Path(
        subprocess.check_output(
            [
                str(venv / "bin" / "python"),
                "-c",
                "import sysconfig; print(sysconfig.get_paths()['purelib'])",
            ],
            text=True,
        ).strip()
    )
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        cwd=tmp,
    )
    # Dependencies from the project's environment, after the venv's own site-packages.
    (site / "_churnml_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv / "bin"


def test_wheel_trains_and_scores_outside_the_checkout(installed_wheel: Path, tmp_path: Path):
    work = tmp_path / "elsewhere"
    work.mkdir()
    located = _run(
        [str(installed_wheel / "python"), "-c", "import churnml; print(churnml.__file__)"],
        cwd=work,
    )
    assert str(installed_wheel.parent) in located.stdout  # not the checkout's src/
    churnml = str(installed_wheel / "churnml")
    _run(
        [churnml, "simulate", "simulate=tiny", "simulate.n_months=12", "simulate.n_customers=1500"],
        cwd=work,
    )
    dataset = work / "data" / "raw" / "telco_tiny"
    assert (dataset / "manifest.json").exists()
    trained = _run(
        [churnml, "train", f"data.path={dataset}", "explain.max_rows=500"],
        cwd=work,
    )
    assert "churnml_telco_tiny v1" in trained.stdout
    scored = _run([churnml, "score", f"data.path={dataset}"], cwd=work)
    assert "Scored" in scored.stdout
    assert list((work / "data" / "scores").rglob("scores.parquet"))
    assert (work / "mlflow.db").exists() and (work / "reports" / "loss_drivers.html").exists()
