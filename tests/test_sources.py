"""Loaders: the AudioMNIST layout and its messy meta file, instrument-sample folders, splits."""
from __future__ import annotations

import io
import json
import math

import librosa
import pandas as pd
import pytest
import soundfile as sf
from conftest import base_params, fsdd_members, params_with, sine, typed, write_zip

from audiovae.config.params import resolve
from audiovae.config.schema import Split
from audiovae.data import sources
from audiovae.data.fetch import FetchError
from audiovae.data.filter import small_classes
from audiovae.data.splits import assign_splits
from audiovae.stages import download
from audiovae.stages import filter as filter_stage

# The real audioMNIST_meta.txt is messy in exactly these ways (see shared/datasets/README.md).
MESSY_META = {
    "01": {"accent": "German", "age": 30, "gender": "male", "native speaker": "no", "origin": "Europe, Germany, Wuerzburg",
           "recordingdate": "17-06-22-11-04-28", "recordingroom": "Kino"},
    "02": {"accent": "german", "age": "25", "gender": "Male", "native speaker": "no", "origin": "Europe, Germany, Hamburg",
           "recordingdate": "17-06-26-17-57-29", "recordingroom": "Kino"},
    "03": {"accent": " Chinese ", "age": "1234", "gender": "female", "native speaker": "no", "origin": "Asia",
           "recordingdate": "17-06-27-12-16-36", "recordingroom": "library"},
    # speaker 04 has a folder but no entry
}


@pytest.fixture
def audiomnist_fixture_zip(tmp_path):
    """A fixture (not the real AudioMNIST): FSDD recordings resampled to 48 kHz in AudioMNIST's layout."""
    members = {}
    for n, (name, data) in enumerate(fsdd_members(["jackson"], digits=range(10), takes=range(2)).items()):
        y, sr = sf.read(io.BytesIO(data), dtype="float32")
        y48 = librosa.resample(y, orig_sr=sr, target_sr=48000)
        digit, _, take = name[:-4].split("_")
        speaker = n % 4 + 1
        buf = io.BytesIO()
        sf.write(buf, y48, 48000, subtype="PCM_16", format="WAV")
        members[f"AudioMNIST-master/data/{speaker:02d}/{digit}_{speaker:02d}_{take}.wav"] = buf.getvalue()
    members["AudioMNIST-master/data/audioMNIST_meta.txt"] = json.dumps(MESSY_META, indent=2).encode()
    members["AudioMNIST-master/README.md"] = b"not audio"
    return write_zip(tmp_path / "AudioMNIST-master.zip", members)


def test_audiomnist_meta_parser_takes_the_file_as_it_is():
    meta = sources.parse_audiomnist_meta(json.dumps(MESSY_META))
    assert meta["01"]["age"] == 30.0 and meta["02"]["age"] == 25.0
    assert math.isnan(meta["03"]["age"])  # "1234" is impossible
    assert meta["01"]["accent"] == meta["02"]["accent"] == "german"
    assert meta["03"]["accent"] == "chinese"
    assert meta["02"]["native_speaker"] == "no" and meta["01"]["recording_room"] == "kino"
    assert sources.parse_audiomnist_meta("{not json") == {}
    assert sources.parse_audiomnist_meta('{"5": "oops", "06": {"age": null}}')["06"]["age"] != 0


def test_audiomnist_archive_in_its_exact_layout(tmp_path, audiomnist_fixture_zip, monkeypatch):
    monkeypatch.setenv("AUDIOVAE_DATA_MIRROR", str(audiomnist_fixture_zip.parent))
    params = params_with({"seed": 1, "tracking": {"enabled": False},
                          "data": {"sources": {"fsdd": {"enabled": False}, "audiomnist": {
                              "enabled": True, "url": "", "archive": audiomnist_fixture_zip.name}},
                              "split": {"method": "stratified", "val_fraction": 0.1, "test_fraction": 0.1}}})
    root = tmp_path / "proj"
    table = download.run(typed(params), root)
    assert len(table) == 20 and set(table["dataset"]) == {"audiomnist"}
    assert set(table["sample_rate"]) == {48000}
    assert set(table["speaker"]) == {"01", "02", "03", "04"}
    by_speaker = table.groupby("speaker").first()
    assert by_speaker.loc["01", "accent"] == "german" and by_speaker.loc["01", "age"] == 30
    assert pd.isna(by_speaker.loc["03", "age"])
    assert pd.isna(by_speaker.loc["04", "gender"])  # folder without a meta entry
    assert all((root / p).exists() for p in table["path"])
    assert not any(p.endswith("README.md") for p in table["path"])


