"""Issue 19: `audiovae serve`, driven as a person uses it in headless Chromium: generate, move a slider,
morph two test recordings, upload a WAV and vary it, upload a text file and read the refusal."""
from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import (
    CHROMIUM,
    CHROMIUM_ARGS,
    free_port,
    require_chromium,
    sine,
    stop_process,
    tree_state,
    wait_http,
)
from starlette.testclient import TestClient

from audiovae.inference import explorer
from audiovae.inference.model import AudioVAE


@pytest.fixture
def served(trained, tmp_path):
    """`audiovae serve` on the tiny project, as a user starts it; yields (url, model, log path, process)."""
    root, *_ = trained
    port = free_port()
    log = tmp_path / "serve.log"
    command = Path(sys.executable).with_name("audiovae")
    proc = subprocess.Popen([str(command), "--root", str(root), "serve", "--port", str(port)],
                            stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/api/info", proc, log)
        yield f"http://127.0.0.1:{port}", AudioVAE.from_project(root), log, proc
    finally:
        stop_process(proc)


def fetch_sound(url: str) -> tuple[np.ndarray, int]:
    with urllib.request.urlopen(url, timeout=60) as response:
        return sf.read(io.BytesIO(response.read()), dtype="float32")


def new_sound(page, audio_id: str, before: str | None) -> str:
    """Wait until the audio element holds a new, loaded sound; return its URL."""
    page.wait_for_function(
        "([id, before]) => { const a = document.getElementById(id);"
        " return a.getAttribute('src') && a.getAttribute('src') !== before && a.readyState >= 1 && a.duration > 0; }",
        arg=[audio_id, before], timeout=60000)
    return page.get_attribute(f"#{audio_id}", "src")


def release_slider(page, selector: str, value: float) -> None:
    """Drag-and-release as a browser reports it: `input` while moving, `change` on release."""
    page.eval_on_selector(selector, "(el, v) => { el.value = String(v); el.dispatchEvent(new Event('input'));"
                                    " el.dispatchEvent(new Event('change')); }", value)


def test_explorer_generates_moves_morphs_uploads_and_refuses(served, trained, tmp_path):
    url, model, log, proc = served
    root, *_ = trained
    before = tree_state(root)
    sync_api = require_chromium()
    rate, length = model.codec.sample_rate, model.length
    wav = tmp_path / "mine.wav"
    sf.write(wav, np.concatenate([np.zeros(2000), sine(0.6, 16000, 300.0), np.zeros(2000)]), 16000)
    text = tmp_path / "notes.txt"
    text.write_text("not a sound")
    errors: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 1400})
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(url)
            page.wait_for_selector("body[data-ready=true]", timeout=30000)
            assert page.eval_on_selector_all("#label option", "els => els.map(e => e.value)") == model.labels
            # the map: every training sound the model keeps is a point; a click on one plays it, a
            # click on empty ground makes a new sound there; each comes with its spectrogram
            assert page.get_attribute("#map", "data-points") == str(len(model.class_points))
            assert page.eval_on_selector_all("#legend span", "els => els.map(e => e.textContent)") == model.labels
            spot = page.evaluate("() => { const p = map.points[0]; return map.toCanvas(p.x, p.y); }")
            box = page.query_selector("#map").bounding_box()
            scale = box["width"] / page.evaluate("() => document.getElementById('map').width")
            page.mouse.click(box["x"] + spot[0] * scale, box["y"] + spot[1] * scale)
            on_point = new_sound(page, "map-audio", None)
            assert page.inner_text("#map-note").startswith("training sound 0 ")
            page.mouse.click(box["x"] + 3 * scale, box["y"] + 3 * scale)   # a corner: no point there
            off_point = new_sound(page, "map-audio", on_point)
            assert page.inner_text("#map-note").startswith("a new ")
            page.select_option("#label", model.labels[1])
            page.fill("#seed", "3")
            page.click("#generate")
            first = new_sound(page, "generated-audio", None)
            release_slider(page, "#pc0", 2.5)  # one principal direction, released: a new sound
            moved = new_sound(page, "generated-audio", first)
            page.select_option("#morph-a", index=0)
            page.select_option("#morph-b", index=2)
            release_slider(page, "#position", 0.25)
            morphed = new_sound(page, "morph-audio", None)
            page.set_input_files("#upload", str(wav))
            page.wait_for_function("document.getElementById('upload-note').textContent.includes('upload-')")
            assert page.input_value("#vary-source").startswith("upload-")  # the upload is the sound to vary
            page.click("#vary")
            varied = new_sound(page, "vary-audio", None)
            for audio_id in ("generated-audio", "morph-audio", "vary-audio", "map-audio"):  # every sound's spectrogram
                page.wait_for_function("(id) => { const i = document.getElementById(id + '-spectrogram');"
                                       " return i.complete && i.naturalWidth > 0; }", arg=audio_id)
            assert page.get_attribute("#vary-audio-download", "download").endswith(".wav")
            page.screenshot(path=str(Path(os.environ.get("AUDIOVAE_SCREENSHOTS", tmp_path)) / "explorer.png"))
            page.set_input_files("#upload", str(text))
            page.wait_for_function("document.getElementById('error').textContent.length > 0")
            shown = page.inner_text("#error")
        finally:
            browser.close()
    assert not errors, errors
    assert "notes.txt is not an audio file" in shown
    sounds = {name: fetch_sound(url + src) for name, src in
              (("first", first), ("moved", moved), ("morphed", morphed), ("varied", varied),
               ("on_point", on_point), ("off_point", off_point))}
    for name, (audio, sr) in sounds.items():
        assert sr == rate and np.isfinite(audio).all() and np.abs(audio).max() > 0.05, name
    assert len(sounds["first"][0]) == len(sounds["moved"][0]) == length  # one model-length sound each
    assert not np.array_equal(sounds["first"][0], sounds["moved"][0])  # the slider moved the sound
    assert not np.array_equal(sounds["on_point"][0], sounds["off_point"][0])  # another place, another sound
    assert len(sounds["varied"][0]) == len(model.load_audio(wav))  # the upload's own length, at the model's rate
    assert tree_state(root) == before  # nothing written in the project
    with pytest.raises(urllib.error.HTTPError) as refused:  # a wrong request is an error message, not a crash
        urllib.request.urlopen(urllib.request.Request(url + "/api/morph", method="POST", data=b"{}",
                                                      headers={"Content-Type": "application/json"}), timeout=60)
    assert refused.value.code == 400
    folder = Path(re.search(r"sounds in (\S+?)[);]", log.read_text()).group(1))
    assert {p.name for p in folder.glob("*.wav")} >= {Path(s).name for s in (first, moved, morphed, varied)}
    stop_process(proc)  # Ctrl-C or a service manager's SIGTERM
    assert not folder.exists()  # its sounds and uploads went with it


