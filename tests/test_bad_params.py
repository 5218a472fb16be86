"""Bad parameters are refused with messages that name the key and the choices."""
from __future__ import annotations

import pytest
import yaml
from conftest import base_params, typed

from audiovae.config import schema
from audiovae.config.params import ParamsError, load_params, merge_preset
from audiovae.data.spectrogram import Codec
from audiovae.stages import download


def test_unknown_preset_lists_the_defined_ones(tmp_path):
    params = base_params()
    params["preset"] = "nonsense"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ParamsError, match="preset 'nonsense'.*fsdd_conv_vae"):
        load_params(tmp_path / "params.yaml")


def test_missing_params_file_says_where_it_looked(tmp_path):
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "params.yaml")


def test_unknown_or_no_data_source(tmp_path):
    params = base_params()
    params["data"]["sources"]["mystery"] = {"enabled": True}
    with pytest.raises(ParamsError, match=r"data\.sources\.mystery: unknown key"):
        load_params(write(tmp_path, params))
    params = base_params()
    for source in params["data"]["sources"].values():
        source["enabled"] = False
    with pytest.raises(ParamsError, match="no data source is enabled"):
        download.run(typed(params), tmp_path)
    assert not (tmp_path / "data" / "raw").exists()


def test_unknown_split_method(tmp_path):
    params = base_params()
    params["data"]["split"]["method"] = "random"
    with pytest.raises(ParamsError, match=r"data\.split\.method: .*'official', 'speaker', 'stratified', 'grouped' or 'instrument'"):
        load_params(write(tmp_path, params))


def test_codec_rejects_bad_settings():
    with pytest.raises(ValueError, match="scaling"):
        Codec(8000, scaling="loudness")
    with pytest.raises(ValueError, match="representation"):
        Codec(8000, representation="mel")
    with pytest.raises(ValueError, match="db_ceiling"):
        Codec(8000, db_floor=0, db_ceiling=-10)
    with pytest.raises(ValueError, match="silence_margin_db"):
        Codec(8000, silence_margin_db=-1)


def write(tmp_path, params) -> str:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return str(path)


@pytest.mark.parametrize("change, message", [
    (lambda p: p["outer"]["conv1d"].update(hiden=64), r"outer\.conv1d\.hiden: unknown key"),
    (lambda p: p["inner"]["train"].update(epochs="many"), r"inner\.train\.epochs: .*integer"),
    (lambda p: p["outer"].update(model="transformer"), r"outer\.model: .*'conv1d'"),
    (lambda p: p["filter"].pop("seconds"), r"filter\.seconds: missing"),
    (lambda p: p.update(sede=1), r"sede: unknown key"),
    (lambda p: p["features"].update(silence_margin_db=-3), r"features\.silence_margin_db: .*greater than or equal to 0"),
    (lambda p: p["presets"]["sample_generator"]["outer"].update(bach_size=4),
     r"presets\.sample_generator\).*outer\.bach_size: unknown key"),
    (lambda p: p["tune"]["inner"]["space"].update({"inner.latent_size": {"type": "int", "low": 2, "high": 8}}),
     r"tune\.inner\.space\.inner\.latent_size: not a parameter"),
])
def test_schema_refuses_bad_keys_and_types_with_their_path(tmp_path, change, message):
    params = base_params()
    change(params)
    with pytest.raises(ParamsError, match=message):
        load_params(write(tmp_path, params))


def test_a_stage_refuses_a_misspelt_key_before_any_work(tmp_path):
    """The stage entry point exits with code 2 and has written nothing."""
    import subprocess
    import sys

    params = base_params()
    params["filter"]["trim_dB"] = 30
    write(tmp_path, params)
    done = subprocess.run([sys.executable, "-m", "audiovae.stages.download"], cwd=tmp_path, capture_output=True,
                          text=True, env={**__import__("os").environ, "AUDIOVAE_ROOT": str(tmp_path)})
    assert done.returncode == 2
    assert "filter.trim_dB: unknown key" in done.stderr
    assert not (tmp_path / "data").exists()


def test_overrides_are_validated_like_params_yaml():
    """``with_values`` (tuning suggestions, candidates' ``-S``-style changes) refuses what the file would."""
    from audiovae.config.params import with_values

    params = typed(base_params())
    changed = with_values(params, {"inner.beta": 0.5, "outer.train.epochs": 3})
    assert (changed.inner.beta, changed.outer.train.epochs) == (0.5, 3)
    assert params.inner.beta != 0.5 or params.outer.train.epochs != 3  # the original is left as it was
    with pytest.raises(ParamsError, match="no key 'inner.betta'"):
        with_values(params, {"inner.betta": 0.5})
    with pytest.raises(ParamsError, match=r"inner\.latent: .*'sequence' or 'global'"):
        with_values(params, {"inner.latent": "both"})


def test_a_preset_merges_sections_but_replaces_a_name_map_whole():
    """Sections merge key by key; a map of names chosen by the user (a category map) is data: the
    preset's replaces the default's, or the drums would inherit the instruments' categories first."""
    raw = base_params()
    merged = merge_preset(raw, {"filter": {"sample_rate": 22050},
                                "data": {"sources": {"samples": {"keywords": {"Kick": ["kick"]}}}}})
    assert merged["filter"]["sample_rate"] == 22050 and merged["filter"]["seconds"] == raw["filter"]["seconds"]
    assert merged["data"]["sources"]["samples"]["keywords"] == {"Kick": ["kick"]}
    assert merged["data"]["sources"]["samples"]["folder_categories"] == raw["data"]["sources"]["samples"]["folder_categories"]
    # a tuning space's entries are sections of their own: a preset changes one and keeps the others
    assert "data.sources.samples.keywords" in schema.name_maps() and "tune.inner.space" not in schema.name_maps()

