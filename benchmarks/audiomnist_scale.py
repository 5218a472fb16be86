"""Benchmark: AudioMNIST's size (30,000 files at 48 kHz) through download -> filter -> features, then
a few epochs of each training stage, so the full run can be projected for CPU and GPU.

The real AudioMNIST archive (about 1 GB) is not mirrored here, so this builds a FIXTURE in its exact
layout (``AudioMNIST-master/data/{speaker:02d}/{digit}_{speaker:02d}_{take}.wav`` + a meta file):
the 3,000 FSDD recordings resampled to 48 kHz, each written ten times with a different gain, a
little noise, a time shift and silent margins (AudioMNIST's recordings have margins: trim_db is on).
It is named as a fixture everywhere and never passed off as the real data set.

    .venv/bin/python benchmarks/audiomnist_scale.py [--files 30000] [--epochs 2] [--keep DIR]

Prints time and peak resident memory per stage (each stage runs in its own process, as under DVC,
so the peaks are the stage's own) and writes ``benchmarks/reports/audiomnist_scale.md``.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf
import yaml
from roots import REPORTS, provenance

from audiovae import stages
from audiovae.atomic import write_text

REPO = Path(__file__).resolve().parents[1]
FSDD = REPO.parent / "shared" / "datasets" / "free-spoken-digit-dataset-1.0.10.zip"
RATE = 48000
SPEAKERS = 60


def build_fixture(path: Path, files: int, seed: int = 0) -> float:
    """Write an AudioMNIST-layout zip of ``files`` perturbed, resampled FSDD recordings; returns seconds."""
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    with zipfile.ZipFile(FSDD) as zf:
        sources = [(n, zf.read(n)) for n in sorted(zf.namelist()) if n.endswith(".wav")]
    base = []
    for name, data in sources:
        y, sr = sf.read(io.BytesIO(data), dtype="float32")
        base.append((Path(name).stem.split("_")[0], librosa.resample(y, orig_sr=sr, target_sr=RATE)))
    order = rng.permutation(len(base))  # any prefix (--files 300) holds every digit
    counters: dict[tuple[int, str], int] = {}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as out:  # WAV does not compress; storing is fast
        for i in range(files):
            digit, y = base[order[i % len(base)]]
            speaker = 1 + (i // len(base) * 7 + i) % SPEAKERS
            take = counters[(speaker, digit)] = counters.get((speaker, digit), -1) + 1
            margin = lambda: np.zeros(int(rng.uniform(0.05, 0.25) * RATE), np.float32)  # noqa: E731
            wave = np.concatenate([margin(), y * rng.uniform(0.3, 1.0), margin()])
            wave = wave + rng.normal(0, 1e-3, wave.shape).astype(np.float32)
            buf = io.BytesIO()
            sf.write(buf, np.clip(wave, -1, 1), RATE, subtype="PCM_16", format="WAV")
            out.writestr(f"AudioMNIST-master/data/{speaker:02d}/{digit}_{speaker:02d}_{take}.wav", buf.getvalue())
        meta = {f"{s:02d}": {"accent": "German", "age": str(20 + s % 40), "gender": "female" if s % 2 else "male",
                             "native speaker": "yes", "origin": "Europe, Germany", "recordingdate": "2017",
                             "recordingroom": "Kino"} for s in range(1, SPEAKERS - 1)}  # two speakers without entry
        out.writestr("AudioMNIST-master/data/audioMNIST_meta.txt", json.dumps(meta))
    return time.perf_counter() - started


def run_stage(root: Path, stage: str, env: dict) -> tuple[float, float]:
    """Run one stage in its own process; returns (seconds, peak RSS in GiB of that process)."""
    code = (f"import runpy, sys; sys.argv=['{stage}']; "
            f"runpy.run_module('{stages.__name__}.{stage}', run_name='__main__'); ")  # the package's own name: a move breaks at import
    wrapper = (f"import resource, subprocess, sys, time; t=time.perf_counter(); "
               f"r=subprocess.run([sys.executable, '-c', {code!r}]); "
               f"print('BENCH', time.perf_counter()-t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode)")
    done = subprocess.run([sys.executable, "-c", wrapper], cwd=root, env=env, capture_output=True, text=True)
    line = [ln for ln in done.stdout.splitlines() if ln.startswith("BENCH")]
    if not line or line[-1].split()[3] != "0":
        raise SystemExit(f"{stage} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    _, seconds, kib, _ = line[-1].split()
    return float(seconds), int(kib) / 2 ** 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=30000)
    parser.add_argument("--epochs", type=int, default=2, help="epochs of each training stage")
    parser.add_argument("--keep", help="work in this folder and keep it (default: a temp folder, removed)")
    args = parser.parse_args()
    import tempfile
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="audiomnist_scale_"))
    work.mkdir(parents=True, exist_ok=True)
    mirror, root = work / "mirror", work / "project"
    mirror.mkdir(exist_ok=True)
    root.mkdir(exist_ok=True)
    archive = mirror / "AudioMNIST-master.zip"
    build_s = build_fixture(archive, args.files) if not archive.exists() else 0.0
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["tracking"]["enabled"] = False
    params["data"]["sources"]["fsdd"]["enabled"] = False
    params["data"]["sources"]["audiomnist"]["enabled"] = True
    params["data"]["split"]["method"] = "speaker"
    params["filter"]["trim_db"] = 40          # AudioMNIST's recordings have silent margins
    full_epochs = params["outer"]["train"]["epochs"], params["inner"]["train"]["epochs"]
    params["outer"]["train"]["epochs"] = params["inner"]["train"]["epochs"] = args.epochs
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, "AUDIOVAE_DATA_MIRROR": str(mirror), "AUDIOVAE_ROOT": str(root)}
    rows = [("build fixture archive", build_s, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20)]
    for stage in ("download", "filter", "features", "train_outer", "encode", "train_inner"):
        seconds, gib = run_stage(root, stage, env)
        rows.append((stage, seconds, gib))
        print(f"{stage:>22}: {seconds:8.1f} s   peak RSS {gib:5.2f} GiB", flush=True)
    kept = json.loads((root / "reports" / "filter" / "summary.json").read_text())["kept"]
    outer = json.loads((root / "data" / "models" / "outer" / "summary.json").read_text())
    inner = json.loads((root / "data" / "models" / "inner" / "summary.json").read_text())
    per_outer = outer["train_seconds"] / max(outer["epochs_run"], 1)
    per_inner = inner["train_seconds"] / max(inner["epochs_run"], 1)
    data_s = sum(s for name, s, _ in rows if name in ("download", "filter", "features"))
    peak = max(g for name, _, g in rows if name in ("download", "filter", "features"))
    lines = [f"# AudioMNIST at scale (fixture: {args.files:,} FSDD recordings resampled to 48 kHz and perturbed)",
             "", f"Command: `.venv/bin/python benchmarks/audiomnist_scale.py --files {args.files} --epochs {args.epochs}`"
             f", {provenance(REPO)}, no GPU. Kept by the filter: {kept:,} files.", "",
             "| stage | seconds | peak RSS (GiB) |", "|---|---|---|",
             *(f"| {name} | {s:.1f} | {g:.2f} |" for name, s, g in rows),
             f"| **download → filter → features** | **{data_s:.1f}** | **{peak:.2f}** |", "",
             f"Training: outer {per_outer:.1f} s per epoch, inner VAE {per_inner:.2f} s per epoch on cached codes "
             f"(params.yaml default models). Projected on this CPU at the default epoch counts: outer × {full_epochs[0]} "
             f"≈ {full_epochs[0] * per_outer / 60:.0f} min, inner × {full_epochs[1]} ≈ {full_epochs[1] * per_inner / 60:.0f} min."]
    report = REPORTS / "audiomnist_scale.md"
    write_text(report, "\n".join(lines) + "\n")
    print("\n".join(lines))
    if not args.keep:
        import shutil
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
