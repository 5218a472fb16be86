"""`dvc repro` for real on tiny data: caching, no-op re-runs, and only downstream stages re-run."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DVC,
    free_port,
    require_chromium,
    sh,
    stop_process,
    wait_http,
)


def ran(output: str, stages) -> list[str]:
    return [s for s in stages if f"Running stage '{s}'" in output]


def pipeline_stages(root) -> tuple[str, ...]:
    stages = tuple(yaml.safe_load((root / "dvc.yaml").read_text())["stages"])  # in pipeline order
    assert stages[0] == "params" and stages[-1] == "export"
    return stages


def test_a_first_repro_runs_every_stage_and_a_second_runs_nothing(dvc_reproduced, dvc_copy):
    """One tiny DVC project, as a user works with it: a first `dvc repro` runs every stage (the shared
    project's build), a second in the same workspace runs nothing and `dvc status` is up to date."""
    _, _, first = dvc_reproduced
    root, env = dvc_copy
    stages = pipeline_stages(root)
    assert ran(first, stages) == list(stages)
    assert (root / "reports" / "metrics.json").exists()
    second = sh([str(DVC), "repro"], root, env)
    assert "Running stage" not in second
    assert "up to date" in sh([str(DVC), "status"], root, env)


def test_an_evaluation_setting_re_runs_only_evaluate(dvc_copy):
    root, env = dvc_copy
    stages = pipeline_stages(root)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["evaluate"]["perturb_db"] = 6
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    third = sh([str(DVC), "repro"], root, env)
    # the bundle does not hold evaluation settings: no new registry version for a perturb_db change
    assert ran(third, stages) == ["params", "evaluate"]
    from mlflow.tracking import MlflowClient
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    assert len(client.search_model_versions("name='audiovae'")) == 1


@pytest.mark.heavy
def test_a_preset_exp_run_re_runs_what_it_changes_and_runs_compare_side_by_side(dvc_copy, tmp_path):
    """`dvc exp run -S preset=NAME` re-runs exactly the stages whose effective values the preset
    changes, and dvc.lock / `dvc params diff` show those values; every repro that ran something is
    one MLflow parent run, each stage a child under it; the two compare side by side in the MLflow UI."""
    root, env = dvc_copy
    stages = pipeline_stages(root)
    out = sh([str(DVC), "exp", "run", "-S", "preset=tiny_wider_inner"], root, env)
    # the prior trains on the new inner VAE's latents; export bundles both
    assert ran(out, stages) == ["params", "train_inner", "train_prior", "evaluate", "export"]
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    assert lock["stages"]["train_inner"]["params"]["reports/params/train_inner.yaml"]["inner"]["latent_channels"] == 3
    diff = sh([str(DVC), "params", "diff"], root, env)
    assert "reports/params/train_inner.yaml" in diff and "inner.latent_channels" in diff
    assert any(line.split()[-2:] == ["2", "3"] for line in diff.splitlines() if "inner.latent_channels" in line)
    assert "up to date" in sh([str(DVC), "status"], root, env)

    # every `dvc repro` / `dvc exp run` that ran something is one parent run, each stage a child under it
    from mlflow.tracking import MlflowClient
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("audiovae")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    parents = [r for r in runs if r.data.tags.get("kind") == "pipeline"]
    assert len(parents) == 2  # the build's repro and this experiment
    children = {p.info.run_id: sorted(r.data.tags["stage"] for r in runs
                                      if r.data.tags.get("mlflow.parentRunId") == p.info.run_id) for p in parents}
    assert sorted(children.values()) == sorted([sorted(stages),
                                                ["evaluate", "export", "params", "train_inner", "train_prior"]])
    for run in runs:  # the params stage of the first repro runs before there is any data
        assert run.data.tags["git_commit"]
        assert run.data.tags["dataset_manifest"] != "none" or run.data.tags.get("stage") == "params"
    evaluate_runs = [r for r in runs if r.data.tags.get("stage") == "evaluate"]
    assert all("classifier.recon_accuracy" in r.data.metrics for r in evaluate_runs)
    params = yaml.safe_load((root / "params.yaml").read_text())
    outer_run = next(r for r in runs if r.data.tags.get("stage") == "train_outer")
    assert len(client.get_metric_history(outer_run.info.run_id, "val_loss")) == params["outer"]["train"]["epochs"]
    for name, count in (("audiovae-outer", 1), ("audiovae-inner", 2), ("audiovae", 2)):
        versions = client.search_model_versions(f"name='{name}'")
        assert len(versions) == count and {v.run_id for v in versions} <= {r.info.run_id for r in runs}
    experiment_run = next(r for r in parents if r.data.params["inner.latent_channels"] == "3")
    base_run = next(r for r in parents if r.data.params["inner.latent_channels"] == "2")
    compare_in_mlflow_ui(root, [base_run, experiment_run], tmp_path)


def compare_in_mlflow_ui(root, parents, tmp_path):
    """Two pipeline runs (base and experiment), as a user compares them: `mlflow ui` on the run's
    store, opened in headless Chromium on the experiment's runs, both parent runs ticked, Compare
    pressed; the differing parameter and the quality and classifier metrics are on the page."""
    sync_api = require_chromium()
    store = f"sqlite:///{root / 'mlflow.db'}"
    experiment_id = parents[0].info.experiment_id
    assert all("quality.full_pesq_nb" in r.data.metrics for r in parents)
    port = free_port()
    log = tmp_path / "mlflow-ui.log"
    ui = subprocess.Popen([str(Path(sys.executable).with_name("mlflow")), "ui", "--backend-store-uri", store,
                           "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                          stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", ui, log)
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(f"http://127.0.0.1:{port}/#/experiments/{experiment_id}/runs"
                          "?workflowType=machine_learning")
                for run in parents:
                    row = page.get_by_role("row").filter(has_text=run.info.run_name)
                    row.first.get_by_role("checkbox").first.check(timeout=30000)
                page.get_by_role("button", name="Compare").first.click()
                page.get_by_text("Comparing 2 Runs").wait_for(timeout=30000)
                text = page.inner_text("body")
                assert "inner.latent_channels\t2\t3" in text or "inner.latent_channels\t3\t2" in text, text[:3000]
                # the metrics table renders the rows in view: scroll down the page as a reader would
                seen = set(text.split("\n"))
                page.get_by_text("classifier.clean_full_accuracy").first.hover()
                wanted = {"quality.full_pesq_nb", "quality.full_stoi", "classifier.clean_full_accuracy"}
                for _ in range(60):
                    if wanted <= seen:
                        break
                    page.mouse.wheel(0, 250)
                    page.wait_for_timeout(150)
                    seen |= set(page.inner_text("body").split("\n"))
                assert wanted <= seen, sorted(wanted - seen)
                # the picture: a fresh page (the scrolled table's columns drift apart), differences only
                page.reload()
                page.get_by_text("Comparing 2 Runs").wait_for(timeout=30000)
                page.get_by_text("Show diff only").nth(0).click()  # parameters
                page.get_by_text("Show diff only").nth(1).click()  # metrics
                page.wait_for_timeout(500)
                shots = Path(os.environ.get("AUDIOVAE_SCREENSHOTS", tmp_path))
                shots.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(shots / "mlflow_compare.png"), full_page=True)
                assert (shots / "mlflow_compare.png").stat().st_size > 10_000
            finally:
                browser.close()
    finally:
        stop_process(ui)


def test_run_cache_restores_every_report_the_stage_owns(dvc_copy):
    """Parameters A, then B, then A again: the third run comes from DVC's run-cache, and every
    report the filter stage owns is the first run's, byte for byte (undeclared reports used to keep
    the second run's content)."""
    root, env = dvc_copy
    params = yaml.safe_load((root / "params.yaml").read_text())
    reports = root / "reports" / "filter"

    def run(upper: float) -> tuple[str, dict[str, bytes]]:
        params["filter"]["upper_percentile"] = upper
        (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        out = sh([str(DVC), "repro", "filter"], root, env)
        return out, {p.name: p.read_bytes() for p in sorted(reports.iterdir()) if p.is_file()}

    _, first = run(97)
    assert {"rejections.csv", "lengths.csv", "percentiles.csv", "summary.json", "length_hist.png"} <= set(first)
    _, second = run(60)
    assert second["rejections.csv"] != first["rejections.csv"]  # B rejects other files
    out, third = run(97)
    assert "Stage 'filter' is cached" in out
    assert third == first
