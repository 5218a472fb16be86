"""MLflow tracking: one parent run per ``dvc repro`` / ``dvc exp run``, one child run per stage.

The tracking URI is ``$MLFLOW_TRACKING_URI`` if set, else ``tracking.uri`` in params, else
``sqlite:///mlflow.db`` in the project root (MLflow 3 refuses the old ``./mlruns`` store).
Stages run as separate processes under DVC; they find their common parent run through the
DVC process they descend from (its pid and start time key a small file in ``.audiovae/``).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from pydantic import BaseModel

from audiovae import layout
from audiovae.atomic import write_json
from audiovae.config.params import flatten, project_root
from audiovae.config.schema import Params

log = logging.getLogger("audiovae.tracking")
T = TypeVar("T")

PARENT_ENV = "AUDIOVAE_PARENT_RUN_ID"
STATE_DIR = ".audiovae"
REGISTERED_TAG = "registered."  # run tag: registered.<model name> = the version that run registered
# the MLflow UI opens a model-training experiment on its runs (not the GenAI traces page)
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
BATCH = 100  # MLflow takes at most 100 params per call


class TrackingError(RuntimeError):
    """The tracking server cannot be reached: before any work starts, or (EpochLog) still not at
    the end of a stage whose outputs are written."""


@contextlib.contextmanager
def quick_requests(timeout_seconds: int = 5) -> Iterator[None]:
    """MLflow's client retries a request for about four minutes; a training loop must not wait
    that long each epoch for a server that is gone. Per-epoch sends fail fast and are kept."""
    saved = {k: os.environ.get(k) for k in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")}
    os.environ.update(MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT=str(timeout_seconds))
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class EpochLog:
    """Per-epoch metrics that outlive a tracking server's blink: a send that fails is kept, training
    goes on, and what was kept is sent (with its own steps and times) once the server answers
    again; ``close`` waits up to ``retry_seconds`` with back-off and then names what was not logged."""

    def __init__(self, mlflow, retry_seconds: float):
        self.client, self.run_id = mlflow.MlflowClient(), mlflow.active_run().info.run_id
        self.retry_seconds = float(retry_seconds)
        self.pending: list[list[Any]] = []
        self.down_since: float | None = None

    def __call__(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        self.pending.append([Metric(k, float(v), stamp, step) for k, v in metrics.items()])
        self.send()

    def send(self) -> bool:
        """Send what is kept, oldest first; False while the server does not answer."""
        while self.pending:
            try:
                with quick_requests():
                    self.client.log_batch(self.run_id, metrics=self.pending[0])
            except Exception as exc:  # noqa: BLE001 - MLflow raises several types for a server that is gone
                if self.down_since is None:
                    self.down_since = time.monotonic()
                    log.warning("tracking server not answering (%s); training goes on, epochs are kept", exc)
                return False
            self.pending.pop(0)
        if self.down_since is not None:
            log.info("tracking server back after %.0f s: the kept epochs are logged", time.monotonic() - self.down_since)
            self.down_since = None
        return True

    def close(self) -> None:
        deadline, wait = time.monotonic() + self.retry_seconds, 1.0
        while not self.send():
            if time.monotonic() >= deadline:
                steps = [batch[0].step for batch in self.pending if batch]
                raise TrackingError(f"the tracking server did not answer for {self.retry_seconds:.0f} s: metrics of "
                                    f"epochs {steps} were not logged to run {self.run_id} (the stage's outputs are "
                                    "written; raise tracking.retry_seconds to wait longer)")
            time.sleep(wait)
            wait = min(wait * 2, 30.0)


class _NoEpochs:
    """``EpochLog``'s interface for tracking that is off: nothing is sent, nothing waits."""

    def __call__(self, metrics: dict[str, float], step: int) -> None:
        pass

    def close(self) -> None:
        pass


