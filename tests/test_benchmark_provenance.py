"""A benchmark's table names the commit it ran on, and says so when the code differed from it:
documentation edited beside a running benchmark must not mark its table, code and parameters must."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import benchmark_module


def load_roots():
    return benchmark_module("roots")


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    for rel in ("README.md", "params.yaml", "docs/results.md", "benchmarks/reports/table.md", "src/audiovae/x.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("one\n")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "first")
    return tmp_path


@pytest.mark.parametrize("rel", ["README.md", "docs/results.md", "benchmarks/reports/table.md"])
def test_documentation_and_reports_do_not_mark_a_run_uncommitted(repo: Path, rel: str):
    (repo / rel).write_text("two\n")
    assert "uncommitted" not in load_roots().provenance(repo)


@pytest.mark.parametrize("rel", ["params.yaml", "src/audiovae/x.py"])
def test_parameters_and_code_mark_a_run_uncommitted(repo: Path, rel: str):
    (repo / rel).write_text("two\n")
    assert "(uncommitted changes)" in load_roots().provenance(repo)