def write_sample_folder(folder):
    """Stereo, 24-bit, 22.05 kHz and 44.1 kHz files, plus non-audio files a loader must skip."""
    (folder / "gtr").mkdir(parents=True)
    (folder / "moog").mkdir()
    (folder / "weird").mkdir()
    sf.write(folder / "gtr" / "gtr01.wav", sine(0.5, 22050, 196, channels=2), 22050, subtype="PCM_24")
    sf.write(folder / "gtr" / "gtr02.wav", sine(0.4, 44100, 220), 44100, subtype="PCM_16")
    sf.write(folder / "moog" / "000_moog.flac", sine(0.6, 44100, 110, channels=2), 44100)
    sf.write(folder / "weird" / "vocal_ahh.aiff", sine(0.5, 22050, 300), 22050, subtype="PCM_24", format="AIFF")
    (folder / "gtr" / "_readme_and_license.txt").write_text("CC0")
    (folder / "moog" / "moog.ews").write_bytes(b"\x00\x01binary")
    (folder / ".DS_Store").write_bytes(b"junk")


def test_samples_loader_on_a_mixed_folder(tmp_path, monkeypatch):
    folder = tmp_path / "samples"
    write_sample_folder(folder)
    params = params_with({"seed": 0, "tracking": {"enabled": False},
                          "data": {"sources": {"fsdd": {"enabled": False}, "samples": {
                              "enabled": True, "path": str(folder), "category_from": "keywords",
                              "default_category": "No Category"}},
                              "split": {"method": "stratified", "val_fraction": 0.0, "test_fraction": 0.0}}})
    params["data"]["sources"]["samples"]["keywords"] = {"Vocal": ["vocal"], "Guitar": ["gtr"], "Synth": ["moog"]}
    table = download.run(typed(params), tmp_path / "proj").set_index("path")
    assert sorted(table.index) == ["data/raw/samples/gtr/gtr01.wav", "data/raw/samples/gtr/gtr02.wav",
                                   "data/raw/samples/moog/000_moog.flac", "data/raw/samples/weird/vocal_ahh.aiff"]
    first = table.loc["data/raw/samples/gtr/gtr01.wav"]
    assert (first["label"], first["channels"], first["sample_rate"]) == ("Guitar", 2, 22050)
    assert first["duration"] == pytest.approx(0.5, abs=1e-3)
    assert table.loc["data/raw/samples/weird/vocal_ahh.aiff", "label"] == "Vocal"
    assert table.loc["data/raw/samples/moog/000_moog.flac", "label"] == "Synth"
    params["data"]["sources"]["samples"]["category_from"] = "folder"
    by_folder = download.run(typed(params), tmp_path / "proj2").set_index("path")
    assert by_folder.loc["data/raw/samples/weird/vocal_ahh.aiff", "label"] == "weird"


def test_sample_archive_include_list():
    names = ["Dirt-Samples-master/gtr/a.wav", "Dirt-Samples-master/bd/kick.wav",
             "Dirt-Samples-master/gtr/_readme_and_license.txt", "Dirt-Samples-master/sax/s.WAV"]
    cfg = typed(params_with({})).data.sources.samples.model_copy(update={
        "include": ["gtr", "sax"], "category_from": "keywords", "keywords": {"Brass": ["sax"]},
        "default_category": "No Category"})
    entries = sources.sample_entries(names, cfg, from_archive=True)
    assert [e.relpath for e in entries] == ["gtr/a.wav", "sax/s.WAV"]
    assert [e.row["label"] for e in entries] == ["No Category", "Brass"]


OFFICIAL = Split(method="official", val_fraction=0.1, test_fraction=0.1, official_test_takes=5)


def _digits_table(speakers=("a", "b", "c", "d", "e"), takes=10):
    rows = [{"dataset": "fsdd", "label": str(d), "speaker": s, "take": t}
            for s in speakers for d in range(10) for t in range(takes)]
    return pd.DataFrame(rows)


def test_official_split_takes_0_to_4_are_test_and_val_comes_from_train():
    table = _digits_table()
    split = assign_splits(table, OFFICIAL, seed=3)
    assert (split[table["take"] < 5] == "test").all()
    assert set(split[table["take"] >= 5]) == {"train", "val"}
    assert (split == "val").sum() == 25  # 10 % of what test leaves
    assert split.equals(assign_splits(table, OFFICIAL, seed=3))
    assert not split.equals(assign_splits(table, OFFICIAL, seed=4))


def test_stratified_split_is_81_9_10_per_label():
    table = _digits_table()
    split = assign_splits(table, OFFICIAL.model_copy(update={"method": "stratified"}), seed=0)
    counts = split.value_counts()
    assert (counts["train"], counts["val"], counts["test"]) == (405, 45, 50)
    assert (table[split == "test"]["label"].value_counts() == 5).all()