class Tracker:
    """What a stage logs to: the active MLflow run, or nothing when tracking is off. Stages call it
    the same way either way, so none of them checks whether tracking is on."""

    def __init__(self, mlflow: Any = None):
        self.mlflow = mlflow

    @property
    def on(self) -> bool:
        return self.mlflow is not None

    def log_params(self, values: dict[str, Any]) -> None:
        if self.mlflow is not None and values:
            self.mlflow.log_params({k: str(v)[:500] for k, v in values.items()})

    def log_metrics(self, values: dict[str, float], step: int | None = None) -> None:
        if self.mlflow is not None and values:
            self.mlflow.log_metrics({k: float(v) for k, v in values.items()}, step=step)

    def set_tag(self, key: str, value: str) -> None:
        if self.mlflow is not None:
            self.mlflow.set_tag(key, value)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        if self.mlflow is not None:
            self.mlflow.log_artifact(str(path), artifact_path=artifact_path)

    def log_artifacts(self, folder: Path, artifact_path: str | None = None) -> None:
        if self.mlflow is not None:
            self.mlflow.log_artifacts(str(folder), artifact_path=artifact_path)

    def epochs(self, retry_seconds: float) -> EpochLog | _NoEpochs:
        """Per-epoch metrics that outlive a tracking server's blink (``EpochLog``)."""
        return EpochLog(self.mlflow, retry_seconds) if self.mlflow is not None else _NoEpochs()

    def log_pipeline_metrics(self, metrics: dict[str, float]) -> None:
        if self.mlflow is not None:
            log_pipeline_metrics(self.mlflow, metrics)

    def log_torch_model(self, model, example, registered_name: str) -> str | None:
        """Log and register ``model`` (moved to the CPU first); the version, or None when off."""
        return log_torch_model(self.mlflow, model.cpu(), example, registered_name) if self.mlflow is not None else None

    def with_mlflow(self, log: Callable[[Any], T]) -> T | None:
        """``log(mlflow)`` when tracking is on (what needs MLflow's own API, e.g. registering a model
        with its signature), so its inputs are only made then; None when off."""
        return log(self.mlflow) if self.mlflow is not None else None

    def start_run(self, run_name: str | None = None, run_id: str | None = None,
                  tags: dict[str, Any] | None = None) -> str | None:
        """Open a run (a tuning trial's, a study's) or resume one by ``run_id``; its id, or None when off."""
        if self.mlflow is None:
            return None
        return self.mlflow.start_run(run_name=run_name, run_id=run_id, tags=tags).info.run_id

    def end_run(self, status: str = "FINISHED") -> None:
        if self.mlflow is not None:
            self.mlflow.end_run(status=status)


def tracker(params: Params, root: Path | None = None) -> Tracker:
    """The project's tracking store, configured (``configure``), as a ``Tracker``."""
    return Tracker(configure(params, root))


def enabled(params: Params) -> bool:
    return params.tracking.enabled


def tracking_uri(params: Params, root: Path | None = None) -> str:
    """The one place that decides the store: ``$MLFLOW_TRACKING_URI``, else ``tracking.uri``, else
    the project's own ``mlflow.db``."""
    root = root or project_root()
    uri = os.environ.get("MLFLOW_TRACKING_URI") or params.tracking.uri
    return uri or f"sqlite:///{root / 'mlflow.db'}"


def store_of(root: Path) -> str | None:
    """The tracking store seen from ``root``: the project's (``tracking_uri``) when ``root`` is an
    audiovae project, else ``$MLFLOW_TRACKING_URI``; None when neither says (the CLI outside a
    project, with no server named)."""
    from audiovae.config.params import load_params

    if (root / "params.yaml").exists():
        return tracking_uri(load_params(root / "params.yaml"), root)
    return os.environ.get("MLFLOW_TRACKING_URI") or None


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """Fail fast (before training) when an HTTP tracking server does not answer."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as response:
            response.read()
    except (urllib.error.URLError, OSError) as exc:
        raise TrackingError(
            f"MLflow tracking server {uri} is not reachable ({exc}). Start it, fix MLFLOW_TRACKING_URI, "
            f"or set tracking.fallback_local: true in params.yaml to log to sqlite:///mlflow.db") from exc


def configure(params: Params, root: Path | None = None):
    """Point MLflow at the right store and experiment; returns the mlflow module (or None if off)."""
    if not enabled(params):
        return None
    import mlflow

    root = root or project_root()
    uri = tracking_uri(params, root)
    try:
        check_reachable(uri)
    except TrackingError:
        if not params.tracking.fallback_local:
            raise
        log.warning("tracking server %s unreachable: falling back to local sqlite:///mlflow.db", uri)
        uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    name = params.tracking.experiment
    if uri.startswith("sqlite:") and mlflow.get_experiment_by_name(name) is None:
        # keep artifacts beside the local store, not in MLflow's default ./mlruns
        mlflow.create_experiment(name, artifact_location=(root / "mlartifacts").as_uri())
    experiment = mlflow.set_experiment(name)
    if experiment.tags.get(EXPERIMENT_KIND[0]) != EXPERIMENT_KIND[1]:
        mlflow.MlflowClient().set_experiment_tag(experiment.experiment_id, *EXPERIMENT_KIND)
    return mlflow


def git_state(root: Path) -> dict[str, str]:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    commit = git("rev-parse", "HEAD")
    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    return {"git_commit": commit or "unknown", "git_dirty": str(dirty).lower()}


def manifest_hash(root: Path) -> str:
    """Short sha256 of ``data/manifest.csv`` (what was downloaded), or ``none``: names the data a
    run or a model was trained on (run tag, dataset digest, bundle)."""
    path = root / layout.MANIFEST
    if not path.exists():
        return "none"
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def run_tags(stage: str, root: Path) -> dict[str, str]:
    tags = {"stage": stage, "dataset_manifest": manifest_hash(root), **git_state(root)}
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc_experiment"] = os.environ["DVC_EXP_NAME"]
    return tags


def _start_ticks(pid: int) -> str | None:
    """A process's start time in clock ticks since boot (``/proc/PID/stat``, field 22), exact and the
    same from every process; psutil's ``create_time`` adds the boot time, which the kernel derives
    from the clock and which may differ by a second between two readers."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _dvc_ancestor() -> str | None:
    """A key for the ``dvc`` process this stage runs under (pid + start time), if any."""
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil comes with our pinned dependencies
        return None
    try:
        proc = psutil.Process().parent()
        while proc is not None:
            if any(Path(arg).name == "dvc" for arg in proc.cmdline()[:2]):
                return f"{proc.pid}-{_start_ticks(proc.pid) or int(proc.create_time())}"
            proc = proc.parent()
    except (psutil.Error, OSError):
        return None
    return None