def test_explorer_refuses_long_or_large_uploads_other_hosts_and_leaves_no_folder(trained, tmp_path):
    root, *_ = trained
    model = AudioVAE.from_project(root)
    folder = tmp_path / "sounds"
    folder.mkdir()
    state = explorer.Explorer(model, folder, 0.1)
    long_take = io.BytesIO()
    sf.write(long_take, np.zeros(8000 * 11, np.float32), 8000, format="WAV")
    with TestClient(explorer.create_app(state), client=("127.0.0.1", 50000)) as local:
        refused = local.post("/api/upload", content=long_take.getvalue(), headers={"x-filename": "long.wav"})
        assert refused.status_code == 400 and "lasts 11.0 s" in refused.json()["error"]
        big = local.post("/api/upload", content=b"\0" * (explorer.MAX_UPLOAD_BYTES + 1))
        assert big.status_code == 400 and "limit" in big.json()["error"]
        assert local.post("/api/generate", json={"label": "no-such-label"}).json()["error"].startswith("unknown label")
        assert local.get("/audio/..%2Fsecret.wav").status_code == 404
        points = local.get("/api/map").json()["points"]
        assert [p["label"] for p in points] == [model.labels[i] for i in model.class_point_labels]
        # a training point played from the map is that training latent, decoded
        played = local.post("/api/at", json={"point": 5}).json()
        expected = model.to_audio(model.from_latents(model.class_points[5:6].astype(np.float32)))[0]
        got, _ = sf.read(folder / played["name"], dtype="float32")
        assert played["label"] == points[5]["label"] and np.corrcoef(got, expected)[0, 1] > 0.99
        assert local.get(played["spectrogram"]).headers["content-type"] == "image/png"
        # a place on the map is the nearest training sound moved there: at the point itself, that
        # sound; a step away along the map, another one of the same label
        same = local.post("/api/at", json={"x": points[5]["x"], "y": points[5]["y"]}).json()
        assert np.array_equal(sf.read(folder / same["name"], dtype="float32")[0], got)
        step = 0.05 * (max(p["x"] for p in points) - min(p["x"] for p in points))
        moved = local.post("/api/at", json={"x": points[5]["x"] + step, "y": points[5]["y"]}).json()
        assert not np.array_equal(sf.read(folder / moved["name"], dtype="float32")[0], got)
        assert local.post("/api/at", json={"point": 10 ** 6}).status_code == 400
        assert local.post("/api/at", json={"x": "left"}).status_code == 400
        for made in folder.iterdir():  # the sounds above; what follows is about refusals
            made.unlink()
    with TestClient(explorer.create_app(state), client=("192.0.2.7", 50000)) as remote:
        assert remote.get("/api/info").status_code == 403
    with TestClient(explorer.create_app(state, allow_remote=True), client=("192.0.2.7", 50000)) as shared:
        assert json.loads(shared.get("/api/info").text)["labels"] == model.labels
    assert list(folder.iterdir()) == []  # refused uploads leave nothing
