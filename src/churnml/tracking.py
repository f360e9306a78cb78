"""Every MLflow call of the project: runs, parameters, metrics, artifacts, models, registry.

The tracking URI comes from MLFLOW_TRACKING_URI when it is set, else from the config (an embedded
SQLite store in the project folder by default).
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import pickle
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd
import requests
from hydra.experimental.callback import Callback
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from omegaconf import DictConfig, OmegaConf

import churnml
from churnml.config import TrackingConfig
from churnml.errors import TrackingUnavailableError
from churnml.model import ChurnModel
from churnml.serving import ChurnModelPyfunc
from churnml.settings import apply_tracking_timeouts

log = logging.getLogger(__name__)

MODEL_ARTIFACT = "model"
MAX_PARAM_LENGTH = 6000
# MLflow 3 opens an experiment on its GenAI overview unless told it holds model training.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
# What loading and serving a registered model imports (tests/test_serving.py checks this list
# against the modules a served prediction really loads); pinned to the versions trained with.
SERVING_REQUIREMENTS = (
    "mlflow",
    "lightgbm",
    "scikit-learn",
    "scipy",
    "pandas",
    "numpy",
    "numba",
    "omegaconf",
    "duckdb",
    "pyarrow",
    "tqdm",
)

# Models registered before churnml 0.2 pickled the wrapper under this name.
ChurnPyfunc = ChurnModelPyfunc


class NoChampionError(LookupError):
    """The registry has no usable model version under the requested alias or number."""


def resolve_tracking_uri(tracking: TrackingConfig) -> str:
    """MLFLOW_TRACKING_URI wins over the configured default."""
    return os.environ.get("MLFLOW_TRACKING_URI") or tracking.tracking_uri


def _is_local_store(uri: str) -> bool:
    return uri.startswith(("sqlite:", "file:")) or "://" not in uri


def setup_tracking(tracking: TrackingConfig) -> str:
    """Point MLflow at the tracking store and make sure the experiment exists; return its id.

    For a local store, artifacts go to `tracking.artifact_dir`; a tracking server keeps its own
    artifact location.
    """
    uri = resolve_tracking_uri(tracking)
    apply_tracking_timeouts(tracking)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        experiment = mlflow.get_experiment_by_name(tracking.experiment_name)
    except (MlflowException, requests.exceptions.RequestException) as error:
        if _is_local_store(uri):
            raise
        raise TrackingUnavailableError(
            f"tracking server {uri} did not answer within tracking.request_timeout_s="
            f"{tracking.request_timeout_s} s ({tracking.request_max_retries} retries): "
            f"{str(error).splitlines()[0][:300]}"
        ) from error
    if experiment is not None:
        if EXPERIMENT_KIND_TAG not in experiment.tags:
            MlflowClient().set_experiment_tag(
                experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND
            )
        return experiment.experiment_id
    artifact_location = None
    if _is_local_store(uri):
        artifact_location = Path(tracking.artifact_dir).resolve().as_uri()
    log.info("creating MLflow experiment %r at %s", tracking.experiment_name, uri)
    return mlflow.create_experiment(
        tracking.experiment_name,
        artifact_location=artifact_location,
        tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND},
    )


@contextmanager
def mlflow_run(
    tracking: TrackingConfig, run_name: str, tags: Mapping[str, str] | None = None
) -> Iterator[str]:
    """Start an MLflow run (nested under the active one when there is one); yield its id."""
    experiment_id = setup_tracking(tracking)
    nested = mlflow.active_run() is not None
    with mlflow.start_run(
        experiment_id=experiment_id, run_name=run_name, nested=nested, tags=dict(tags or {})
    ) as run:
        yield run.info.run_id


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested config mappings into dotted keys (`model.params.learning_rate`)."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def log_params(params: Mapping[str, Any]) -> None:
    values = {k: str(v)[:MAX_PARAM_LENGTH] for k, v in flatten(params).items()}
    mlflow.log_params(values)


def log_metrics(metrics: Mapping[str, float]) -> None:
    finite = {k: float(v) for k, v in metrics.items() if v is not None and np.isfinite(v)}
    mlflow.log_metrics(finite)


def set_tags(tags: Mapping[str, Any]) -> None:
    mlflow.set_tags({k: str(v) for k, v in tags.items()})


def log_figure(figure: plt.Figure, artifact_file: str) -> None:
    mlflow.log_figure(figure, artifact_file)
    plt.close(figure)


def log_text(text: str, artifact_file: str) -> None:
    mlflow.log_text(text, artifact_file)


def log_dict(data: Mapping[str, Any], artifact_file: str) -> None:
    mlflow.log_dict(dict(data), artifact_file)


def log_frame(frame: pd.DataFrame, artifact_file: str) -> None:
    """Log a table as Parquet or CSV (by the file name's suffix)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(artifact_file).name
        if path.suffix == ".parquet":
            frame.to_parquet(path, index=False)
        else:
            frame.to_csv(path, index=False)
        mlflow.log_artifact(str(path), str(Path(artifact_file).parent) or None)


def log_artifact(path: Path, artifact_path: str | None = None) -> None:
    if Path(path).is_dir():
        mlflow.log_artifacts(str(path), artifact_path)
    else:
        mlflow.log_artifact(str(path), artifact_path)


def _pip_requirements() -> list[str]:
    """The serving environment: only what loading and predicting import, pinned.

    Given explicitly so MLflow does not spend seconds inferring them in a subprocess; churnml
    itself travels with the model (`code_paths`), so no package index needs to have it.
    """
    return [f"{name}=={importlib.metadata.version(name)}" for name in SERVING_REQUIREMENTS]


def _package_code(tmp: Path) -> str:
    """A copy of the churnml package (no caches) to ship with the model as its code."""
    target = tmp / "churnml"
    shutil.copytree(
        Path(churnml.__file__).parent,
        target,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    return str(target)


def log_model(model: ChurnModel, example: pd.DataFrame, registered_model_name: str) -> str:
    """Log the model as a pyfunc with its code, signature and input example; register it.

    Returns the new version. The served model answers probability, risk band and reasons.
    """
    example = model.spec.as_model_input(example)
    return log_python_model(ChurnModelPyfunc(model), example, registered_model_name, MODEL_ARTIFACT)


def log_python_model(
    wrapper: mlflow.pyfunc.PythonModel,
    example: pd.DataFrame,
    registered_model_name: str,
    artifact_name: str,
) -> str:
    """Log a pyfunc with the package's code, its signature and input example, pinned to what
    it imports; register it and return the new version."""
    signature = infer_signature(example, wrapper.predict(None, example))
    with tempfile.TemporaryDirectory() as tmp:
        info = mlflow.pyfunc.log_model(
            name=artifact_name,
            python_model=wrapper,
            signature=signature,
            input_example=example,
            registered_model_name=registered_model_name,
            pip_requirements=_pip_requirements(),
            code_paths=[_package_code(Path(tmp))],
        )
    version = str(info.registered_model_version)
    log.info("registered model %s version %s", registered_model_name, version)
    return version


def log_uplift_model(model, example: pd.DataFrame, registered_model_name: str) -> str:
    """Log an uplift model (churnml.uplift) as a pyfunc with its code; register it; return
    the new version."""
    from churnml.serving import UpliftModelPyfunc

    example = model.spec.as_model_input(example)
    return log_python_model(
        UpliftModelPyfunc(model), example, registered_model_name, MODEL_ARTIFACT
    )


def load_registered_uplift(tracking: TrackingConfig, name: str, alias: str):
    """The uplift model registered as `name` under `alias`, with its version, or None when no
    version holds the alias."""
    setup_tracking(tracking)
    version = alias_version(replace(tracking, registered_model_name=name), alias)
    if version is None:
        return None
    pyfunc = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    return pyfunc.unwrap_python_model().model, version


def describe_version(
    tracking: TrackingConfig, version: str, description: str, tags: Mapping[str, str]
) -> None:
    """A model version's description and tags: data, cutoffs, metrics, promotion decision."""
    client = MlflowClient()
    name = tracking.registered_model_name
    client.update_model_version(name, version, description=description)
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, str(value)[:5000])


def set_version_tags(tracking: TrackingConfig, version: str, tags: Mapping[str, str]) -> None:
    client = MlflowClient()
    for key, value in tags.items():
        client.set_model_version_tag(tracking.registered_model_name, version, key, str(value))


def require_version(tracking: TrackingConfig, version: str) -> None:
    """Raise NoChampionError (exit 3) when the registered model has no such version."""
    try:
        MlflowClient().get_model_version(tracking.registered_model_name, str(version))
    except MlflowException as error:
        raise NoChampionError(
            f"registered model {tracking.registered_model_name!r} has no version {version}"
        ) from error


def describe_run(text: str) -> None:
    """The active run's description (shown first on its page in the MLflow UI)."""
    mlflow.set_tag("mlflow.note.content", text)


def log_dataset_input(
    name: str, source: str, digest: str, context: str, tags: Mapping[str, str]
) -> None:
    """Record the data a run used as an MLflow dataset input (name, source, fingerprint)."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    with warnings.catch_warnings():  # two registered local sources match a path: same class
        warnings.simplefilter("ignore", UserWarning)
        resolved = resolve_dataset_source(str(Path(source).resolve()))
    dataset = MetaDataset(
        source=resolved,
        name=name,
        digest=str(digest)[:36],
    )
    mlflow.log_input(dataset, context=context, tags=dict(tags))


def alias_version(tracking: TrackingConfig, alias: str) -> str | None:
    """The model version that holds `alias`, or None when no version holds it."""
    client = MlflowClient()
    try:
        return str(client.get_model_version_by_alias(tracking.registered_model_name, alias).version)
    except MlflowException:
        return None


def set_alias(tracking: TrackingConfig, alias: str, version: str) -> None:
    MlflowClient().set_registered_model_alias(tracking.registered_model_name, alias, version)


def model_version_run_id(tracking: TrackingConfig, version: str) -> str:
    return MlflowClient().get_model_version(tracking.registered_model_name, version).run_id


def load_registered_model(
    tracking: TrackingConfig, alias: str | None = None, version: str | None = None
) -> tuple[ChurnModel, str, str]:
    """Load a registered model by alias or version; return (model, version, run_id)."""
    setup_tracking(tracking)
    name = tracking.registered_model_name
    if version is None:
        version = alias_version(tracking, alias or tracking.champion_alias)
        if version is None:
            raise NoChampionError(
                f"registered model {name!r} has no version with alias "
                f"{alias or tracking.champion_alias!r}: train one first (make train)"
            )
    require_version(tracking, version)
    try:
        pyfunc = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
        churn_model = pyfunc.unwrap_python_model().model
    except (ImportError, AttributeError, pickle.UnpicklingError, TypeError) as error:
        raise NoChampionError(
            f"model {name!r} v{version} cannot be loaded by this churnml ({error}): retrain it "
            f"(churnml train) or promote a loadable version (churnml promote)"
        ) from error
    return churn_model, str(version), model_version_run_id(tracking, version)


def run_metrics(run_id: str) -> dict[str, float]:
    return dict(MlflowClient().get_run(run_id).data.metrics)


def load_run_table(run_id: str, artifact_file: str) -> pd.DataFrame | None:
    """A Parquet table logged by an earlier run, or None when that run did not log it."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=artifact_file, dst_path=tmp
            )
        except (MlflowException, OSError):
            log.info("run %s has no %s to compare with", run_id, artifact_file)
            return None
        return pd.read_parquet(path)