def start_pipeline_run(mlflow, root: Path, params: Params, name: str = "repro") -> str:
    """Create the parent run of one pipeline execution; returns its id."""
    run = mlflow.start_run(run_name=name, tags={**run_tags("pipeline", root), "kind": "pipeline"})
    # the effective values (preset applied), under params.yaml's own dotted names
    items = [(k, str(v)[:500]) for k, v in flatten(params.model_dump()).items() if not k.startswith("presets.")]
    for start in range(0, len(items), BATCH):
        mlflow.log_params(dict(items[start:start + BATCH]))
    mlflow.end_run()
    return run.info.run_id


def touch_parent(mlflow, parent: str, root: Path) -> None:
    """After each stage: the parent run ends when its last stage ended (its duration spans the
    pipeline), and once the data exists it names it: a ``dataset_manifest`` tag and an MLflow
    dataset input (name = the enabled sources, digest = the manifest hash)."""
    import time

    client = mlflow.MlflowClient()
    manifest = manifest_hash(root)
    if manifest != "none":
        client.set_tag(parent, "dataset_manifest", manifest)
        if not client.get_run(parent).inputs.dataset_inputs:
            log_dataset(mlflow, client, parent, root, manifest)
    client.set_terminated(parent, "FINISHED", end_time=int(time.time() * 1000))


def log_dataset(mlflow, client, run_id: str, root: Path, digest: str) -> None:
    import pandas as pd
    from mlflow.entities import DatasetInput, InputTag

    table = pd.read_csv(root / layout.MANIFEST)
    # data/raw/<source>/...: the dataset is named after its sources (fsdd, audiomnist+fsdd, ...)
    name = "+".join(sorted(table["path"].astype(str).str.split("/").str[len(layout.RAW.parts)].unique())) or "data"
    dataset = mlflow.data.from_pandas(table, source=str(root / layout.MANIFEST), name=name, digest=digest)
    client.log_inputs(run_id, datasets=[DatasetInput(dataset._to_mlflow_entity(),
                                                     tags=[InputTag("mlflow.data.context", "training")])])


def log_pipeline_metrics(mlflow, metrics: dict[str, float]) -> None:
    """The final metrics on the parent run too, so two pipeline runs compare side by side."""
    run = mlflow.active_run()
    parent = run.data.tags.get("mlflow.parentRunId") if run else None
    if parent:
        import time

        from mlflow.entities import Metric
        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, 0) for k, v in metrics.items()]
        for start in range(0, len(items), 1000):
            mlflow.MlflowClient().log_batch(parent, metrics=items[start:start + 1000])


def parent_run_id(mlflow, root: Path, params: Params) -> str | None:
    """The parent run shared by all stages of one ``dvc repro``; the first stage creates it.

    ``$AUDIOVAE_PARENT_RUN_ID`` wins (Prefect flows and tuning set it); otherwise the stages of
    one DVC process share the run recorded in ``.audiovae/parent_run.json``.
    """
    if os.environ.get(PARENT_ENV):
        return os.environ[PARENT_ENV]
    key = _dvc_ancestor()
    if key is None:
        return None
    state = root / STATE_DIR / "parent_run.json"
    record = json.loads(state.read_text()) if state.exists() else {}
    if record.get("key") == key and record.get("uri") == mlflow.get_tracking_uri():
        return record["run_id"]
    run_id = start_pipeline_run(mlflow, root, params, os.environ.get("DVC_EXP_NAME") or "repro")
    write_json(state, {"key": key, "run_id": run_id, "uri": mlflow.get_tracking_uri()})
    return run_id


