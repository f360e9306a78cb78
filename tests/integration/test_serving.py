"""The champion served over HTTP by `mlflow models serve`, and what loading it imports."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from churnml.config import compose_config
from churnml.tracking import SERVING_REQUIREMENTS, load_registered_model

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
# Distributions whose import names differ from their names.
IMPORT_NAMES = {"scikit-learn": "sklearn"}
TRAINING_ONLY = ("hydra", "matplotlib", "shap", "great_expectations", "optuna")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _feature_rows(root: Path, n: int = 5):
    cfg = compose_config("train", [f"paths.root_dir={root}", "data.name=tiny"])
    model, _, _ = load_registered_model(cfg.tracking)
    rows = model.spec.as_model_input(model.reference.head(n))
    return cfg, model, rows


def test_loading_and_predicting_imports_only_the_pinned_requirements(
    trained_project: Path, tmp_path: Path
):
    cfg, _, rows = _feature_rows(trained_project)
    rows_path = tmp_path / "rows.parquet"
    rows.to_parquet(rows_path)
    script = f"""
import sys, json, mlflow, pandas as pd
mlflow.set_tracking_uri({cfg.tracking.tracking_uri!r})
model = mlflow.pyfunc.load_model("models:/churnml_tiny@champion")
rows = pd.read_parquet(sys.argv[1])
out = model.predict(rows)
print(json.dumps({{"columns": list(out.columns), "modules": sorted(sys.modules)}}))
"""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    done = subprocess.run(
        [sys.executable, "-c", script, str(rows_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=trained_project,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["columns"][:2] == ["churn_probability", "risk_band"]
    assert {"reason_1", "reason_2", "reason_3"} <= set(result["columns"])
    top_level = {m.split(".")[0] for m in result["modules"]}
    assert not top_level & set(TRAINING_ONLY)
    pinned = {IMPORT_NAMES.get(name, name) for name in SERVING_REQUIREMENTS}
    heavy = {"duckdb", "lightgbm", "sklearn", "scipy", "numba", "pyarrow", "omegaconf"}
    assert top_level & heavy <= pinned


def test_served_champion_answers_probability_band_and_reasons(trained_project: Path):
    cfg, model, rows = _feature_rows(trained_project)
    port = _free_port()
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": cfg.tracking.tracking_uri,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    log_path = trained_project / "serve.log"
    with open(log_path, "w") as log_file:
        server = subprocess.Popen(
            [
                str(BIN / "mlflow"),
                "models",
                "serve",
                "-m",
                "models:/churnml_tiny@champion",
                "--env-manager",
                "local",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=trained_project,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.time() + 180
            while time.time() < deadline:
                try:
                    with urllib.request.urlopen(f"{url}/ping", timeout=2):
                        break
                except OSError:
                    if server.poll() is not None:
                        pytest.fail(log_path.read_text()[-3000:])
                    time.sleep(1)
            else:
                pytest.fail("model server did not start: " + log_path.read_text()[-3000:])
            body = json.dumps({"dataframe_split": json.loads(rows.to_json(orient="split"))})
            request = urllib.request.Request(
                f"{url}/invocations",
                data=body.encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=60) as response:
                answer = json.loads(response.read())
        finally:
            server.terminate()
            server.wait(timeout=30)
    predictions = answer["predictions"]
    assert len(predictions) == len(rows)
    expected = model.predict_proba(rows)
    for row, p in zip(predictions, expected, strict=True):
        assert row["churn_probability"] == pytest.approx(p, rel=1e-9)
        assert row["risk_band"].startswith("R") and len(row["risk_band"]) == 3
        assert row["reason_1"]