def latest_training_run(experiment_name: str = "churnml") -> str:
    """The id of the most recent finished training run in the experiment."""
    experiment = mlflow.get_experiment_by_name(experiment_name)
    if experiment is None:
        raise LookupError(
            f"no MLflow experiment {experiment_name!r} at {mlflow.get_tracking_uri()}"
        )
    runs = MlflowClient().search_runs(
        [experiment.experiment_id],
        filter_string="tags.job = 'train' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        raise LookupError(f"no finished training run in experiment {experiment_name!r}")
    return runs[0].info.run_id


def run_summary(run_id: str) -> dict[str, Any]:
    """Metrics, parameters and tags of a run, as plain dicts."""
    run = MlflowClient().get_run(run_id)
    return {
        "metrics": dict(run.data.metrics),
        "params": dict(run.data.params),
        "tags": dict(run.data.tags),
        "start_time": run.info.start_time,
    }


class MlflowSweepCallback(Callback):
    """Hydra callback: one parent MLflow run around a multirun; each trial nests under it."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        settings: TrackingConfig = OmegaConf.to_object(config.tracking)
        experiment_id = setup_tracking(settings)
        mlflow.start_run(experiment_id=experiment_id, run_name="sweep", tags={"job": "tune"})

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if mlflow.active_run() is not None:
            mlflow.end_run()
