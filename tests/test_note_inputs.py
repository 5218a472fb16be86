"""Pitch and velocity as inputs: the note-conditioned inner VAE, and a tiny pipeline on notes
rendered from the GM SoundFont, asked for a key the way a musician types it."""
from __future__ import annotations

import json

import pytest
import torch
from conftest import pipeline_stages, save_params, tiny_params, typed
from test_soundfont import fluidsynth_ready

from audiovae import cli
from audiovae.models.inner import VAE


def note_vae(architecture: str = "conv1d", latent: str = "sequence") -> VAE:
    torch.manual_seed(0)
    return VAE(input_dim=8 * 12, latent_dim=6, hidden=(32,), architecture=architecture, code_shape=(8, 12),
               conv_filters=(16,), latent=latent, latent_channels=3, note_pitches=(48, 60)).eval()


@pytest.mark.parametrize("architecture, latent", [("conv1d", "sequence"), ("conv1d", "global"), ("mlp", "global")])
def test_the_decoder_plays_the_pitch_it_is_given_and_refuses_one_it_never_learnt(architecture, latent):
    vae = note_vae(architecture, latent)
    x = torch.randn(2, 8 * 12)
    notes = torch.tensor([[48, 100], [60, 40]])
    mu, logvar = vae.encode(x, notes=notes)
    assert mu.shape == (2, vae.latent_dim)
    z = torch.zeros(2, vae.latent_dim)
    low, high = vae.decode(z, notes=torch.tensor([[48, 100]] * 2)), vae.decode(z, notes=torch.tensor([[60, 100]] * 2))
    assert low.shape == (2, 8 * 12) and not torch.allclose(low, high)  # the same latent, another key
    soft = vae.decode(z, notes=torch.tensor([[48, 20]] * 2))
    assert not torch.allclose(low, soft)  # and another velocity
    with pytest.raises(ValueError, match="outside the trained range MIDI 48-60"):
        vae.decode(z, notes=torch.tensor([[61, 100]] * 2))
    with pytest.raises(ValueError, match="pass notes"):
        vae.encode(x)
    assert vae.note_features == 13 + 1


def test_a_vae_without_notes_is_unchanged():
    plain = VAE(input_dim=96, latent_dim=6, architecture="conv1d", code_shape=(8, 12), conv_filters=(16,),
                latent="sequence", latent_channels=3)
    assert plain.note_pitches is None and plain.note_features == 0
    assert plain.decoder.net[0].in_channels == 3  # no condition channels


def test_a_model_without_pitch_refuses_pitch_and_bad_pitches_are_refused_by_the_parser(trained, tmp_path, capsys):
    root = trained[0]
    base = ["--root", str(root), "generate", "--label", "7", "--out", str(tmp_path / "gen")]
    assert cli.main([*base, "--pitch", "C4"]) == 2
    assert "does not take a pitch or velocity" in capsys.readouterr().err
    assert cli.main([*base, "--velocity", "90"]) == 2
    for bad, why in [("H4", "neither a MIDI number"), ("C", "no octave"), ("200", "outside 0-127")]:
        with pytest.raises(SystemExit) as exit_info:
            cli.main([*base, "--pitch", bad])
        assert exit_info.value.code == 2 and why in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main([*base, "--velocity", "0"])
    assert "outside MIDI's 1-127" in capsys.readouterr().err
    assert not (tmp_path / "gen").exists()


