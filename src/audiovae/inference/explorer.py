"""``audiovae serve``: a local page to play a model's latent space, for a person exploring what it learnt.

Generate a label's sound, move sliders along the latent's principal directions (PCA of the
training latents, like the report's probes), morph between two sounds (test recordings of the
project, or uploads) and vary one with noise; every sound plays in the page, downloads as WAV and
shows its spectrogram. A map draws the training sounds on the first two principal directions,
coloured by label: a click on a point plays that sound as the model renders it, a click anywhere
else makes the sound at that place (the nearest training sound, moved there within the map's plane).

A small Starlette app on 127.0.0.1 (uvicorn), one page with no build step (``explorer_page``).
Everything it writes goes to one temporary folder, removed when it stops; uploads that are not
audio, too long or too large are refused with a message the page shows; requests from other
hosts are refused unless ``--host`` asks for them.
"""
from __future__ import annotations

import io
import ipaddress
import logging
import shutil
import signal
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from audiovae import layout
from audiovae.data.audio import write_wav
from audiovae.inference.explorer_page import PAGE
from audiovae.inference.model import AudioVAE

log = logging.getLogger("audiovae.serve")

MAX_UPLOAD_BYTES = 10 * 2 ** 20   # a 10 s WAV at 48 kHz stereo 16-bit is under 2 MB
MAX_UPLOAD_SECONDS = 10.0         # the model works on short sounds; longer ones are cut into windows
MAX_SLIDERS = 4


class ExplorerError(ValueError):
    """A request the page can show to its user (400)."""


@dataclass
class Explorer:
    """The model, its principal directions and the sounds it has made, in one temporary folder."""

    model: AudioVAE
    folder: Path
    spread: float
    recordings: dict[str, Path] = field(default_factory=dict)   # id -> a test recording or an upload
    components: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    scales: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    lock: threading.Lock = field(default_factory=threading.Lock)  # one torch call at a time

    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))  # the map's latents
    point_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    plane: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))   # and their map places

    def __post_init__(self):
        self.components, self.scales = principal_directions(self.model, MAX_SLIDERS)
        self.points, self.point_labels = map_points(self.model)
        centred = self.points - self.points.mean(axis=0)
        self.plane = centred @ self.components[:2].T if len(self.components) >= 2 else np.zeros((len(centred), 2))

    def info(self) -> dict:
        return {"labels": self.model.labels, "sample_rate": self.model.codec.sample_rate,
                "seconds": self.model.length / self.model.codec.sample_rate, "sliders": len(self.scales),
                "spread": self.spread, "recordings": sorted(self.recordings),
                "max_upload_mb": MAX_UPLOAD_BYTES / 2 ** 20, "max_upload_seconds": MAX_UPLOAD_SECONDS}

    def _save(self, audio: np.ndarray, stem: str) -> dict:
        """The sound as a WAV and its spectrogram as a PNG beside it, both served from the folder."""
        name = f"{stem}-{uuid.uuid4().hex[:8]}.wav"
        write_wav(self.folder / name, audio, self.model.codec.sample_rate)
        image = name[: -len(".wav")] + ".png"
        spectrogram_png(self.model, audio, self.folder / image)
        return {"url": f"/audio/{name}", "name": name, "seconds": len(audio) / self.model.codec.sample_rate,
                "spectrogram": f"/audio/{image}"}

    def map(self) -> dict:
        """The training sounds (the latents the model keeps) on the first two principal directions."""
        labels = [self.model.labels[int(i)] for i in self.point_labels]
        return {"points": [{"x": float(x), "y": float(y), "label": label}
                           for (x, y), label in zip(self.plane, labels)], "labels": self.model.labels}

    def at(self, x: float | None = None, y: float | None = None, point: int | None = None) -> dict:
        """The sound of training point ``point`` as the model renders it, or, at (``x``, ``y``) of the
        map, the nearest training sound moved there within the map's plane (its other directions kept,
        so the sound stays one the model knows rather than the average at the centre)."""
        if point is not None:
            if not 0 <= point < len(self.plane):
                raise ExplorerError(f"no point {point}: the map has {len(self.plane)}")
            nearest, target = point, self.plane[point]
        else:
            if x is None or y is None or not (np.isfinite(x) and np.isfinite(y)):
                raise ExplorerError("a place on the map needs finite x and y")
            target = np.array([x, y])
            nearest = int(np.argmin(((self.plane - target) ** 2).sum(1)))
        z = self.points[nearest] + (target - self.plane[nearest]) @ self.components[:2]
        label = self.model.labels[int(self.point_labels[nearest])]
        with self.lock:
            labels = [label] if self.model.inner.conditional else None
            audio = self.model.to_audio(self.model.from_latents(z[None].astype(np.float32), labels))[0]
        stem = f"point{nearest}" if point is not None else f"map-{label}"
        return {**self._save(audio, stem), "label": label, "x": float(target[0]), "y": float(target[1])}

    def generate(self, label: str, seed: int, moves: list[float]) -> dict:
        if label not in self.model.labels:
            raise ExplorerError(f"unknown label {label!r}; the model knows {self.model.labels}")
        if len(moves) > len(self.scales):
            raise ExplorerError(f"{len(moves)} slider values for {len(self.scales)} directions")
        with self.lock:
            z = self.model.sample(label, 1, seed=seed, spread=self.spread)
            for k, move in enumerate(moves):
                z = z + float(move) * self.scales[k] * self.components[k]
            labels = [label] if self.model.inner.conditional else None
            audio = self.model.to_audio(self.model.from_latents(z.astype(np.float32), labels))[0]
        return self._save(audio, f"{label}-seed{seed}")

    def recording(self, key: str) -> np.ndarray:
        if key not in self.recordings:
            raise ExplorerError(f"no sound {key!r}: pick a test recording or upload one")
        return self.model.load_audio(self.recordings[key])

    def morph(self, a: str, b: str, position: float) -> dict:
        if not 0.0 <= position <= 1.0:
            raise ExplorerError("the morph position must be between 0 and 1")
        wave_a, wave_b = self.recording(a), self.recording(b)
        with self.lock:
            audio = self.model.morph_audio(wave_a, wave_b, position)
        return self._save(audio, f"morph-{round(position * 100):03d}")

    def vary(self, key: str, noise: float, seed: int) -> dict:
        if not 0.0 <= noise <= 5.0:
            raise ExplorerError("the noise must be between 0 and 5")
        wave = self.recording(key)
        with self.lock:
            audio = self.model.vary(wave, 1, noise, seed)[0]
        return self._save(audio, f"vary-{seed}")

    def upload(self, data: bytes, filename: str) -> dict:
        """Keep an uploaded sound if it is audio, short and small enough; refuse it otherwise."""
        if len(data) > MAX_UPLOAD_BYTES:
            raise ExplorerError(f"{filename} is {len(data) / 2 ** 20:.1f} MB; the limit is "
                                f"{MAX_UPLOAD_BYTES / 2 ** 20:.0f} MB")
        try:
            info = sf.info(io.BytesIO(data))
        except (RuntimeError, sf.LibsndfileError):
            raise ExplorerError(f"{filename} is not an audio file this page can read (WAV, FLAC, OGG)") from None
        if info.duration > MAX_UPLOAD_SECONDS:
            raise ExplorerError(f"{filename} lasts {info.duration:.1f} s; the limit is {MAX_UPLOAD_SECONDS:.0f} s")
        key = f"upload-{uuid.uuid4().hex[:8]}"
        path = self.folder / f"{key}.{info.format.lower()}"
        path.write_bytes(data)
        self.recordings[key] = path
        return {"id": key, "seconds": info.duration}