def test_speaker_split_holds_out_whole_speakers():
    table = _digits_table(speakers=tuple("abcdefghij"))
    split = assign_splits(table, OFFICIAL.model_copy(update={"method": "speaker", "test_fraction": 0.2}), seed=0)
    by_split = {name: set(table["speaker"][split == name]) for name in ("train", "val", "test")}
    assert len(by_split["test"]) == 2 and len(by_split["val"]) == 1
    assert not (by_split["train"] & by_split["test"]) and not (by_split["train"] & by_split["val"])


def test_own_folder_is_taken_whole_recursively_and_skips_are_reported(tmp_path):
    """A user's library: nested folders, names outside the Dirt-Samples include-list, hidden and
    non-audio files. Every audio file is taken; every other file is in the filter report with its reason."""
    folder = tmp_path / "my library"
    write_sample_folder(folder)
    (folder / "kits" / "acoustic" / "snares").mkdir(parents=True)
    sf.write(folder / "kits" / "acoustic" / "snares" / "snare 1.wav", sine(0.3, 48000, 180), 48000)
    (folder / "kits" / ".hidden_take.wav").write_bytes(b"RIFF")
    params = params_with({"seed": 0, "tracking": {"enabled": False},
                          "data": {"sources": {"fsdd": {"enabled": False},
                                               "samples": {"enabled": True, "path": str(folder)}},
                                   "split": {"method": "stratified", "val_fraction": 0.0, "test_fraction": 0.0}},
                          "filter": {"lower_percentile": 0, "upper_percentile": 100, "sample_rate": 22050}})
    assert "weird" not in params["data"]["sources"]["samples"]["include"]  # the archive's list is not applied
    root = tmp_path / "proj"
    table = download.run(typed(params), root)
    assert "data/raw/samples/kits/acoustic/snares/snare 1.wav" in set(table["path"])
    assert "data/raw/samples/weird/vocal_ahh.aiff" in set(table["path"]) and len(table) == 5
    filter_stage.run(typed(params), root)
    rejections = pd.read_csv(root / "reports" / "filter" / "rejections.csv")
    reasons = dict(zip(rejections["path"], rejections["reason"]))
    assert reasons["gtr/_readme_and_license.txt"] == "skipped_extension"
    assert reasons["moog/moog.ews"] == "skipped_extension"
    assert reasons[".DS_Store"] == reasons["kits/.hidden_take.wav"] == "skipped_hidden"
    summary = json.loads((root / "reports" / "filter" / "summary.json").read_text())
    assert summary["skipped_by_reason"] == {"extension": 2, "hidden": 2} and summary["kept"] == 5


def test_a_folder_without_audio_is_a_clear_error_naming_it(tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "readme.txt").write_text("no sounds here")
    params = params_with({"tracking": {"enabled": False},
                          "data": {"sources": {"fsdd": {"enabled": False},
                                               "samples": {"enabled": True, "path": str(folder)}}}})
    with pytest.raises(FetchError, match=rf"folder {folder} holds no audio files.*skipped 1 other files"):
        download.run(typed(params), tmp_path / "proj")
    assert not (tmp_path / "proj" / "data" / "raw").exists()


def test_keywords_match_whole_words_and_a_folder_can_be_named():
    """``harp`` once matched ``sharp``: six saxophone notes were Plucked. A keyword is now whole
    words of the path (runs of letters), and a folder whose name no keyword says is named in
    ``folder_categories``."""
    cfg = typed(params_with({})).data.sources.samples
    category = lambda path: sources.sample_category(path, cfg)  # noqa: E731
    assert category("sax/c-sharp.wav") == "Brass" and category("sax/f-sharp3.wav") == "Brass"
    assert category("harp/a4.wav") == "Plucked"
    assert category("bass3/x.wav") == "Bass" and category("jvbass/0.wav") == "Bass" and category("bassdm/1.wav") == "Bass"
    assert category("keys/e-piano_c4.wav") == "E-Piano"  # a keyword of two words, in order
    assert category("keys/piano_e.wav") == "Piano"       # the same words apart are not e-piano
    assert category("strings/x.wav") == "Strings" and category("newnotes/0.wav") == "No Category"


