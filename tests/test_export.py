"""Issue 13: one-file export, loading it with no project files, the registry's champion in the CLI,
and ``vary``."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from audiovae import bundle, cli, export, registry, tracking
from audiovae.inference import AudioVAE
from audiovae.params import deep_merge
from test_pipeline import stereo_44k


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
    assert raw["data_manifest"] == tracking.manifest_hash(root) != "none"
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
    mlflow_mod = tracking.configure(tracked, root)
    parents = []
    for name in ("run-a", "run-b"):
        parents.append(tracking.start_pipeline_run(mlflow_mod, root, tracked, name))
        monkeypatch.setenv(tracking.PARENT_ENV, parents[-1])
        export.run(tracked, root)
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