def end_dead_attempts(mlflow, parent: str, stage: str) -> None:
    """End FAILED the runs of ``stage`` under ``parent`` still marked RUNNING: the stages of one
    pipeline run one at a time (DVC's repository lock), so such a run is an attempt whose process
    died (a lost worker that a flow retries) and would otherwise stay RUNNING for ever."""
    try:
        with quick_requests():
            client = mlflow.MlflowClient()
            for run in mlflow.search_runs(search_all_experiments=True, output_format="list", filter_string=(
                    f"tags.`mlflow.parentRunId` = '{parent}' and tags.stage = '{stage}' "
                    "and attributes.status = 'RUNNING'")):
                client.set_tag(run.info.run_id, "ended_by", "a later attempt of the stage: this one's process died")
                client.set_terminated(run.info.run_id, "FAILED")
                log.warning("stage %s: ended the run %s of an attempt that died", stage, run.info.run_id)
    except Exception as exc:  # noqa: BLE001 - tidying must not stop the stage; the run is only left open
        log.warning("could not end the runs of earlier attempts of %s: %s", stage, exc)


@contextlib.contextmanager
def stage_run(stage: str, params: Params, root: Path | None = None,
              section_keys: tuple[str, ...] = ()) -> Iterator[Any]:
    """Open the stage's child run; yields its ``Tracker`` (one that logs nothing when tracking is off)."""
    root = root or project_root()
    mlflow = configure(params, root)
    if mlflow is None:
        yield Tracker()
        return
    parent = parent_run_id(mlflow, root, params)
    tags = run_tags(stage, root)
    if parent:
        tags["mlflow.parentRunId"] = parent
        end_dead_attempts(mlflow, parent, stage)
    with mlflow.start_run(run_name=stage, tags=tags):
        logged = {"seed": params.seed, "preset": params.preset}
        for key in section_keys:
            value = getattr(params, key)
            logged.update(flatten(value.model_dump(), key + ".") if isinstance(value, BaseModel) else {key: value})
        mlflow.log_params({k: str(v)[:500] for k, v in logged.items()})
        try:
            yield Tracker(mlflow)
        except TrackingError:  # the server is gone: end the run here, without the client's minutes of retries
            with quick_requests():
                try:
                    mlflow.end_run("FAILED")
                except Exception as exc:  # noqa: BLE001 - any client error: the TrackingError says what matters
                    log.warning("could not mark the run FAILED: %s", exc)
            raise
    if parent:
        touch_parent(mlflow, parent, root)


def log_stage(stage: str, params: Params, metrics: dict[str, float] | None = None,
              extra_params: dict[str, Any] | None = None, section_keys: tuple[str, ...] = (),
              artifacts: list[Path] | None = None, root: Path | None = None) -> None:
    """One-shot logging for stages that do not stream per-epoch values."""
    with stage_run(stage, params, root, section_keys) as tracker:
        tracker.log_params(extra_params or {})
        tracker.log_metrics(metrics or {})
        for path in artifacts or []:
            if Path(path).is_file():
                tracker.log_artifact(Path(path))
            elif Path(path).is_dir():
                tracker.log_artifacts(Path(path), artifact_path=Path(path).name)


def record_version(mlflow, name: str, version: str) -> None:
    """Note on the active stage run and on its pipeline's parent run which version of ``name`` this
    run registered (``registered.<name>``), so aliases go to exactly that version later."""
    run = mlflow.active_run()
    mlflow.set_tag(REGISTERED_TAG + name, version)
    parent = mlflow.MlflowClient().get_run(run.info.run_id).data.tags.get("mlflow.parentRunId")
    if parent:
        mlflow.MlflowClient().set_tag(parent, REGISTERED_TAG + name, version)


def log_torch_model(mlflow, model, example, registered_name: str) -> str:
    """Log ``model`` with ``mlflow.pytorch`` (input/output signature from ``example``; a model that
    returns a tuple is served by its first output) and register a new version of ``registered_name``,
    linked to the active run; returns that version (not "the newest": another run may register in
    between)."""
    import mlflow.pytorch
    import torch
    from mlflow.models import infer_signature

    from audiovae.tracking.served_model import FirstOutput

    model = model.eval()
    with torch.no_grad():
        output = model(torch.as_tensor(example))
    if isinstance(output, tuple):  # pyfunc serves one tensor: the reconstruction
        model, output = FirstOutput(model).eval(), output[0]
    signature = infer_signature(example, output.detach().cpu().numpy())
    # pickle format: loading needs the audiovae package installed, which is how it is served anyway
    info = mlflow.pytorch.log_model(model, name="model", signature=signature, registered_model_name=registered_name,
                                    serialization_format="pickle", input_example=example,
                                    pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "audiovae"])
    version = str(info.registered_model_version)
    record_version(mlflow, registered_name, version)
    return version
