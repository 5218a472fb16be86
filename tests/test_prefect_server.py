"""A real Prefect server: `make prefect-setup` creates the `gpu` process pool and its concurrency
limit and deploys prefect.yaml; two process workers take the `tune` flow and its `tune-worker`
runs, each in its own process. Everything started is stopped, even on failure. (The tiny project
is the session's trained one: a `repro` deployment run would add a full pipeline's minutes.)"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest

from conftest import REPO, free_port, stop_process, wait_http
from test_tune import tiny_tune_params

PREFECT = Path(sys.executable).with_name("prefect")
FINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


def test_prefect_yaml_deployments_scale_tuning_over_process_workers(trained, tmp_path):
    if not PREFECT.exists():
        pytest.skip("prefect is not installed next to this Python (run `make test`)")
    root, params, *_ = trained
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "COLUMNS": "200", "PREFECT_HOME": str(tmp_path / "prefect-home"),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{tmp_path / 'prefect.db'}",
           "PREFECT_SERVER_API_HOST": "127.0.0.1", "PREFECT_SERVER_API_PORT": str(port),
           "PREFECT_API_URL": api, "PYTHONPATH": str(REPO),
           "PREFECT_WORKER_QUERY_SECONDS": "2"}  # workers look for runs every 2 s, not 10: seconds per run saved
    started: list[subprocess.Popen] = []
    logs = []
    try:
        def start(name, *args):
            log = tmp_path / f"{name}.log"
            logs.append(log)
            started.append(subprocess.Popen([str(PREFECT), *args], env=env, stdout=open(log, "w"),
                                            stderr=subprocess.STDOUT, start_new_session=True))
            return started[-1], log

        server, server_log = start("server", "server", "start", "--host", "127.0.0.1", "--port", str(port))
        wait_http(f"{api}/health", server, server_log)
        setup = subprocess.run(["make", "-C", str(REPO), "prefect-setup", "GPUS=1"], env=env,
                               capture_output=True, text=True, timeout=300)
        assert setup.returncode == 0, setup.stdout + setup.stderr
        for name in ("worker-a", "worker-b"):
            start(name, "worker", "start", "--pool", "gpu", "--name", name)

        # the server is asked over its REST API (this process's Prefect settings may point elsewhere)
        def get(path):
            with urllib.request.urlopen(f"{api}{path}", timeout=10) as response:
                return json.loads(response.read())

        def post(path, body):
            request = urllib.request.Request(f"{api}{path}", data=json.dumps(body).encode(),
                                             headers={"Content-Type": "application/json"}, method="POST")
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read())

        def run(deployment, params, seconds):
            out = subprocess.run([str(PREFECT), "deployment", "run", deployment, "--params", json.dumps(params)],
                                 env=env, capture_output=True, text=True, timeout=120)
            assert out.returncode == 0, out.stdout + out.stderr
            run_id = re.search(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", out.stdout).group(0)
            deadline = time.monotonic() + seconds
            state = get(f"/flow_runs/{run_id}")["state"]
            while state["type"] not in FINAL and time.monotonic() < deadline:
                time.sleep(1)
                state = get(f"/flow_runs/{run_id}")["state"]
            tails = "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for log in logs[1:])
            assert state["type"] == "COMPLETED", f"{deployment}: {state}\n{tails}"
            return run_id

        # what prefect.yaml declares, created by `make prefect-setup`
        assert get("/concurrency_limits/tag/gpu")["concurrency_limit"] == 1
        assert get("/work_pools/gpu")["type"] == "process"
        names = {d["name"] for d in post("/deployments/filter", {})}
        assert {"repro", "tune", "tune-worker", "retrain"} <= names

        storage = f"sqlite:///{tmp_path / 'optuna.db'}"
        tune_params = tiny_tune_params(params, root)
        tune_params["tracking"]["enabled"] = False
        tune = run("tune/tune", {"root": str(root), "trials": 4, "workers": 2, "storage": storage,
                                 "study": "served", "params": tune_params}, 420)
        assert get(f"/flow_runs/{tune}")["work_pool_name"] == "gpu"
        children = post("/flow_runs/filter", {"flow_runs": {"parent_flow_run_id": {"operator": "and_", "any_": [tune]}}})
        workers = [r for r in post("/flow_runs/filter", {}) if r["name"].startswith("served-worker-")]
        assert len(workers) == 2 and all(r["state"]["type"] == "COMPLETED" for r in workers), children
        trials = optuna.load_study(study_name="served", storage=storage).trials
        assert sorted(t.number for t in trials) == [0, 1, 2, 3]  # every trial once, none lost
        assert all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
        assert len({t.user_attrs["worker"] for t in trials}) == 2  # two processes, one share each
    finally:
        for proc in reversed(started):
            stop_process(proc)
