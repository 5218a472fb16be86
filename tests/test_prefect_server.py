"""A real Prefect server, a `gpu` process work pool with a concurrency limit, one worker, the
`repro` flow deployed and run on a tiny project; everything started is stopped, even on failure."""
from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO, free_port, stop_process, wait_http

PREFECT = Path(sys.executable).with_name("prefect")


def test_repro_deployment_runs_on_a_gpu_pool_worker(dvc_project, tmp_path):
    if not PREFECT.exists():
        pytest.skip("prefect is not installed next to this Python (run `make test`)")
    root, env = dvc_project
    env = {**env, "COLUMNS": "200"}
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**env, "PREFECT_HOME": str(tmp_path / "prefect-home"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{tmp_path / 'prefect.db'}",
           "PREFECT_SERVER_API_HOST": "127.0.0.1", "PREFECT_SERVER_API_PORT": str(port),
           "PREFECT_API_URL": api, "PYTHONPATH": str(REPO)}
    started: list[subprocess.Popen] = []
    try:
        server_log = tmp_path / "server.log"
        server = subprocess.Popen([str(PREFECT), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                                  env=env, stdout=open(server_log, "w"), stderr=subprocess.STDOUT,
                                  start_new_session=True)
        started.append(server)
        wait_http(f"{api}/health", server, server_log)

        def cli(*args):
            result = subprocess.run([str(PREFECT), *args], env=env, capture_output=True, text=True, timeout=120)
            assert result.returncode == 0, result.stdout + result.stderr
            return result.stdout

        cli("work-pool", "create", "gpu", "--type", "process")
        cli("concurrency-limit", "create", "gpu", "1")

        deploy = subprocess.run([sys.executable, "-c", (
            "from pipeline.flows import repro_flow\n"
            f"repro_flow.from_source(source={str(REPO)!r}, entrypoint='pipeline/flows.py:repro_flow')"
            ".deploy(name='repro-test', work_pool_name='gpu', print_next_steps=False)\n")],
            env=env, cwd=str(REPO), capture_output=True, text=True, timeout=180)
        assert deploy.returncode == 0, deploy.stdout + deploy.stderr

        worker_log = tmp_path / "worker.log"
        worker = subprocess.Popen([str(PREFECT), "worker", "start", "--pool", "gpu"], env=env,
                                  stdout=open(worker_log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
        started.append(worker)

        # everything below talks to the server over its REST API or CLI (never this process's Prefect
        # settings, which an earlier test may have pointed at an ephemeral server)
        import json
        import re

        def get(path):
            with urllib.request.urlopen(f"{api}{path}", timeout=10) as response:
                return json.loads(response.read())
        assert get("/concurrency_limits/tag/gpu")["concurrency_limit"] == 1
        out = cli("deployment", "run", "repro/repro-test", "--param", f"root={root}")
        run_id = re.search(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", out).group(0)
        deadline = time.monotonic() + 420
        state = get(f"/flow_runs/{run_id}")["state"]
        while state["type"] not in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") and time.monotonic() < deadline:
            time.sleep(3)
            state = get(f"/flow_runs/{run_id}")["state"]
        assert state["type"] == "COMPLETED", f"{state}\n{worker_log.read_text()[-4000:]}"
        assert get(f"/flow_runs/{run_id}")["work_pool_name"] == "gpu"
        assert (root / "data" / "features" / "spectrograms.npy").exists()
        assert (root / "data" / "models" / "inner" / "model.pt").exists()
        assert (root / "reports" / "metrics.json").exists()
    finally:
        for proc in reversed(started):
            stop_process(proc)
