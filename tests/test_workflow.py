"""The CI retraining workflow passes actionlint (and actionlint does catch a broken one)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ACTIONLINT = Path(sys.executable).with_name("actionlint")


def lint(path: Path) -> subprocess.CompletedProcess:
    if not ACTIONLINT.exists():
        pytest.skip("actionlint is not installed next to this Python (run `make test`)")
    return subprocess.run([str(ACTIONLINT), "-no-color", str(path)], capture_output=True, text=True, timeout=60)


def test_retrain_workflow_passes_actionlint():
    result = lint(REPO / ".github" / "workflows" / "retrain.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_rejects_a_broken_workflow(tmp_path):
    broken = tmp_path / ".github" / "workflows" / "bad.yml"
    broken.parent.mkdir(parents=True)
    text = (REPO / ".github" / "workflows" / "retrain.yml").read_text()
    broken.write_text(text.replace("runs-on:", "runs_on:").replace("${{ secrets.DVC_REMOTE_URL }}",
                                                                   "${{ secret.DVC_REMOTE_URL }}"))
    result = lint(broken)
    assert result.returncode != 0 and "runs-on" in result.stdout


def test_workflow_triggers_and_secrets():
    import yaml
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "retrain.yml").read_text())
    on = workflow[True] if True in workflow else workflow["on"]  # YAML 1.1 reads `on` as True
    assert set(on) == {"push", "schedule", "workflow_dispatch"}
    assert {"params.yaml", "dvc.yaml", "src/**", "pipeline/**"} <= set(on["push"]["paths"])
    text = (REPO / ".github" / "workflows" / "retrain.yml").read_text()
    assert "make setup" in text and "pipeline.flows retrain" in text and "GITHUB_STEP_SUMMARY" in text
    # CPU runners take torch from the CPU wheel index, not PyPI's CUDA build; runtime packages only
    assert "TORCH_INDEX=" in text and "download.pytorch.org/whl/cpu" in text and "setup-dev" not in text
    assert "secrets.MLFLOW_TRACKING_URI" in text


def test_runtime_install_leaves_the_test_tools_out():
    """`make setup` (and CI retraining) installs requirements.txt only; the suite's tools are in
    requirements-dev.txt, which includes the runtime set; every name is pinned in constraints.txt."""
    import re

    def names(path):
        lines = [line.split("#")[0].strip() for line in (REPO / path).read_text().splitlines()]
        return {re.split(r"[=<>\[ ]", line)[0].lower() for line in lines if line and not line.startswith("-")}

    runtime, dev = names("requirements.txt"), names("requirements-dev.txt")
    assert "torch" in runtime and not {"pytest", "playwright", "ruff"} & runtime
    assert {"pytest", "playwright", "ruff"} <= dev
    assert "-r requirements.txt" in (REPO / "requirements-dev.txt").read_text()
    pinned = {line.split("==")[0].lower() for line in (REPO / "constraints.txt").read_text().splitlines() if "==" in line}
    assert (runtime | dev) <= pinned, sorted((runtime | dev) - pinned)