def test_a_split_that_cannot_be_stratified_says_why():
    """A class with one file (the library's one Bell) made the stratified split fall back to a
    random one without a word; now the fallback is a note naming the label, and a table whose
    classes allow it gets none."""
    table = pd.DataFrame({"dataset": "samples", "label": ["Bell"] + ["Bass"] * 20 + ["Pad"] * 20,
                          "take": -1, "speaker": ""})
    split_cfg = Split(method="stratified", val_fraction=0.1, test_fraction=0.2, official_test_takes=5)
    notes: list[str] = []
    split = assign_splits(table, split_cfg, 0, notes)
    assert notes and notes[0].startswith("samples test: a random split") and "'Bell' has 1 file" in notes[0]
    assert set(split) == {"train", "val", "test"}
    clean: list[str] = []
    split = assign_splits(table[table["label"] != "Bell"].reset_index(drop=True), split_cfg, 0, clean)
    assert clean == []
    held = table[table["label"] != "Bell"].reset_index(drop=True).assign(split=split)
    assert held[held["split"] == "test"]["label"].value_counts().to_dict() == {"Bass": 4, "Pad": 4}


def test_the_drums_preset_names_each_hit_of_a_kit_by_its_file_name():
    """Kit folders (hh, hh27, 808) hold every kind of hit, and only the file name says which; the
    other drum folders are named whole. The drums preset's category map replaces the instruments'
    (a preset's name map is data, not merged), so no drum is found Bass or Synth."""
    params = resolve({**base_params(), "preset": "drums"})
    cfg = params.data.sources.samples
    assert "Bass" not in cfg.keywords and "jvbass" not in cfg.folder_categories
    category = lambda path: sources.sample_category(path, cfg)  # noqa: E731
    assert [category(p) for p in ("hh/005_hh3kick1.wav", "hh/000_hh3closedhh.wav", "hh27/007_hh27opendhh.wav",
                                  "hh/001_hh3crash.wav", "hh/011_hh3snare1.wav", "hh27/008_hh27perc1.wav")] == [
        "Kick", "Hi-hat", "Hi-hat", "Cymbal", "Snare", "Percussion"]
    assert [category(f"808/{n}.WAV") for n in ("CP", "CH", "CB", "MA")] == ["Clap", "Hi-hat", "Percussion", "Percussion"]
    # in the TR-808 folders HC/MC/LC are congas, not hi-hats; a folder of one hit is named whole
    assert category("808hc/HC00.WAV") == "Conga" and category("hc/HHCD0.wav") == "Hi-hat"
    assert category("808bd/BD0000.WAV") == "Kick" and category("sn/ST0T0S0.wav") == "Snare"
    # every folder the preset takes is named, or is a kit whose every file is
    names = [f"Dirt-Samples-master/{folder}/x.wav" for folder in cfg.include if folder not in ("hh", "hh27", "808")]
    assert cfg.default_category not in {e.row["label"] for e in sources.sample_entries(names, cfg)}


def test_a_grouped_split_keeps_each_folder_on_one_side_and_balances_labels():
    """A folder's pitch series (or a drum machine's 25 variations of one kick) are near-copies: with
    ``grouped`` none is trained on while another is tested, and each label still reaches test."""
    rows = [{"dataset": "samples", "label": label, "speaker": f"{label}{g}", "take": -1}
            for label in ("Kick", "Snare") for g in range(10) for _ in range(5)]
    table = pd.DataFrame(rows)
    split_cfg = Split(method="grouped", val_fraction=0.1, test_fraction=0.2, official_test_takes=5)
    notes: list[str] = []
    split = assign_splits(table, split_cfg, 0, notes)
    sides = table.assign(split=split).groupby("speaker")["split"].nunique()
    assert (sides == 1).all() and notes == []
    test = table[split == "test"]
    assert set(test["label"]) == {"Kick", "Snare"} and 15 <= len(test) <= 25
    assert (split == "val").any()
    # too few groups for the folds: said, not silent
    few: list[str] = []
    assign_splits(table[table["speaker"].isin(["Kick0", "Snare0", "Kick1"])].reset_index(drop=True), split_cfg, 0, few)
    assert any("groups cannot make folds" in note for note in few)


def test_a_class_too_small_to_test_is_merged_or_dropped_and_the_filter_says_so():
    table = pd.DataFrame({"dataset": "samples", "label": ["Clap"] * 3 + ["Kick"] * 12 + ["Percussion"] * 2,
                          "reason": "", "detail": ""})
    merged = table.copy()
    report = small_classes(merged, 10, "merge", "Percussion")
    assert merged["label"].value_counts().to_dict() == {"Kick": 12, "Percussion": 5}
    assert report == {"samples:Clap": {"files": 3, "action": "merged into Percussion",
                                       "why": "3 file(s) < filter.min_class_files 10"}}
    dropped = table.copy()
    report = small_classes(dropped, 10, "drop", "Other")
    assert set(dropped.loc[dropped["reason"] == "small_class", "label"]) == {"Clap", "Percussion"}
    assert set(report) == {"samples:Clap", "samples:Percussion"}
    kept = table.copy()
    assert small_classes(kept, 10, "keep", "Other") == {} and kept.equals(table)
