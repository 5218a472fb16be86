"""Shared fixtures: tiny archives built from the real FSDD mirror, and throw-away project roots."""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO.parent / "shared" / "datasets"
FSDD_ZIP = SHARED_DATASETS / "free-spoken-digit-dataset-1.0.10.zip"
FSDD_ROOT = "free-spoken-digit-dataset-1.0.10/recordings/"
DVC = Path(sys.executable).with_name("dvc")


if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs two workers on the machine's cores: one thread each (their stages and servers
    # inherit it), or two workers' torch pools would fight over the same two cores
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    # numba (librosa's pYIN) compiles a function on its first call and caches it beside the package:
    # in a fresh venv two workers compiling into that one cache at once crashed a worker (SIGSEGV in
    # pyin's gufunc, a clean clone's CI run). Each worker keeps its own cache.
    os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(tempfile.gettempdir()) / f"audiovae-numba-{os.environ['PYTEST_XDIST_WORKER']}"))


# a test that asks for one of these (directly or through another fixture) trains a tiny pipeline,
# runs `dvc`, or starts a server: `slow`, left out of `make test-fast`
SLOW_FIXTURES = {"trained", "trained_notes", "dvc_reproduced", "dvc_copy", "postgres", "prefect_home", "mlflow_server"}


def pytest_collection_modifyitems(config, items):
    """Marks ``slow`` every test that uses a ``SLOW_FIXTURES`` fixture. Spreads the heavy tests (a
    whole tiny pipeline in subprocesses, minutes each) evenly over the collection, the first at its start: `make test`'s work-stealing scheduler gives each of its two
    workers one half, so each starts on a heavy test and the short ones fill in behind, instead of
    one heavy test running alone at the end."""
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
    heavy = [item for item in items if item.get_closest_marker("heavy")]
    spread = [item for item in items if not item.get_closest_marker("heavy")]
    for k, item in enumerate(heavy):
        spread.insert(k * len(items) // len(heavy), item)
    items[:] = spread


def pytest_sessionfinish(session, exitstatus):
    """Prefect stops its ephemeral test server at interpreter exit and logs that to a stream pytest has
    already closed; that message is noise, not a failure, so it is not printed as a logging error."""
    logging.raiseExceptions = False


@pytest.fixture(autouse=True)
def no_inherited_tracking_store(monkeypatch):
    """Each test starts without ``$MLFLOW_TRACKING_URI``: a tuning worker run in process sets it for
    itself (its coordinator's store), and a later test's stages then logged there, not to their
    project's mlflow.db (test_survival's retried stage found no runs). A test that wants one sets it."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def benchmark_module(name: str):
    """A script of benchmarks/ loaded as a module (the folder is scripts, not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO / "benchmarks" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def require_fsdd() -> Path:
    if not FSDD_ZIP.exists():
        pytest.skip(f"needs the FSDD mirror at {FSDD_ZIP} (see ../shared/datasets/README.md)")
    return FSDD_ZIP


def fsdd_members(speakers, digits=range(10), takes=range(8)) -> dict[str, bytes]:
    """Real FSDD recordings (name -> WAV bytes) for a few speakers, digits and takes."""
    out = {}
    with zipfile.ZipFile(require_fsdd()) as zf:
        for speaker in speakers:
            for digit in digits:
                for take in takes:
                    name = f"{digit}_{speaker}_{take}.wav"
                    out[name] = zf.read(FSDD_ROOT + name)
    return out


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


@pytest.fixture(scope="session")
def tiny_fsdd_zip(tmp_path_factory) -> Path:
    """A small archive in FSDD's exact layout: 3 speakers x 10 digits x 8 takes of real recordings."""
    members = {FSDD_ROOT + name: data for name, data in fsdd_members(["jackson", "nicolas", "theo"]).items()}
    return write_zip(tmp_path_factory.mktemp("archives") / "free-spoken-digit-dataset-1.0.10.zip", members)


def base_params() -> dict:
    with open(REPO / "params.yaml") as fh:
        return yaml.safe_load(fh)


def params_with(overrides: dict) -> dict:
    """The project's params with ``overrides`` merged in (every key the schema needs stays present)."""
    from audiovae.config.params import deep_merge

    return deep_merge(base_params(), overrides)


def typed(params: dict):
    """A test's params.yaml mapping as the library takes it: validated, preset applied, typed."""
    from audiovae.config.params import resolve

    return resolve(params)


def tiny_params() -> dict:
    """The project's params, shrunk for tests: no tracking, few epochs, small models."""
    p = base_params()
    p["tracking"]["enabled"] = False
    p["outer"]["conv1d"].update(hidden=32, code_channels=8)
    p["outer"]["train"].update(epochs=2, patience=2)
    p["outer"]["batch_size"] = 16
    p["inner"].update(latent_dim=4, latent_channels=2, hidden=[32, 16], conv_filters=[16, 16], batch_size=16)
    p["inner"]["train"].update(epochs=3, patience=3)
    p["inner"]["kl_warmup_epochs"] = 1
    p["evaluate"].update(generated_per_class=4, tsne_perplexity=5)
    p["evaluate"]["classifier"]["pca_components"] = 8
    p["evaluate"]["clean_classifier"]["pca_components"] = 8
    p["evaluate"]["quality"]["dnsmos_clips"] = 3  # ~0.6 s a clip: the measure is tested, not its precision
    p["features"]["griffin_lim"]["iterations"] = 8  # a quarter of the default: what evaluate spends most on
    return p


@pytest.fixture
def project(tmp_path, tiny_fsdd_zip, monkeypatch):
    """A project root in a temp dir whose mirror holds the tiny FSDD archive; returns (root, params)."""
    root = tmp_path / "proj"
    root.mkdir()
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    shutil.copy(tiny_fsdd_zip, mirror / tiny_fsdd_zip.name)
    monkeypatch.setenv("AUDIOVAE_DATA_MIRROR", str(mirror))
    monkeypatch.setenv("AUDIOVAE_ROOT", str(root))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    params = tiny_params()
    save_params(root, params)
    return root, params


def save_params(root: Path, params: dict) -> None:
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def tone_classes(n: int, rng: np.random.Generator, sr: int = 8000) -> tuple[np.ndarray, np.ndarray]:
    """``n`` noisy 0.5 s tones of each of three pitch classes (low, mid, high), and their labels."""
    audio, labels = [], []
    for label, freq in {"low": 300.0, "mid": 900.0, "high": 2100.0}.items():
        for _ in range(n):
            wave = sine(0.5, sr, freq * rng.uniform(0.97, 1.03)) + 0.05 * rng.standard_normal(int(0.5 * sr))
            audio.append(wave.astype(np.float32))
            labels.append(label)
    return np.stack(audio), np.array(labels)


def sine(seconds: float, sr: int, freq: float = 440.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    mono = 0.5 * np.sin(2 * np.pi * freq * t).astype(np.float32)
    return np.stack([mono] * channels, axis=1) if channels > 1 else mono


@contextlib.contextmanager
def linked_project(root: Path, under: Path, inputs: list[str]):
    """A second project root under ``under`` whose ``inputs`` (paths relative to ``root``) link to
    ``root``'s, for a test that runs a stage with other values without changing the shared project;
    removed on the way out."""
    missing = [rel for rel in inputs if not (root / rel).exists()]
    assert not missing, f"{missing} missing under {root}"
    project = Path(tempfile.mkdtemp(prefix="project-", dir=under))
    for rel in inputs:
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(root.resolve() / rel, project / rel)
    try:
        yield project
    finally:
        shutil.rmtree(project)


def tree_state(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` with its size and modification time (ns): what a stage touched."""
    out = {}
    for folder, _, files in os.walk(root):  # links (a scratch root's inputs) are not followed
        for name in files:
            path = Path(folder) / name
            if not path.is_symlink():
                stat = path.stat()
                out[path.relative_to(root).as_posix()] = (stat.st_size, stat.st_mtime_ns)
    return out


def written_by(root: Path, before: dict) -> set[str]:
    """Files created or changed under ``root`` since ``before`` (a ``tree_state``)."""
    return {path for path, state in tree_state(root).items() if before.get(path) != state}


# what each stage of the ``trained`` fixture created or changed (tests/test_dvc_outs.py reads it)
STAGE_WRITES: dict[str, set[str]] = {}


def pipeline_stages() -> dict:
    """The stage modules from download to evaluate, in dvc.yaml's order (export apart), for tests
    that run a whole tiny pipeline in process."""
    import importlib

    names = ["download", "filter", "features", "train_outer", "encode", "train_inner", "train_prior", "evaluate"]
    return {name: importlib.import_module(f"audiovae.stages.{name}") for name in names}


@pytest.fixture(scope="session")
def trained(tmp_path_factory, tiny_fsdd_zip):
    """Run every stage once on 240 real FSDD recordings with tiny models; shared by the tests below.
    Records the files each stage writes in ``STAGE_WRITES``."""
    root = tmp_path_factory.mktemp("pipeline")
    mirror = tiny_fsdd_zip.parent
    mp = pytest.MonkeyPatch()
    mp.setenv("AUDIOVAE_DATA_MIRROR", str(mirror))
    mp.setenv("AUDIOVAE_ROOT", str(root))
    params = tiny_params()
    save_params(root, params)

    def stage(name, module):
        before = tree_state(root)
        result = module.run(typed(params), root)
        STAGE_WRITES[name] = written_by(root, before)
        return result
    modules = pipeline_stages()
    try:
        results = {name: stage(name, module) for name, module in modules.items()}
        outer, inner, metrics = results["train_outer"], results["train_inner"], results["evaluate"]
        yield root, params, outer, inner, metrics
    finally:
        mp.undo()


def sh(cmd, cwd, env):
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def project_env(root: Path, mirror: Path) -> dict:
    """The environment a user's shell gives `dvc` in a project: its root, the data mirror, this venv."""
    env = {**os.environ, "AUDIOVAE_DATA_MIRROR": str(mirror), "AUDIOVAE_ROOT": str(root),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def new_dvc_project(root: Path, tiny_fsdd_zip: Path) -> tuple[Path, dict]:
    """A tiny DVC project at ``root`` (git, dvc init, tracking on a SQLite store in it) that has run nothing."""
    if not DVC.exists():
        pytest.skip("dvc is not installed next to this Python (run `make test`)")
    root.mkdir(parents=True)
    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
    shutil.copytree(REPO / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    params = tiny_params()
    params["tracking"]["enabled"] = True  # the stages log to a SQLite store in the temp repo
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = project_env(root, tiny_fsdd_zip.parent)
    sh(["git", "init", "-q"], root, env)
    sh([str(DVC), "init", "-q"], root, env)
    sh([str(DVC), "config", "core.analytics", "false"], root, env)
    return root, env


# a preset the tests apply with `dvc exp run -S preset=...`: it changes the inner VAE and evaluation only
TINY_PRESET = {"tiny_wider_inner": {"inner": {"latent_channels": 3}, "evaluate": {"probe_dims": 1}}}


@pytest.fixture(scope="session")
def dvc_reproduced(tmp_path_factory, tiny_fsdd_zip):
    """A tiny DVC project after one whole `dvc repro` (every stage, logged to its SQLite store), built
    once for the whole run: by the first of `make test`'s workers to ask, while the other waits on a
    file lock and then reads it. Returns (root, env, the repro's output). Tests take a copy
    (``dvc_copy``): none writes here."""
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the folder every worker's temp folder is in
    root, done = shared / "dvc-reproduced" / "repo", shared / "dvc-reproduced" / "built.json"
    with FileLock(str(shared / "dvc-reproduced.lock")):
        if not done.exists():
            if root.parent.exists():
                shutil.rmtree(root.parent)  # a build that died half-way
            root, env = new_dvc_project(root, tiny_fsdd_zip)
            params = yaml.safe_load((root / "params.yaml").read_text())
            params["presets"].update(TINY_PRESET)
            (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
            sh(["git", "add", "-A"], root, env)
            sh(["git", "commit", "-qm", "project"], root, env)
            output = sh([str(DVC), "repro"], root, env)
            sh(["git", "add", "-A"], root, env)  # the base a user's experiments start from
            sh(["git", "commit", "-qm", "base run"], root, env)
            # the builder's mirror: the same archive for every copy (another worker's differs in its zip dates)
            done.write_text(json.dumps({"output": output, "mirror": str(tiny_fsdd_zip.parent)}))
    built = json.loads(done.read_text())
    return root, project_env(root, Path(built["mirror"])), built["output"]


@pytest.fixture
def dvc_copy(dvc_reproduced, tmp_path):
    """This test's own copy of ``dvc_reproduced`` (git, DVC cache, MLflow store and all): a test that
    asserts on what a change re-runs starts from a pipeline that ran, without running it again."""
    built, env, _ = dvc_reproduced
    root = tmp_path / "repo"
    shutil.copytree(built, root, symlinks=True)
    return root, {**env, "AUDIOVAE_ROOT": str(root)}




# ---------------------------------------------------------------- real servers started by tests
def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(proc: subprocess.Popen) -> None:
    """Stop a server started with ``start_new_session=True`` (its whole process group)."""
    import signal
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_http(url: str, proc: subprocess.Popen, log: Path, seconds: float = 120) -> None:
    """Poll ``url`` until it answers 200; fail with the server's log if it dies or times out."""
    import time
    import urllib.request
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    pytest.fail(f"{url} did not come up:\n{log.read_text()[-3000:]}")


# ---------------------------------------------------------------- PostgreSQL (Debian's package)
def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return str(candidates[-1]) if candidates else None


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server: data dir in a temp folder, 127.0.0.1, a free port, stopped in
    ``finally``; yields a ``PostgresServer``. As root it runs as the ``postgres`` user (the server
    refuses root). Skipped without the binaries; under CI=true that fails."""
    import pwd
    import tempfile

    tools = {name: _pg_bin(name) for name in ("initdb", "pg_ctl", "createdb")}
    if not all(tools.values()):
        message = "PostgreSQL server binaries not found: `sudo apt-get install postgresql`"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (.ci/run installs it)")
        pytest.skip(message)
    as_user: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="audiovae-pg-"))  # under /tmp: readable by the server's user
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(base, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = base / "data", free_port()

    def run(*args):
        result = subprocess.run([*as_user, *args], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"{args[0]} failed:\n{result.stdout}\n{result.stderr}"

    run(tools["initdb"], "-D", str(data), "-A", "trust", "-U", "audiovae", "-E", "UTF8", "--no-sync")
    server = PostgresServer(lambda *args: run(tools["pg_ctl"], "-D", str(data), *args),
                            lambda name: run(tools["createdb"], "-h", "127.0.0.1", "-p", str(port), "-U", "audiovae", name),
                            port, f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off", base / "server.log")
    try:
        server.start()
        yield server
    finally:
        subprocess.run([*as_user, tools["pg_ctl"], "-D", str(data), "-m", "fast", "-w", "stop"],
                       capture_output=True, timeout=120)
        shutil.rmtree(base, ignore_errors=True)


class PostgresServer:
    """The ``postgres`` fixture: ``server(name)`` creates a database and returns its SQLAlchemy URL;
    ``stop()`` (fast shutdown: every connection is cut) and ``start()`` restart it in place."""

    def __init__(self, pg_ctl, createdb, port: int, options: str, log: Path):
        self._pg_ctl, self._createdb, self.port, self._options, self._log = pg_ctl, createdb, port, options, log

    def __call__(self, name: str) -> str:
        self._createdb(name)
        return f"postgresql+psycopg2://audiovae@127.0.0.1:{self.port}/{name}"

    def start(self) -> None:
        self._pg_ctl("-l", str(self._log), "-w", "-t", "60", "-o", self._options, "start")

    def stop(self) -> None:
        self._pg_ctl("-m", "fast", "-w", "stop")


def start_mlflow_server(backend_uri: str, folder: Path, port: int | None = None, artifacts: str | None = None,
                        env: dict | None = None) -> subprocess.Popen:
    """``mlflow server`` on 127.0.0.1 (on ``port`` when given: a restarted server must come back
    where its clients look) with ``backend_uri`` as its store and artifacts in ``folder`` (or at
    ``artifacts``, e.g. ``s3://bucket/mlflow``, proxied for its clients; ``env`` gives the server its
    object-store credentials); returns once it answers. Stop it with ``stop_process``."""
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    if not mlflow_bin.exists():
        pytest.skip("mlflow is not installed next to this Python (run `make test`)")
    port = port or free_port()
    log_path = folder / f"mlflow-server-{port}-{time.monotonic_ns()}.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [str(mlflow_bin), "server", "--backend-store-uri", backend_uri, "--artifacts-destination",
             artifacts or str(folder / "artifacts"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc, log_path, seconds=120)
    except BaseException:
        stop_process(proc)
        raise
    return proc


@contextlib.contextmanager
def running_mlflow_server(backend_uri: str, folder: Path):
    """``start_mlflow_server`` on a free port; yields its URL and stops it even when the test fails."""
    port = free_port()
    proc = start_mlflow_server(backend_uri, folder, port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)


CHROMIUM = os.environ.get("AUDIOVAE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


def require_chromium():
    """Debian's Chromium and Playwright's sync API, or a skip (a failure under CI)."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"Chromium is required in CI: {CHROMIUM} is missing (.ci/run installs Debian's chromium)")
        pytest.skip(f"no Chromium at {CHROMIUM}: `sudo apt-get install chromium` (or set AUDIOVAE_CHROMIUM)")
    return pytest.importorskip("playwright.sync_api")


@pytest.fixture
def prefect_home(tmp_path, monkeypatch):
    """Prefect in ephemeral mode with its home and database in the test's folder; ``pipeline`` importable."""
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    monkeypatch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    monkeypatch.setenv("PREFECT_API_DATABASE_CONNECTION_URL", f"sqlite+aiosqlite:///{tmp_path / 'prefect.db'}")
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")  # a busy 2-core machine
    sys.path.insert(0, str(REPO))
    yield
    sys.path.remove(str(REPO))