def map_points(model: AudioVAE) -> tuple[np.ndarray, np.ndarray]:
    """The latents the map draws and their label ids: the training latents the model keeps, else one
    point per label (its mean)."""
    if model.class_points is not None and model.class_point_labels is not None and len(model.class_points):
        return np.asarray(model.class_points, np.float32), np.asarray(model.class_point_labels, np.int64)
    return np.asarray(model.class_means, np.float32), np.arange(len(model.labels))


def spectrogram_png(model: AudioVAE, audio: np.ndarray, path: Path) -> None:
    """A sound's spectrogram in the model's own features (its dB scale, low frequencies at the bottom)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spec = model.codec.encode(np.asarray(audio, np.float32)[None])[0][0]
    plt.imsave(path, spec, cmap="magma", origin="lower", vmin=0.0, vmax=1.0)


def principal_directions(model: AudioVAE, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The first principal directions of the training latents (unit vectors) and the standard
    deviation along each: a slider moves a sound by that many deviations along one of them."""
    points = model.class_points if model.class_points is not None and len(model.class_points) > count \
        else model.class_means
    points = np.asarray(points, np.float64)
    centred = points - points.mean(axis=0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    k = min(count, len(singular))
    scales = singular[:k] / np.sqrt(max(len(points) - 1, 1))
    return vt[:k].astype(np.float32), scales.astype(np.float32)


def test_recordings(root: Path, limit: int = 40) -> dict[str, Path]:
    """Up to ``limit`` of a project's test-split recordings, as many of each label, by file name;
    none outside a project."""
    metadata = root / layout.METADATA
    if not metadata.exists():
        return {}
    frame = pd.read_csv(metadata, dtype=str)
    test = frame[frame["split"] == "test"]
    rows = test.groupby("label", sort=False).head(max(1, limit // max(test["label"].nunique(), 1))).head(limit)
    return {Path(p).name: root / p for p in rows["path"] if (root / p).exists()}


def _loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def create_app(explorer: Explorer, allow_remote: bool = False) -> ASGIApp:
    async def page(request: Request):
        return HTMLResponse(PAGE)

    async def info(request: Request):
        return JSONResponse(explorer.info())

    async def body(request: Request) -> dict:
        try:
            value = await request.json()
        except ValueError:
            raise ExplorerError("the request body must be JSON") from None
        if not isinstance(value, dict):
            raise ExplorerError("the request body must be a JSON object")
        return value

    def field_of(data: dict, key: str, kind, default=None):
        if key not in data and default is None:
            raise ExplorerError(f"missing {key!r}")
        try:
            return kind(data.get(key, default))
        except (TypeError, ValueError):
            raise ExplorerError(f"{key!r} must be a {kind.__name__}") from None

    async def generate(request: Request):
        data = await body(request)
        moves = data.get("moves", [])
        if not isinstance(moves, list):
            raise ExplorerError("'moves' must be a list of numbers")
        return JSONResponse(explorer.generate(field_of(data, "label", str), field_of(data, "seed", int, 0),
                                              [field_of({"m": m}, "m", float) for m in moves]))

    async def morph(request: Request):
        data = await body(request)
        return JSONResponse(explorer.morph(field_of(data, "a", str), field_of(data, "b", str),
                                           field_of(data, "position", float)))

    async def vary(request: Request):
        data = await body(request)
        return JSONResponse(explorer.vary(field_of(data, "source", str), field_of(data, "noise", float),
                                          field_of(data, "seed", int, 0)))

    async def upload(request: Request):
        declared = int(request.headers.get("content-length") or 0)
        if declared > MAX_UPLOAD_BYTES:  # refused before reading it
            raise ExplorerError(f"the upload is {declared / 2 ** 20:.1f} MB; the limit is "
                                f"{MAX_UPLOAD_BYTES / 2 ** 20:.0f} MB")
        data = bytearray()
        async for chunk in request.stream():
            data += chunk
            if len(data) > MAX_UPLOAD_BYTES:
                raise ExplorerError(f"the upload is over the {MAX_UPLOAD_BYTES / 2 ** 20:.0f} MB limit")
        name = Path(request.headers.get("x-filename") or "upload").name
        return JSONResponse(explorer.upload(bytes(data), name))

    async def map_view(request: Request):
        return JSONResponse(explorer.map())

    async def at(request: Request):
        data = await body(request)
        if "point" in data:
            return JSONResponse(explorer.at(point=field_of(data, "point", int)))
        return JSONResponse(explorer.at(field_of(data, "x", float), field_of(data, "y", float)))

    async def audio(request: Request):
        name = request.path_params["name"]
        path = explorer.folder / name
        kinds = {".wav": "audio/wav", ".png": "image/png"}
        if Path(name).name != name or Path(name).suffix not in kinds or not path.is_file():
            return JSONResponse({"error": "no such sound"}, status_code=404)
        return FileResponse(path, media_type=kinds[Path(name).suffix], filename=name)

    async def refused(request: Request, exc: Exception):  # registered for ExplorerError only
        return JSONResponse({"error": str(exc)}, status_code=400)

    app = Starlette(routes=[
        Route("/", page), Route("/api/info", info), Route("/api/generate", generate, methods=["POST"]),
        Route("/api/morph", morph, methods=["POST"]), Route("/api/vary", vary, methods=["POST"]),
        Route("/api/upload", upload, methods=["POST"]), Route("/api/map", map_view),
        Route("/api/at", at, methods=["POST"]), Route("/audio/{name}", audio),
    ], exception_handlers={ExplorerError: refused})

    if not allow_remote:
        inner = app

        async def local_only(scope, receive, send):
            client = scope.get("client")
            if scope["type"] == "http" and not _loopback(client[0] if client else None):
                response = JSONResponse({"error": "this explorer serves this machine only (--host to share it)"},
                                        status_code=403)
                await response(scope, receive, send)
                return
            await inner(scope, receive, send)
        return local_only
    return app


def serve(model: AudioVAE, root: Path, host: str = "127.0.0.1", port: int = 8765, spread: float = 0.1) -> None:
    """Run the explorer until interrupted; its temporary folder goes with it."""
    import uvicorn

    def stop(signum, frame):
        raise KeyboardInterrupt
    # uvicorn shuts down on SIGTERM and then raises the signal again with the handler it found:
    # this one turns it into an exception, so the folder below is removed instead of left behind
    previous = signal.signal(signal.SIGTERM, stop)
    folder = Path(tempfile.mkdtemp(prefix="audiovae-explorer-"))
    try:
        explorer = Explorer(model, folder, spread)
        explorer.recordings.update(test_recordings(root))
        allow_remote = not _loopback(host)
        log.info("explorer on http://%s:%d/ (sounds in %s%s)", host, port, folder,
                 "; other hosts allowed" if allow_remote else "")
        uvicorn.run(create_app(explorer, allow_remote), host=host, port=port, log_level="warning")
    except KeyboardInterrupt:
        log.info("explorer stopped")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        signal.signal(signal.SIGTERM, previous)
