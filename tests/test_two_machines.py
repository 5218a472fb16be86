"""Past one machine, everything real: clones in separate folders, each with its own HOME, caches and
temporary folder, that share nothing but servers — a Git host (a bare repository), an S3-compatible
object store (moto's server over HTTP), PostgreSQL (the Optuna study and MLflow's backend), an
``mlflow server`` whose artifacts go to S3 through its proxy, and a Prefect server.

The coordinator clone retrains (``retrain --push``) and publishes ``dvc.lock``; two worker clones
that start with no data join a 4-trial study as Prefect deployment runs, each pulling exactly the
inputs the plan names; a fresh clone generates from the registered champion with no data, then
pulls every output and finds the pipeline up to date. Workers at another commit or without the
remote refuse in one line and run no trial. No client machine holds object-store credentials for
MLflow: only DVC's, in its ``config.local``.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import (
    REPO,
    free_port,
    start_mlflow_server,
    stop_process,
    tiny_params,
    wait_http,
)
from test_tune import tiny_tune_params

BIN = Path(sys.executable).parent
PREFECT, MOTO = BIN / "prefect", BIN / "moto_server"
BUCKET = "audiovae"
FINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
# what a clone of the project holds (the rest of the repository is docs, benchmarks and reports)
PROJECT_FILES = ["dvc.yaml", "params.yaml", "prefect.yaml", "Makefile", "pyproject.toml", "requirements.txt",
                 "requirements-dev.txt", "constraints.txt", ".gitignore", ".dvcignore", "src", "pipeline"]
KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}  # moto takes any


def run(cmd, cwd, env, timeout=600, check=True) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check:
        assert result.returncode == 0, f"{cmd} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


class Machine:
    """One machine: its own clone, HOME, caches, temp folder and Prefect home; servers by URL only."""

    def __init__(self, base: Path, name: str, shared_env: dict):
        self.name, self.dir = name, base / name
        self.root = self.dir / "audiovae"
        for sub in ("home", "tmp", "cache", "prefect", "dvc-site"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        inherited = {k: v for k, v in os.environ.items()
                     if not k.startswith(("AWS_", "MLFLOW_", "PREFECT_", "AUDIOVAE_", "DVC_", "PYTEST_"))}
        self.env = {**inherited, **shared_env, "HOME": str(self.dir / "home"), "TMPDIR": str(self.dir / "tmp"),
                    "XDG_CACHE_HOME": str(self.dir / "cache"), "PREFECT_HOME": str(self.dir / "prefect"),
                    "DVC_SITE_CACHE_DIR": str(self.dir / "dvc-site"), "AUDIOVAE_ROOT": str(self.root),
                    # this clone's own code, as on a machine that ran `make setup` in it
                    "PYTHONPATH": str(self.root / "src"), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
                    "GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": f"{name}@example.org",
                    "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": f"{name}@example.org"}

    def clone(self, origin: Path, endpoint: str, commit: str | None = None) -> "Machine":
        run(["git", "clone", "-q", origin, self.root], self.dir, self.env)
        if commit:
            run(["git", "checkout", "-q", commit], self.root, self.env)
        # the machine's DVC credentials and endpoint, never committed; MLflow needs none (proxied)
        for key, value in (("endpointurl", endpoint), ("access_key_id", KEYS["AWS_ACCESS_KEY_ID"]),
                           ("secret_access_key", KEYS["AWS_SECRET_ACCESS_KEY"])):
            self.dvc("remote", "modify", "--local", "shared", key, value)
        return self

    def dvc(self, *args, check=True):
        return run([BIN / "dvc", *args], self.root, self.env, check=check)

    def python(self, *args, check=True, timeout=600):
        return run([sys.executable, *args], self.root, self.env, check=check, timeout=timeout)


def seed_repository(base: Path, params: dict, env: dict) -> Path:
    """The project as a team's Git host holds it: tracked code, the test's small params, a DVC remote
    on S3 named in the committed config (the endpoint is each machine's)."""
    seed, origin = base / "seed", base / "githost" / "origin.git"
    seed.mkdir()
    for name in PROJECT_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, seed / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy(source, seed / name)
    (seed / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q", "-b", "main"], seed, env)
    run([BIN / "dvc", "init", "-q"], seed, env)
    for args in (("config", "core.analytics", "false"), ("config", "core.autostage", "true"),
                 ("remote", "add", "-d", "shared", f"s3://{BUCKET}/dvc")):
        run([BIN / "dvc", *args], seed, env)
    run(["git", "add", "-A"], seed, env)
    run(["git", "commit", "-q", "-m", "project"], seed, env)
    origin.parent.mkdir()
    run(["git", "init", "-q", "--bare", "-b", "main", origin], base, env)
    run(["git", "push", "-q", origin, "main"], seed, env)
    return origin


def started(procs: list, logs: list, name: str, cmd: list, cwd: Path, env: dict, folder: Path):
    log = folder / f"{name}.log"
    logs.append(log)
    procs.append(subprocess.Popen([str(c) for c in cmd], cwd=cwd, env=env, stdout=open(log, "w"),
                                  stderr=subprocess.STDOUT, start_new_session=True))
    return procs[-1], log


@pytest.mark.heavy
def test_two_machines_share_a_study_a_model_and_the_data_through_servers_only(tmp_path, tiny_fsdd_zip, postgres):
    for tool in (PREFECT, MOTO):
        if not tool.exists():
            if os.environ.get("CI") == "true":  # CI must run this test, never skip it
                pytest.fail(f"{tool.name} is required in CI: `make test` installs it (requirements-dev.txt)")
            pytest.skip(f"{tool.name} is not installed next to this Python (run `make test`)")
    import boto3

    procs: list[subprocess.Popen] = []
    logs: list[Path] = []
    servers = tmp_path / "servers"
    servers.mkdir()
    try:
        # ------------------------------------------------------------------ the shared servers
        prefect_port = free_port()  # Prefect's server takes longest to come up: started first, awaited last
        api = f"http://127.0.0.1:{prefect_port}/api"
        prefect_env = {**os.environ, "PREFECT_HOME": str(servers / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                       "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{servers / 'prefect.db'}"}
        server, server_log = started(procs, logs, "prefect-server",
                                     [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", prefect_port],
                                     servers, prefect_env, servers)
        s3_port = free_port()
        endpoint = f"http://127.0.0.1:{s3_port}"
        moto, moto_log = started(procs, logs, "s3", [MOTO, "-H", "127.0.0.1", "-p", s3_port], servers,
                                 {**os.environ, **KEYS}, servers)
        wait_http(f"{endpoint}/moto-api/", moto, moto_log, seconds=60)
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **{
            "aws_access_key_id": KEYS["AWS_ACCESS_KEY_ID"], "aws_secret_access_key": KEYS["AWS_SECRET_ACCESS_KEY"]})
        s3.create_bucket(Bucket=BUCKET)
        storage = postgres("twomachines_optuna")
        server_env = {**os.environ, **KEYS, "MLFLOW_S3_ENDPOINT_URL": endpoint}
        mlflow_port = free_port()
        procs.append(start_mlflow_server(postgres("twomachines_mlflow"), servers, mlflow_port,
                                         artifacts=f"s3://{BUCKET}/mlflow", env=server_env))
        tracking = f"http://127.0.0.1:{mlflow_port}"
        wait_http(f"{api}/health", server, server_log)

        # what every machine knows: the servers' addresses, never a path of another machine
        shared = {"MLFLOW_TRACKING_URI": tracking, "PREFECT_API_URL": api, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                  "PREFECT_WORKER_QUERY_SECONDS": "2", "AUDIOVAE_DATA_MIRROR": str(tiny_fsdd_zip.parent),
                  "COLUMNS": "200", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2"}
        params = tiny_tune_params(tiny_params(), Path("."))
        params["tracking"]["enabled"] = True
        params["tune"].update(threads_per_worker=1, heartbeat_seconds=0)  # two workers share this box's 2 cores
        params["retrain"]["required_metrics"] = []
        seed_env = Machine(tmp_path, "seeder", shared).env
        origin = seed_repository(tmp_path, params, seed_env)
        first_commit = run(["git", "rev-parse", "HEAD"], tmp_path / "seed", seed_env).stdout.strip()

        # ------------------------------------------------------ the coordinator retrains, pushes, publishes
        coord = Machine(tmp_path, "coordinator", shared).clone(origin, endpoint)
        retrained = coord.python("-m", "pipeline.flows", "retrain", "--push", timeout=900)
        assert "promoted to champion" in retrained.stdout, retrained.stdout[-3000:]
        published = coord.python("-m", "pipeline.publish", "--branch", "main")
        assert published.stdout.startswith("pushed "), published.stdout
        commit = run(["git", "rev-parse", "HEAD"], coord.root, coord.env).stdout.strip()
        lock = yaml.safe_load((coord.root / "dvc.lock").read_text())
        locked = {o["path"]: o["md5"] for stage in lock["stages"].values() for o in stage.get("outs", [])}

        keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
                for o in page.get("Contents", [])]
        assert any(k.startswith("dvc/files/md5/") for k in keys), keys[:20]          # DVC's objects
        assert any(k.startswith("dvc/runs/") for k in keys), "no run-cache pushed"      # repro --push's run-cache
        assert any(k.startswith("mlflow/") and k.endswith(".avae") for k in keys), keys[:20]  # the registered bundle

        from mlflow.tracking import MlflowClient
        client = MlflowClient(tracking_uri=tracking)
        champion = client.get_model_version_by_alias("audiovae", "champion")
        parent = client.get_run(client.get_run(champion.run_id).data.tags["mlflow.parentRunId"])
        assert parent.data.tags["git_commit"] == first_commit  # the commit it ran at, and the lock it left
        assert "dvc.lock" in [a.path for a in client.list_artifacts(parent.info.run_id)]

        # ---------------------------------------------------------------- Prefect: pool, limit, deployments
        os.symlink(REPO / ".venv", coord.root / ".venv")  # the coordinator's `make setup`, without reinstalling
        setup = run(["make", "-o", ".venv/.installed", "prefect-setup", "GPUS=2"], coord.root, coord.env, timeout=300)
        assert "AUDIOVAE_PROJECT_DIR" not in setup.stdout

        def get(path):
            with urllib.request.urlopen(f"{api}{path}", timeout=10) as response:
                return json.loads(response.read())

        def post(path, body):
            request = urllib.request.Request(f"{api}{path}", data=json.dumps(body).encode(),
                                             headers={"Content-Type": "application/json"}, method="POST")
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read())

        assert get("/concurrency_limits/tag/gpu")["concurrency_limit"] == 2
        assert get("/work_pools/gpu")["type"] == "process"
        deployments = post("/deployments/filter", {})
        assert {"repro", "tune", "tune-worker", "retrain"} <= {d["name"] for d in deployments}
        # no deployment carries a machine's path: each worker runs its own clone
        for d in deployments:
            assert str(tmp_path) not in json.dumps(d) and str(REPO) not in json.dumps(d), json.dumps(d, indent=1)

        # ------------------------------------------- two worker machines with no data join a study
        workers = [Machine(tmp_path, name, shared).clone(origin, endpoint) for name in ("gpu-a", "gpu-b")]
        for machine in workers:
            assert not (machine.root / "data").exists()
            # one flow run at a time: a machine with one GPU (the runbook's command)
            started(procs, logs, f"worker-{machine.name}", [PREFECT, "worker", "start", "--pool", "gpu", "--limit", "1",
                                                            "--name", machine.name], machine.root, machine.env, servers)
        t0 = time.monotonic()
        tuned = coord.python("-m", "pipeline.flows", "tune", "inner", "--trials", "4", "--workers", "2",
                             "--storage", storage, "--study", "two-machines", check=False, timeout=600)
        tails = "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for log in logs if "worker" in log.name)
        assert tuned.returncode == 0, tuned.stdout[-3000:] + tuned.stderr[-3000:] + tails
        tune_seconds = time.monotonic() - t0

        import optuna
        trials = optuna.load_study(study_name="two-machines", storage=storage).trials
        assert sorted(t.number for t in trials) == [0, 1, 2, 3]  # every trial once
        assert all(t.state.name in ("COMPLETE", "PRUNED") for t in trials), [t.state for t in trials]
        assert {t.user_attrs["checkout"] for t in trials} == {str(m.root) for m in workers}
        from audiovae.tracking import remote
        inputs = ["data/encodings"]
        for machine in workers:  # exactly the plan's inputs, equal to the coordinator's lock
            assert remote.workspace_hashes(machine.root, inputs) == {p: locked[p] for p in inputs}
            assert not (machine.root / "data" / "raw").exists() and not (machine.root / "data" / "features").exists()
            assert run(["git", "rev-parse", "HEAD"], machine.root, machine.env).stdout.strip() == commit
        pulled = sum(f.stat().st_size for m in workers for f in (m.root / "data" / "encodings").rglob("*") if f.is_file())
        # each worker's own account of its pull (its flow run's log): the bytes on its disk, and seconds
        said = [re.search(r"pulled (\d+) bytes of data/encodings in ([\d.]+) s", log.read_text())
                for log in logs if log.name.startswith("worker-")]
        assert all(said) and sum(int(m.group(1)) for m in said) == pulled, tails
        pull_worker_seconds = [float(m.group(2)) for m in said]
        worker_runs = [r for r in post("/flow_runs/filter", {}) if r["name"].startswith("two-machines-worker-")]
        assert len(worker_runs) == 2 and all(r["state"]["type"] == "COMPLETED" for r in worker_runs)
        plan = worker_runs[0]["parameters"]["plan"]
        assert plan["commit"] == commit and plan["inputs"] == {p: locked[p] for p in inputs}
        assert plan["storage"] == storage and plan["tracking_uri"] == tracking

        # ------------------------------------------------- refusals: another commit, no remote
        plan_file = tmp_path / "plan.json"
        plan_file.write_text(json.dumps(plan))
        stale = Machine(tmp_path, "stale", shared).clone(origin, endpoint, commit=first_commit)
        refused = stale.python("-m", "pipeline.flows", "tune-worker", plan_file, "--index", "0", check=False)
        assert refused.returncode == 2
        assert re.search(rf"at commit {first_commit[:12]}, the study's plan at {commit[:12]}", refused.stderr.splitlines()[-1])
        cut_off = Machine(tmp_path, "cut-off", shared).clone(origin, f"http://127.0.0.1:{free_port()}")
        cut_off.env["AWS_MAX_ATTEMPTS"] = "1"  # botocore's retries would only make the refusal slower
        refused = cut_off.python("-m", "pipeline.flows", "tune-worker", plan_file, "--index", "0", check=False)
        assert refused.returncode == 2
        assert "dvc pull from remote 'shared' failed" in refused.stderr.splitlines()[-1], refused.stderr[-2000:]
        after = optuna.load_study(study_name="two-machines", storage=storage).trials
        assert [(t.number, t.state) for t in after] == [(t.number, t.state) for t in trials]  # nothing counted

        # ---------------------------------- another machine: the champion with no data, then every output
        fresh = Machine(tmp_path, "laptop", shared).clone(origin, endpoint)
        assert not (fresh.root / "data").exists()
        out = fresh.dir / "generated"
        generated = fresh.python("-m", "audiovae.cli", "--model", "models:/audiovae@champion", "generate",
                                 "--label", "3", "--count", "2", "--out", out)
        assert "wrote 2 file(s)" in generated.stdout
        import soundfile
        for path in sorted(out.glob("*.wav")):
            wave, rate = soundfile.read(path)
            assert rate == params["filter"]["sample_rate"] and np.abs(wave).max() > 0.05  # sound, not silence
        # the data behind the registered model, found from the registry alone (the runbook's command)
        restored = fresh.dir / "restored"
        run([BIN / "mlflow", "artifacts", "download", "-r", parent.info.run_id, "-a", "dvc.lock", "-d", restored],
            fresh.dir, fresh.env, timeout=120)
        assert (restored / "dvc.lock").read_text() == (fresh.root / "dvc.lock").read_text()
        t0 = time.monotonic()
        fresh.dvc("pull")
        pull_seconds = time.monotonic() - t0
        assert "up to date" in fresh.dvc("status").stdout
        assert sorted((fresh.root / "reports" / "audio").glob("*.wav"))  # the report page's players
        print(f"two machines: 4 trials on 2 workers in {tune_seconds:.0f} s; each worker pulled "
              f"{pulled // 2} bytes of data/encodings in {' and '.join(f'{s:.1f}' for s in pull_worker_seconds)} s; "
              f"a fresh clone's dvc pull of every output took {pull_seconds:.1f} s")
    finally:
        for proc in reversed(procs):
            stop_process(proc)
