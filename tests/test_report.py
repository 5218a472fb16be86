"""The HTML report, opened in a real headless Chromium: images render, audio loads, no console errors."""
from __future__ import annotations

import functools
import http.server
import threading

import pytest
from conftest import CHROMIUM, CHROMIUM_ARGS, require_chromium, typed

from audiovae import cli
from audiovae.evaluation import report


@pytest.fixture
def served_reports(trained):
    root, params, *_ = trained
    page = report.build(root, typed(params))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(page.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}/index.html"
    finally:
        server.shutdown()
        server.server_close()


def test_report_links_are_relative_and_complete(trained):
    root, params, *_ = trained
    page = report.build(root, typed(params))
    text = page.read_text()
    import re
    links = re.findall(r'(?:src|href)="([^"]+)"', text)
    assert links and all(not link.startswith(("/", "http", "file:")) for link in links)
    for link in links:
        assert (page.parent / link).exists(), link
    assert "classifier.recon_accuracy" in text and "<audio" in text and "Griffin-Lim" in text
    assert "classifier.check_generated_accuracy" in text  # the second opinion is shown too
    assert re.search(r"inner model: <b>" + params["inner"]["architecture"] + "</b>", text)


def test_report_cli_rebuilds_without_retraining(trained, capsys):
    root, *_ = trained
    (root / "reports" / "index.html").unlink()
    assert cli.main(["--root", str(root), "report"]) == 0
    assert (root / "reports" / "index.html").exists()


def test_report_in_headless_chromium(served_reports):
    sync_api = require_chromium()
    root, url = served_reports
    errors: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=[*CHROMIUM_ARGS, "--autoplay-policy=no-user-gesture-required"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(url, wait_until="load")
            page.wait_for_function(
                "Array.from(document.querySelectorAll('audio')).every(a => a.readyState >= 1)", timeout=30000)
            images = page.eval_on_selector_all("img", "els => els.map(e => [e.getAttribute('src'), e.naturalWidth])")
            audio = page.eval_on_selector_all(
                "audio", "els => els.map(e => [e.getAttribute('src'), e.readyState, e.duration])")
            shot = root / "reports" / "report_screenshot.png"
            page.screenshot(path=str(shot), full_page=False)
        finally:
            browser.close()
    assert images and all(width > 0 for _, width in images), images
    assert audio and all(state >= 1 and duration > 0 for _, state, duration in audio), audio
    assert not errors, errors
    assert shot.stat().st_size > 10_000
