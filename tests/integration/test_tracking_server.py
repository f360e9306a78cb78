"""Training against a real MLflow tracking server (started on 127.0.0.1 for the test)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow import MlflowClient

from churnml.jobs import run_training

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def tracking_server(tmp_path: Path):
    port = _free_port()
    mlflow_cli = Path(sys.executable).with_name("mlflow")
    log_file = open(tmp_path / "server.log", "w")  # noqa: SIM115 - the server writes it
    server = subprocess.Popen(
        [
            str(mlflow_cli),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'server.db'}",
            "--artifacts-destination",
            str(tmp_path / "server_artifacts"),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log_file,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            time.sleep(0.5)
    else:
        server.kill()
        pytest.fail("mlflow server did not start: " + (tmp_path / "server.log").read_text()[-2000:])
    yield url, tmp_path
    server.terminate()
    server.wait(timeout=30)
    log_file.close()


def test_training_logs_and_registers_on_a_tracking_server(
    tracking_server, tiny_dataset, make_train_config, monkeypatch
):
    url, server_dir = tracking_server
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)  # wins over the configured SQLite store
    cfg = make_train_config(tiny_dataset, "explain.max_rows=500")
    result = run_training(cfg)
    client = MlflowClient(tracking_uri=url)
    assert client.get_run(result.run_id).data.metrics["test_roc_auc"] > 0.5
    assert str(client.get_model_version_by_alias("churnml_test", "champion").version) == (
        result.model_version
    )
    assert not (Path(cfg.paths.root_dir) / "mlflow.db").exists()
    assert any((server_dir / "server_artifacts").rglob("MLmodel"))
    assert os.environ["MLFLOW_TRACKING_URI"] == url
