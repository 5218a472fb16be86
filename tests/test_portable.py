"""Issue 19: `audiovae export --format torchscript` writes the whole synthesis path as one file that
runs where this package cannot be imported, and agrees with the Python path."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import fsdd_members
from pesq import pesq

from audiovae import cli
from audiovae.inference import portable
from audiovae.inference.model import AudioVAE

# what a host does: load the file and call it, with torch and NumPy only
CHILD = r'''
import json, sys
sys.modules["audiovae"] = None  # the package is not there: the file must do without it
try:
    import audiovae
except ImportError:
    pass
else:
    raise SystemExit("audiovae was importable")
import numpy as np, torch
synth, folder = torch.jit.load(sys.argv[1]), sys.argv[2]
latents = torch.from_numpy(np.load(folder + "/latents.npy"))
labels = torch.zeros(len(latents), dtype=torch.long)
with torch.no_grad():
    np.save(folder + "/spec.npy", synth.decode_spectrogram(latents, labels).numpy())
    np.save(folder + "/gl.npy", synth.griffin_lim(torch.from_numpy(np.load(folder + "/magnitude.npy"))).numpy())
    np.save(folder + "/generated.npy", np.stack([synth.generate(i, 7, 0.1).numpy() for i in range(len(synth.labels))]))
    same = bool(torch.equal(synth.generate(0, 7, 0.1), synth.generate(0, 7, 0.1)))
    other = bool(torch.equal(synth.generate(0, 7, 0.1), synth.generate(0, 8, 0.1)))
json.dump({"sample_rate": synth.sample_rate, "length": synth.length, "labels": list(synth.labels),
           "same_seed_same_sound": same, "other_seed_same_sound": other}, open(folder + "/meta.json", "w"))
'''


def test_portable_file_runs_without_this_package_and_matches_the_python_path(trained, tmp_path):
    root, *_ = trained
    path = tmp_path / "synth.ts"
    assert cli.main(["--root", str(root), "export", "--format", "torchscript", "--out", str(path)]) == 0
    model = AudioVAE.from_project(root)
    latents = model.sample(model.labels[0], 3, seed=1, spread=0.1)
    np.save(tmp_path / "latents.npy", latents)
    # a real FSDD recording's true magnitude: Griffin-Lim through both paths
    voice = tmp_path / "voice.wav"
    voice.write_bytes(fsdd_members(["theo"], digits=[4], takes=[0])["4_theo_0.wav"])
    chunk = model.windows(model.load_audio(voice))[0][:1]
    magnitude = model.codec.to_magnitude(model.spectrogram(chunk))
    np.save(tmp_path / "magnitude.npy", magnitude)

    done = subprocess.run([sys.executable, "-c", CHILD, str(path), str(tmp_path)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["sample_rate"] == model.codec.sample_rate and meta["length"] == model.length
    assert meta["labels"] == model.labels
    assert meta["same_seed_same_sound"] and not meta["other_seed_same_sound"]
    generated = np.load(tmp_path / "generated.npy")
    assert generated.shape == (len(model.labels), model.length)  # every label, the model's length
    assert np.isfinite(generated).all() and (np.abs(generated).max(axis=1) > 0.5).all()  # peak-normalised sound
    # the decoders: the Python path's spectrograms within 1e-4
    assert np.abs(np.load(tmp_path / "spec.npy") - model.from_latents(latents)).max() < 1e-4
    # phase reconstruction: librosa's Griffin-Lim and the file's, scored one against the other
    reference = model.codec.griffin_lim(magnitude, length=model.length)[0]
    portable_audio = np.load(tmp_path / "gl.npy")[0]
    assert model.codec.sample_rate == 8000  # FSDD: PESQ narrow-band at its own rate
    assert pesq(8000, reference, portable_audio, "nb") >= 4.0


def test_portable_export_converts_a_bundle_and_refuses_what_it_cannot_invert(trained, tmp_path):
    root, *_ = trained
    bundle_path = tmp_path / "model.avae"
    assert cli.main(["--root", str(root), "export", "--out", str(bundle_path)]) == 0
    assert cli.main(["--model", str(bundle_path), "export", "--format", "torchscript",
                     "--out", str(tmp_path / "from_bundle.ts")]) == 0
    synth = torch.jit.load(str(tmp_path / "from_bundle.ts"))
    assert synth.generate(0, 1, 0.1).shape == (AudioVAE.from_file(bundle_path).length,)
    # an .avae export of a bundle is refused with a message that names the way
    assert cli.main(["--model", str(bundle_path), "export", "--out", str(tmp_path / "again.avae")]) == 2
    model = AudioVAE.from_file(bundle_path)
    # a silence margin travels into the file: its inverse zeroes what the Python path zeroes
    model.codec = dataclasses.replace(model.codec, silence_margin_db=3.0)
    near_floor = np.full((1, model.codec.n_bins, 4), 2.0 / 80, np.float32)  # 2 dB above the floor
    near_floor[..., -1] = 0.5
    expected = model.codec.to_magnitude(near_floor)
    assert (expected[..., :3] == 0).all() and (expected[..., -1][:-1] > 0).all()
    got = portable.script(model).magnitude(torch.from_numpy(near_floor)).numpy()
    assert np.allclose(got, expected, rtol=1e-5, atol=0)
    model.codec = dataclasses.replace(model.codec, scaling="per_file")
    with pytest.raises(ValueError, match="features.scaling: global"):
        portable.script(model)
