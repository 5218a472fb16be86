"""Bad parameters are refused with messages that name the key and the choices."""
from __future__ import annotations

import pandas as pd
import pytest
import yaml

from audiovae import download
from audiovae.params import ParamsError, load_params
from audiovae.spectrogram import Codec
from audiovae.splits import assign_splits
from conftest import base_params


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
    params["data"]["sources"] = {"mystery": {"enabled": True}}
    with pytest.raises(ParamsError, match="unknown data source.*mystery"):
        download.run(params, tmp_path)
    params["data"]["sources"] = {"fsdd": {"enabled": False}}
    with pytest.raises(ParamsError, match="no data source is enabled"):
        download.run(params, tmp_path)
    assert not (tmp_path / "data" / "raw").exists()


def test_unknown_split_method():
    table = pd.DataFrame({"dataset": ["fsdd"] * 4, "label": ["1", "2", "1", "2"], "speaker": ["a"] * 4,
                          "take": [0, 1, 2, 3]})
    with pytest.raises(ParamsError, match="official, speaker or stratified"):
        assign_splits(table, {"method": "random"}, seed=0)


def test_codec_rejects_bad_settings():
    with pytest.raises(ValueError, match="scaling"):
        Codec(8000, scaling="loudness")
    with pytest.raises(ValueError, match="representation"):
        Codec(8000, representation="mel")
    with pytest.raises(ValueError, match="db_ceiling"):
        Codec(8000, db_floor=0, db_ceiling=-10)
