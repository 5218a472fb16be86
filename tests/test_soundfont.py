"""The pitched corpus: notes rendered from a SoundFont with FluidSynth (Debian's fluidsynth and
fluid-soundfont-gm, which .ci/run installs), their labels, their split by instrument, and the
pitches a musician types."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import params_with, typed

from audiovae.config.schema import SoundfontSource
from audiovae.data import soundfont
from audiovae.inference.notes import PitchError, note_name, parse_pitch
from audiovae.stages import download
from audiovae.stages import filter as filter_stage

FONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")


def fluidsynth_ready() -> bool:
    try:
        import fluidsynth  # noqa: F401
    except (ImportError, OSError):
        return False
    return FONT.is_file()


needs_fluidsynth = pytest.mark.skipif(not fluidsynth_ready(), reason="apt-get install fluidsynth fluid-soundfont-gm")


def font_params(tmp_path: Path, **source) -> dict:
    """FSDD off, a few notes of the GM font on, levels kept, nothing cut by the length percentiles."""
    return params_with({"seed": 3, "tracking": {"enabled": False},
                        "data": {"sources": {"fsdd": {"enabled": False}, "soundfont": {"enabled": True, **source}},
                                 "split": {"method": "instrument", "val_fraction": 0.2, "test_fraction": 0.25}},
                        "filter": {"sample_rate": 16000, "seconds": 0.5, "length_mode": "right",
                                   "normalise": "none", "lower_percentile": 0, "upper_percentile": 100}})


FEW_NOTES = {"programs": [0, 40], "pitch_low": 60, "pitch_high": 64, "pitch_step": 4, "velocities": [40, 110],
             "hold_seconds": 0.3, "release_seconds": 0.2, "fade_seconds": 0.02}


def file_digests(root: Path, table: pd.DataFrame) -> dict[str, str]:
    return {p: hashlib.sha256((root / p).read_bytes()).hexdigest() for p in table["path"]}


@needs_fluidsynth
def test_rendered_notes_carry_exact_labels_and_the_same_parameters_give_the_same_bytes(tmp_path):
    params = typed(font_params(tmp_path, **FEW_NOTES))
    table = download.run(params, tmp_path / "a")
    assert len(table) == 2 * 2 * 2
    violin = table[table["program"] == 40].iloc[0]
    assert (violin["instrument"], violin["family"], violin["label"]) == ("Violin", "strings", "strings")
    assert set(table["pitch"]) == {60, 64} and set(table["velocity"]) == {40, 110}
    assert set(table["sample_rate"]) == {16000}
    assert table["duration"].tolist() == pytest.approx([0.5] * len(table))
    # the font is part of the data's identity
    manifest = pd.read_csv(tmp_path / "a" / "data" / "manifest.csv")
    font_row = manifest[manifest["path"] == str(FONT)]
    assert len(font_row) == 1 and font_row["size"].item() == FONT.stat().st_size
    again = download.run(params, tmp_path / "b")
    assert file_digests(tmp_path / "a", table) == file_digests(tmp_path / "b", again)
    # louder at the higher velocity, as the key was struck harder (levels are kept, not normalised)
    import soundfile as sf
    peaks = {(r.program, r.pitch, r.velocity): np.abs(sf.read(tmp_path / "a" / r.path)[0]).max()
             for r in table.itertuples()}
    assert all(peaks[(p, n, 110)] > peaks[(p, n, 40)] for p, n, _ in peaks)


@needs_fluidsynth
def test_a_note_sounds_the_same_whatever_was_rendered_before_it_but_for_its_first_block():
    note = soundfont.Note(program=24, pitch=55, velocity=90)
    with soundfont.Renderer(FONT, 16000, 1.0) as renderer:
        alone = renderer.render(note, 4000, 2000, 200)
    # notes of other lengths (off the 64-frame grid), instruments and tails before it
    for before in [soundfont.Note(0, 40, 127), soundfont.Note(19, 60, 127), soundfont.Note(80, 90, 127)]:
        with soundfont.Renderer(FONT, 16000, 1.0) as renderer:
            renderer.render(before, 5000, 3001, 100)
            after = renderer.render(note, 4000, 2000, 200)
            assert renderer.instrument_name(24) == "Nylon String Guitar"
        assert np.array_equal(alone[soundfont.BLOCK:], after[soundfont.BLOCK:])
        assert np.abs(alone - after).max() < 2.5e-3
    assert np.abs(alone).max() > 0.01 and alone[-1] == 0.0  # it sounds, and the fade ends it in silence


@needs_fluidsynth
def test_a_note_the_font_cannot_play_is_rejected_as_silent_and_counted(tmp_path):
    # the GM piano has no sample near MIDI 127: FluidSynth renders (almost) nothing there
    params = typed(font_params(tmp_path, programs=[0], pitch_low=100, pitch_high=127, pitch_step=27,
                               velocities=[100], hold_seconds=0.3, release_seconds=0.1, fade_seconds=0.01))
    root = tmp_path / "proj"
    download.run(params, root)
    kept = filter_stage.run(params, root)
    import json
    summary = json.loads((root / "reports" / "filter" / "summary.json").read_text())
    assert summary["rejected_by_reason"]["silent"] == 1
    assert kept["pitch"].tolist() == [100]
    rejections = pd.read_csv(root / "reports" / "filter" / "rejections.csv")
    assert rejections.loc[rejections["reason"] == "silent", "path"].str.contains("p127").all()


def test_a_missing_font_names_the_package_and_a_corrupt_one_is_named(tmp_path):
    with pytest.raises(soundfont.SoundfontError, match="fluid-soundfont-gm"):
        soundfont.check_font(tmp_path / "nowhere.sf2")
    corrupt = tmp_path / "corrupt.sf2"
    corrupt.write_bytes(b"this is no soundfont" * 10)
    with pytest.raises(soundfont.SoundfontError, match=r"corrupt\.sf2 is not a SoundFont"):
        soundfont.check_font(corrupt)


@needs_fluidsynth
def test_a_font_with_a_good_header_and_a_broken_body_is_refused_by_name(tmp_path):
    broken = tmp_path / "broken.sf2"
    broken.write_bytes(b"RIFF" + (1000).to_bytes(4, "little") + b"sfbk" + b"\x00" * 40)
    with pytest.raises(soundfont.SoundfontError, match="could not load .*broken.sf2"):
        soundfont.Renderer(broken, 16000, 1.0)
    params = typed(font_params(tmp_path, **{**FEW_NOTES, "font": str(tmp_path / "absent.sf2")}))
    with pytest.raises(soundfont.SoundfontError, match="apt-get install fluidsynth fluid-soundfont-gm"):
        download.run(params, tmp_path / "proj")


def test_programs_are_numbers_or_gm_families_each_once():
    assert soundfont.resolve_programs(["strings", 40, "Synth Lead"]) == [*range(40, 48), *range(80, 88)]
    assert [soundfont.family_of(p) for p in (0, 33, 40, 127)] == ["piano", "bass", "strings", "sound_effects"]
    with pytest.raises(soundfont.SoundfontError, match="'violins' is not a GM family"):
        soundfont.resolve_programs(["violins"])
    with pytest.raises(soundfont.SoundfontError, match="128 is not a GM program"):
        soundfont.resolve_programs([128])
    cfg = SoundfontSource(**{**params_with({})["data"]["sources"]["soundfont"], "pitch_low": 70, "pitch_high": 60})
    with pytest.raises(soundfont.SoundfontError, match="pitch_low 70 is above pitch_high 60"):
        soundfont.plan_notes(cfg)


def test_the_instrument_split_never_trains_on_a_test_instrument_and_validates_on_seen_ones():
    from audiovae.config.schema import Split
    from audiovae.data.splits import assign_splits

    rows = [{"dataset": "soundfont", "label": soundfont.family_of(program), "speaker": f"program {program}",
             "pitch": pitch} for program in [*range(0, 8), *range(40, 48)] for pitch in range(48, 72)]
    table = pd.DataFrame(rows)
    split = assign_splits(table, Split(method="instrument", val_fraction=0.1, test_fraction=0.25,
                                       official_test_takes=0), seed=0)
    by_split = {name: set(table.loc[split == name, "speaker"]) for name in ("train", "val", "test")}
    assert by_split["test"] and not by_split["test"] & by_split["train"]
    assert by_split["val"] <= by_split["train"]  # validation notes are of instruments trained on
    assert set(table.loc[split == "test", "label"]) == {"piano", "strings"}  # each family has unseen instruments
    assert 0.05 < (split == "val").mean() < 0.15


@pytest.mark.parametrize("typed_pitch, midi", [("60", 60), ("C4", 60), ("c4", 60), ("A#3", 58), ("Bb3", 58),
                                               ("C♯5", 73), ("C-1", 0), ("G9", 127), (" 72 ", 72)])
def test_a_pitch_is_a_midi_number_or_a_note_name(typed_pitch, midi):
    assert parse_pitch(typed_pitch) == midi


@pytest.mark.parametrize("typed_pitch, why", [("C", "no octave"), ("H4", "neither a MIDI number"),
                                              ("128", "outside 0-127"), ("-1", "outside 0-127"),
                                              ("60.5", "neither"), ("", "neither"), ("G#9", "outside 0-127")])
def test_a_pitch_that_is_no_note_says_why(typed_pitch, why):
    with pytest.raises(PitchError, match=why):
        parse_pitch(typed_pitch)


def test_note_names_round_trip():
    assert all(parse_pitch(note_name(midi)) == midi for midi in range(128))
