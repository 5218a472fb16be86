"""Prefect flows: the tune flow fans out workers tagged gpu (ephemeral mode, no server)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def prefect_home(tmp_path, monkeypatch):
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    monkeypatch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    monkeypatch.setenv("PREFECT_API_DATABASE_CONNECTION_URL", f"sqlite+aiosqlite:///{tmp_path / 'prefect.db'}")
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    sys.path.insert(0, str(REPO))
    yield
    sys.path.remove(str(REPO))


def test_tune_flow_runs_two_workers_tagged_gpu(trained, tmp_path, monkeypatch, prefect_home):
    root, params, *_ = trained
    from test_tune import tiny_tune_params

    from pipeline import flows
    p = tiny_tune_params(params, root)
    p["tracking"]["enabled"] = False
    result = flows.tune_flow(target="inner", trials=4, workers=2, storage=f"sqlite:///{tmp_path / 'optuna.db'}",
                             study="flow-study", root=str(root), params=p, return_state=True)
    value = result.result()
    assert value["study"] == "flow-study" and value["ran"] == 4 and value["trials"] == 4

    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async def task_runs():
        async with get_client() as client:
            return await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[result.state_details.flow_run_id])))
    runs = asyncio.run(task_runs())
    workers = [r for r in runs if r.name.startswith("tune-worker-")]
    assert len(workers) == 2 and all("gpu" in r.tags for r in workers)
    assert all(r.state.is_completed() for r in workers)
