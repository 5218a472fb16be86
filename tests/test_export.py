"""Issue 13: one-file export, loading it with no project files, the registry's champion in the CLI,
and ``vary``."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import linked_project, typed
from test_pipeline import stereo_44k

from audiovae import cli
from audiovae.config.params import deep_merge
from audiovae.inference import bundle
from audiovae.inference.model import AudioVAE
from audiovae.stages import export
from audiovae.tracking import registry
from audiovae.tracking import runs as tracking_runs


def wav_bytes(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.wav"))}


def test_exported_bundle_reproduces_the_project_with_no_project_files(trained, tmp_path, tiny_fsdd_zip):
    root, *_ = trained
    assert cli.main(["--root", str(root), "export", "--out", str(tmp_path / "out" / "model.avae")]) == 0
    elsewhere = tmp_path / "elsewhere"  # a folder with no params.yaml, no data/, no reports/
    elsewhere.mkdir()
    shutil.copy(tmp_path / "out" / "model.avae", elsewhere / "model.avae")
    voice = stereo_44k(tmp_path / "voice.wav", tiny_fsdd_zip)
    for name, args in (("generate", ["generate", "--label", "3", "--count", "2", "--seed", "7"]),
                       ("reconstruct", ["reconstruct", str(voice)]),
                       ("vary", ["vary", str(voice), "--count", "2", "--noise", "0.5"])):
        assert cli.main(["--root", str(root)] + args + ["--out", str(tmp_path / "project" / name)]) == 0
        assert cli.main(["--root", str(elsewhere), "--model", str(elsewhere / "model.avae")] + args
                        + ["--out", str(tmp_path / "bundle" / name)]) == 0
        made = wav_bytes(tmp_path / "project" / name)
        assert made and made == wav_bytes(tmp_path / "bundle" / name), name  # bit-identical
    assert sorted(p.name for p in elsewhere.iterdir()) == ["model.avae"]  # nothing needed, nothing written


def test_bundle_is_self_describing_and_safe_to_open(trained, tmp_path):
    root, params, *_ = trained
    path = bundle.write(bundle.from_project(root), tmp_path / "m.avae")
    raw = torch.load(path, weights_only=True)  # no pickled code: PyTorch's safe loader opens it
    assert raw["format"] == bundle.FORMAT and raw["version"] == bundle.VERSION
    assert raw["params"]["inner"]["latent_dim"] == params["inner"]["latent_dim"]
    assert raw["data_manifest"] == tracking_runs.manifest_hash(root) != "none"
    assert set(raw) >= {"outer", "inner", "codec", "stats", "audio"}
    assert raw["inner"]["class_means"].shape[0] == len(raw["inner"]["labels"])
    # the same outputs give the same bytes (a DVC output must be deterministic)
    assert bundle.write(bundle.from_project(root), tmp_path / "again.avae").read_bytes() == path.read_bytes()
    (tmp_path / "notes.avae").write_text("not a model")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.avae")
    for bad in ("notes.avae", "other.avae"):
        with pytest.raises(bundle.BundleError, match="not an audiovae model bundle"):
            bundle.read(tmp_path / bad)
    assert cli.main(["--model", str(tmp_path / "notes.avae"), "generate", "--label", "1", "--out", str(tmp_path)]) == 2


def test_vary_is_deterministic_and_strays_further_with_more_noise(trained, tmp_path, tiny_fsdd_zip):
    root, *_ = trained
    model = AudioVAE.from_project(root)
    wave = model.load_audio(stereo_44k(tmp_path / "voice.wav", tiny_fsdd_zip))
    reconstruction = np.stack(model.vary_specs(wave, 1, 0.0)[0])

    def distance(noise, seed=0):
        """How far the decoded variations stray from the plain reconstruction (noise 0)."""
        specs = np.stack(model.vary_specs(wave, 4, noise, seed)[0])
        return float(np.mean(np.abs(specs - reconstruction)))

    assert np.array_equal(model.vary(wave, 2, 0.7, seed=3)[1], model.vary(wave, 2, 0.7, seed=3)[1])
    assert not np.array_equal(model.vary(wave, 2, 0.7, seed=3)[1], model.vary(wave, 2, 0.7, seed=4)[1])
    assert all(len(o) == len(wave) for o in model.vary(wave, 2, 1.0))
    d = [distance(s) for s in (0.0, 1.0, 4.0)]
    assert d[0] == 0.0 < d[1] < d[2], d
    with pytest.raises(ValueError, match="noise"):
        model.vary(wave, 1, -1.0)


def test_champion_loads_from_a_real_registry_and_aliases_follow_the_registering_run(trained, tmp_path, monkeypatch):
    """Two pipeline runs register in turn; each run's challenger is the version *it* registered
    (not the newest), and ``--model models:/audiovae@champion`` loads the promoted bundle."""
    import mlflow
    from mlflow.tracking import MlflowClient

    root, params, *_ = trained
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    tracked = deep_merge(params, {"tracking": {"enabled": True}})
    mlflow_mod = tracking_runs.configure(typed(tracked), root)
    parents = []
    for name in ("run-a", "run-b"):
        parents.append(tracking_runs.start_pipeline_run(mlflow_mod, root, typed(tracked), name))
        monkeypatch.setenv(tracking_runs.PARENT_ENV, parents[-1])
        export.run(typed(tracked), root)
    client = MlflowClient(tracking_uri=store)
    versions = [registry.registered_by(client, p)[registry.BUNDLE_MODEL] for p in parents]
    assert versions == ["1", "2"]
    registry.mark_challenger(client, {"quality.full_pesq_nb": 2.5}, registry.registered_by(client, parents[0]))
    challenger = client.get_model_version_by_alias(registry.BUNDLE_MODEL, "challenger")
    assert str(challenger.version) == "1" and challenger.tags["metric.quality.full_pesq_nb"] == "2.5"
    registry.promote(client, {registry.BUNDLE_MODEL: "1"})
    # the registered model is a pyfunc with a signature and an input example
    info = mlflow.models.get_model_info(f"models:/{registry.BUNDLE_MODEL}@champion")
    assert info.signature is not None and {i.name for i in info.signature.inputs} == {"label", "seed"}
    served = mlflow.pyfunc.load_model(f"models:/{registry.BUNDLE_MODEL}@champion")
    import pandas as pd
    audio = served.predict(pd.DataFrame({"label": ["5"], "seed": [1]}))
    assert audio.shape == (1, AudioVAE.from_project(root).length) and np.isfinite(audio).all()
    # the CLI, anywhere, with only the store
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    args = ["generate", "--label", "5", "--count", "2", "--seed", "1"]
    assert cli.main(["--root", str(root)] + args + ["--out", str(tmp_path / "project")]) == 0
    assert cli.main(["--root", str(elsewhere), "--model", "models:/audiovae@champion"] + args
                    + ["--out", str(tmp_path / "champion")]) == 0
    assert wav_bytes(tmp_path / "project") == wav_bytes(tmp_path / "champion")
    assert cli.main(["--root", str(elsewhere), "--model", "models:/audiovae@nobody"] + args
                    + ["--out", str(tmp_path / "x")]) == 2


@pytest.mark.slow  # a subprocess or a server
def test_a_registry_model_outside_a_project_without_a_store_is_one_clear_error(tmp_path):
    """``audiovae --model models:/…`` typed in an empty folder with no ``MLFLOW_TRACKING_URI``: there
    is no store to ask, and the CLI says so in one line and exits 2 (it once ended in a traceback)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AUDIOVAE_"))}
    done = subprocess.run([str(Path(sys.executable).with_name("audiovae")), "--model", "models:/audiovae@champion",
                           "generate", "--label", "3", "--out", "x"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("audiovae generate: error: ") and "MLFLOW_TRACKING_URI" in lines[0]
    assert not (tmp_path / "x").exists() and not (tmp_path / "mlflow.db").exists()


def test_the_other_latent_kind_through_every_consumer(trained, tmp_path, tiny_fsdd_zip):
    """The fixture trains the default latent kind; this retrains the inner VAE with the other one
    (sequence <-> global) on the same cached codes and takes it through everything downstream:
    per-channel KL, kde sampling, probes, interpolation, the bundle (bit-identical from a file),
    the pyfunc, and the CLI commands."""
    import mlflow
    import pandas as pd

    from audiovae.stages import train_inner
    from audiovae.tracking import serving

    root, params, *_ = trained
    other = "global" if params["inner"]["latent"] == "sequence" else "sequence"
    p = deep_merge(params, {"inner": {"latent": other, "latent_channels": 3, "latent_dim": 5}})
    with linked_project(root, tmp_path, ["data/features", "data/filtered", "data/encodings", "data/models/outer"]) as scratch:
        result = train_inner.run(typed(p), scratch)
        vae = result["model"]
        assert vae.latent == other
        frames = -(-vae.hyper["code_shape"][-1] // 2 ** len(p["inner"]["conv_filters"]))
        assert vae.latent_shape == ((3, frames) if other == "sequence" else (5,))
        kl = pd.read_csv(scratch / "reports" / "inner" / "kl_per_dim.csv")
        assert len(kl) == vae.latent_dim and (("channel" in kl) == (other == "sequence"))
        (scratch / "params.yaml").write_text(yaml_dump(p))  # the bundle's effective params
        path = bundle.write(bundle.from_project(scratch), tmp_path / "other.avae")
        project = AudioVAE.from_project(scratch)
        model = AudioVAE.from_file(path)
        assert model.inner.latent == other and model.class_points.shape[1] == vae.latent_dim
        z = model.sample(model.labels[0], 3, seed=1, spread=0.4)
        assert z.shape == (3, vae.latent_dim)
        assert np.array_equal(model.generate(model.labels[0], 3, seed=1, spread=0.4),
                              project.generate(project.labels[0], 3, seed=1, spread=0.4))
        assert model.probe_units == (3 if other == "sequence" else 5)
        sweep = model.probe(model.probe_units - 1, 3, 2.0)
        assert sweep.shape[0] == 3 and not np.allclose(sweep[0], sweep[-1])
        # the CLI from the bundle file, anywhere, and the project give the same bytes
        voice = stereo_44k(tmp_path / "voice.wav", tiny_fsdd_zip)
        for name, args in (("generate", ["generate", "--label", model.labels[1], "--count", "2"]),
                           ("reconstruct", ["reconstruct", str(voice)]),
                           ("vary", ["vary", str(voice), "--count", "2"]),
                           ("interpolate", ["interpolate", str(voice), str(voice), "--steps", "3"]),
                           ("probe", ["probe", "--dim", "0", "--steps", "3"])):
            assert cli.main(["--root", str(scratch)] + args + ["--out", str(tmp_path / "p" / name)]) == 0, name
            assert cli.main(["--root", str(tmp_path), "--model", str(path)] + args
                            + ["--out", str(tmp_path / "b" / name)]) == 0, name
            made = wav_bytes(tmp_path / "p" / name)
            assert made and made == wav_bytes(tmp_path / "b" / name), name
    # the pyfunc the registry serves, saved and loaded as MLflow does
    mlflow.pyfunc.save_model(str(tmp_path / "pyfunc"), python_model=serving.__file__, artifacts={"bundle": str(path)})
    audio = mlflow.pyfunc.load_model(str(tmp_path / "pyfunc")).predict(pd.DataFrame({"label": [model.labels[0]], "seed": [1]}))
    assert audio.shape == (1, model.length) and np.isfinite(audio).all() and np.abs(audio).max() > 0


def yaml_dump(params: dict) -> str:
    import yaml
    return yaml.safe_dump(params, sort_keys=False)