@pytest.fixture(scope="module")
def trained_notes(tmp_path_factory):
    """Every stage once, in process, on 84 notes of 6 GM instruments (3 families, two octaves) with tiny models."""
    if not fluidsynth_ready():
        pytest.skip("apt-get install fluidsynth fluid-soundfont-gm")
    root = tmp_path_factory.mktemp("notes")
    params = tiny_params()
    params["data"]["sources"]["fsdd"]["enabled"] = False
    params["data"]["sources"]["soundfont"].update(
        enabled=True, programs=[0, 1, 24, 25, 40, 41], pitch_low=48, pitch_high=72, pitch_step=4,
        velocities=[60, 120], hold_seconds=0.35, release_seconds=0.15, fade_seconds=0.02)
    params["data"]["split"].update(method="instrument", test_fraction=0.34, val_fraction=0.15)
    params["filter"].update(sample_rate=16000, seconds=0.5, length_mode="right", lower_percentile=0,
                            upper_percentile=100)
    params["evaluate"]["quality"]["speech"] = False
    params["evaluate"]["novelty"]["coverage_k"] = 3
    save_params(root, params)
    mp = pytest.MonkeyPatch()
    mp.setenv("AUDIOVAE_ROOT", str(root))
    try:
        metrics = None
        for module in pipeline_stages().values():
            metrics = module.run(typed(params), root)
        yield root, params, metrics
    finally:
        mp.undo()


def test_notes_carry_their_pitch_through_training_evaluation_and_the_bundle(trained_notes, tmp_path, capsys):
    root, params, metrics = trained_notes
    notes = metrics["notes"]
    rows = ("real", "ceiling", "outer", "full", "generated")
    assert {f"{row}_within_50_cents" for row in rows} <= set(notes)
    assert all(0.0 <= notes[f"{row}_within_50_cents"] <= notes[f"{row}_within_100_cents"] <= 1.0 for row in rows)
    # the labels are the audio's: the tracker hears nearly every real test note at its rendered pitch
    assert notes["real_within_50_cents"] >= 0.8
    assert notes["generated"] == 3 * params["evaluate"]["generated_per_class"]
    assert notes["generated_pitch_entropy"] >= 0.0
    inner = json.loads((root / "data" / "models" / "inner" / "summary.json").read_text())
    assert inner["hyper"]["note_pitches"] == [48, 72]
    # one generated sound at two keys two octaves apart, both judged
    assert (notes["octave_low_pitch"], notes["octave_high_pitch"]) == (48, 72)
    assert notes["family_kept_two_octaves"] <= min(notes["octave_low_accuracy"], notes["octave_high_accuracy"])
    base = ["--root", str(root)]
    assert cli.main([*base, "generate", "--label", "strings", "--pitch", "Bb3", "--velocity", "100", "--count", "2",
                     "--out", str(tmp_path / "gen")]) == 0
    assert sorted(p.name for p in (tmp_path / "gen").iterdir()) == ["strings_A#3_000.wav", "strings_A#3_001.wav"]
    assert cli.main([*base, "generate", "--label", "guitar", "--count", "1", "--out", str(tmp_path / "mid")]) == 0
    assert cli.main([*base, "generate", "--label", "strings", "--pitch", "C6", "--out", str(tmp_path / "x")]) == 2
    assert "pitch 84 is outside the MIDI 48-72 this model was trained on" in capsys.readouterr().err
    # a recording goes through with its key; without one, a model that needs it says so
    wav = next((root / "data" / "raw" / "soundfont").rglob("p060_v120.wav"))
    assert cli.main([*base, "reconstruct", str(wav), "--pitch", "C4", "--out", str(tmp_path / "rec")]) == 0
    assert (tmp_path / "rec" / "p060_v120.wav").exists()
    assert cli.main([*base, "reconstruct", str(wav), "--out", str(tmp_path / "rec2")]) == 2
    assert "takes the pitch and velocity" in capsys.readouterr().err
    # the bundle carries the pitch range; TorchScript says it does not yet
    from audiovae.inference.model import AudioVAE
    from audiovae.stages import export
    bundle = export.run(typed(params), root)
    model = AudioVAE.from_file(bundle)
    assert model.pitch_range == (48, 72)
    assert model.generate("piano", 1, pitch=60, velocity=120).shape[0] == 1
    assert cli.main(["--model", str(bundle), "export", "--format", "torchscript", "--out", str(tmp_path / "s.ts")]) == 2
    assert "--format avae" in capsys.readouterr().err
