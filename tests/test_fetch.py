"""The download stage: mirror lookup, real HTTP download, integrity errors, nothing half-written."""
from __future__ import annotations

import functools
import http.server
import threading

import pandas as pd
import pytest
from conftest import free_port, save_params, typed

from audiovae.atomic import sha256_file
from audiovae.data import fetch
from audiovae.stages import download
from audiovae.stages import download as download_stage


@pytest.fixture
def http_server(tmp_path):
    """A real HTTP server on 127.0.0.1 (free port) serving a temp folder."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def closed_port_url(name: str) -> str:
    return f"http://127.0.0.1:{free_port()}/{name}"


def test_download_over_http_when_no_mirror_has_it(project, tiny_fsdd_zip, http_server, monkeypatch, tmp_path):
    root, params = project
    empty = tmp_path / "empty-mirror"
    empty.mkdir()
    monkeypatch.setenv("AUDIOVAE_DATA_MIRROR", str(empty))
    served, base = http_server
    (served / "fsdd.zip").write_bytes(tiny_fsdd_zip.read_bytes())
    params["data"]["sources"]["fsdd"].update(url=f"{base}/fsdd.zip", archive="fsdd-tag.zip",
                                             sha256=sha256_file(tiny_fsdd_zip))
    table = download.run(typed(params), root)
    cached = root / "data" / "archives" / "fsdd-tag.zip"
    assert cached.read_bytes() == tiny_fsdd_zip.read_bytes()
    assert len(table) == 240 and set(table["label"]) == {str(d) for d in range(10)}
    manifest = pd.read_csv(root / "data" / "manifest.csv")
    assert len(manifest) == 240
    first = manifest.iloc[0]
    assert sha256_file(root / first["path"]) == first["sha256"]
    assert (root / first["path"]).stat().st_size == first["size"]
    assert not list((root / "data" / "archives").glob(".*tmp*"))


def test_mirror_env_is_preferred_to_shared_and_network(tmp_path, monkeypatch):
    root = tmp_path / "proj"
    (tmp_path / "shared" / "datasets").mkdir(parents=True)
    (tmp_path / "shared" / "datasets" / "a.zip").write_bytes(b"shared")
    env = tmp_path / "env-mirror"
    env.mkdir()
    monkeypatch.setenv(fetch.MIRROR_ENV, str(env))
    url = closed_port_url("a.zip")  # the network must not be touched
    assert fetch.locate_archive("a.zip", url, root, root / "cache") == tmp_path / "shared" / "datasets" / "a.zip"
    (env / "a.zip").write_bytes(b"env")
    assert fetch.locate_archive("a.zip", url, root, root / "cache") == env / "a.zip"


def test_no_network_and_no_mirror_says_where_to_put_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv(fetch.MIRROR_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(fetch.FetchError) as err:
        fetch.locate_archive("x.zip", closed_port_url("x.zip"), tmp_path / "proj", tmp_path / "cache")
    message = str(err.value)
    assert "x.zip" in message and "AUDIOVAE_DATA_MIRROR" in message and str(tmp_path / "nowhere") in message
    assert not (tmp_path / "cache" / "x.zip").exists()


def test_corrupt_archive_is_named_and_leaves_nothing_behind(project, tiny_fsdd_zip, monkeypatch, tmp_path):
    root, params = project
    bad_mirror = tmp_path / "bad"
    bad_mirror.mkdir()
    data = tiny_fsdd_zip.read_bytes()
    bad = bad_mirror / tiny_fsdd_zip.name
    bad.write_bytes(data[: len(data) // 2])  # truncated
    monkeypatch.setenv("AUDIOVAE_DATA_MIRROR", str(bad_mirror))
    with pytest.raises(fetch.FetchError) as err:
        download.run(typed(params), root)
    assert str(bad) in str(err.value) and "corrupt or truncated" in str(err.value)
    assert "delete" in str(err.value)
    data_dir = root / "data"
    assert not (data_dir / "raw").exists() and not (data_dir / "metadata.csv").exists()
    assert not [p for p in data_dir.glob(".*")] if data_dir.exists() else True


def test_flipped_byte_fails_the_crc_check(tiny_fsdd_zip, tmp_path):
    data = bytearray(tiny_fsdd_zip.read_bytes())
    data[2000] ^= 0xFF  # inside the first member's compressed data
    bad = tmp_path / "flipped.zip"
    bad.write_bytes(bytes(data))
    with pytest.raises(fetch.FetchError, match="flipped.zip"):
        fetch.verify_archive(bad)


def test_checksum_mismatch_is_reported(tiny_fsdd_zip):
    with pytest.raises(fetch.FetchError, match="expected 00"):
        fetch.verify_archive(tiny_fsdd_zip, "00" * 32)


def test_download_stage_exits_with_a_message(project, monkeypatch, tmp_path, capsys):
    root, params = project
    monkeypatch.setenv("AUDIOVAE_DATA_MIRROR", str(tmp_path / "none"))
    params["data"]["sources"]["fsdd"]["url"] = closed_port_url("f.zip")
    save_params(root, params)
    monkeypatch.chdir(root)
    with pytest.raises(SystemExit) as exit_info:
        download_stage.main()  # what `python -m audiovae.stages.download` runs
    assert exit_info.value.code == 2
