"""Figures in the README and docs/ equal the files they come from, and reports/ holds only what the
pipeline declares: a benchmark writes to benchmarks/reports/, a page includes it (benchmarks/figures.py)."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import REPO, benchmark_module


def load_figures():
    return benchmark_module("figures")


def test_every_block_in_the_readme_and_docs_equals_the_file_it_comes_from():
    figures = load_figures()
    stale = {page.relative_to(REPO).as_posix(): figures.refresh(page.read_text())[1] for page in figures.pages()}
    assert not {page: s for page, s in stale.items() if s}, "run `make figures`"
    blocks = sum(len(figures.BLOCK.findall(page.read_text())) for page in figures.pages())
    assert blocks >= 10  # the README's and the results page's tables, at least


def test_a_figure_edited_by_hand_or_a_rerun_benchmark_is_caught(tmp_path):
    figures = load_figures()
    (tmp_path / "bench").mkdir()
    report = tmp_path / "bench" / "speed.md"
    report.write_text("# Speed\n\ncommit abc1234, AMD EPYC\n\n| what | seconds |\n|---|---|\n| epoch | 1.18 |\n")
    page = "intro\n\n<!-- from bench/speed.md -->\n{body}<!-- end from -->\n\nafter\n"
    fresh = page.format(body="commit abc1234, AMD EPYC\n\n| what | seconds |\n|---|---|\n| epoch | 1.18 |\n")
    assert figures.refresh(fresh, tmp_path) == (fresh, [])
    edited = fresh.replace("1.18", "1.08")
    assert figures.refresh(edited, tmp_path) == (fresh, ["bench/speed.md"])  # rewritten from the report
    report.write_text(report.read_text().replace("1.18", "0.97"))
    assert figures.refresh(fresh, tmp_path)[1] == ["bench/speed.md"]
    (tmp_path / "metrics.json").write_text('{"quality": {}}')
    with pytest.raises(SystemExit, match="no table 'nosuch'"):
        figures.refresh("<!-- from metrics.json: nosuch -->\n<!-- end from -->\n", tmp_path)
    with pytest.raises(SystemExit, match="missing"):
        figures.refresh("<!-- from bench/gone.md -->\n<!-- end from -->\n", tmp_path)


def test_the_quality_table_is_rendered_from_the_metrics_values():
    figures = load_figures()
    metrics = {"quality": {"full_pesq_nb": 3.3634, "full_stoi": 0.9141, "real_dnsmos_ovrl": 2.597},
               "classifier": {"clean_full_accuracy": 0.9431, "clean_full_balanced_accuracy": 0.9429,
                              "clean_full_balanced_accuracy_low": 0.916, "clean_full_balanced_accuracy_high": 0.968}}
    table = figures.quality(metrics)
    assert "| **full model** (`reconstruct`) | 3.36 | 0.914 | – | 0.943 (0.943 [0.916, 0.968]) |" in table
    assert "| real test audio (model input form) | – | – | 2.60 | – |" in table


@pytest.mark.parametrize("rel", ["README.md", "docs/results.md"])
def test_the_figures_of_the_readme_and_the_results_page_are_all_included(rel):
    """No table of figures on these pages is typed by hand: each lies in a block (history.md keeps
    the older runs as they were written up)."""
    figures = load_figures()
    text = figures.BLOCK.sub("", (REPO / rel).read_text())
    hand = [line for line in text.splitlines() if line.startswith("|") and re.search(r"\d\.\d", line)]
    assert not hand, hand[:5]


def test_reports_holds_only_what_dvc_yaml_declares():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    declared = {next(iter(o)) if isinstance(o, dict) else o
                for stage in stages.values() for key in ("outs", "metrics", "plots") for o in stage.get(key, [])}
    tracked = subprocess.run(["git", "ls-files", "reports"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.split()
    assert tracked, "no tracked reports: is this a git checkout?"
    # DVC writes the .gitignore files beside the outputs it caches
    undeclared = [path for path in tracked if Path(path).name != ".gitignore"
                  and not any(path == out or path.startswith(out + "/") for out in declared)]
    assert not undeclared, f"{undeclared}: a benchmark's report belongs in benchmarks/reports/"
