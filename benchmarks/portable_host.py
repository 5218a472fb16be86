"""The synthesizer's budget: how long one new sound takes through the exported TorchScript file, in
Python and in the C++ host (examples/cpp) built against the torch wheel's libtorch, next to the
package's own path (NumPy sampling, librosa's Griffin-Lim).

    .venv/bin/python benchmarks/portable_host.py [--model model.avae] [--runs 20]

Exports the model to build/portable/synth.ts (`audiovae export --format torchscript`), times
`generate(label, seed, spread)` (median of --runs calls after one warm-up) with all cores and with
one torch thread, builds the host with CMake (needs cmake and a C++ compiler) and runs it once per
label, and scores the file's Griffin-Lim against librosa's on real test recordings (PESQ-NB).
Writes benchmarks/reports/portable.md.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from pesq import pesq
from roots import REPORTS, provenance

from audiovae import cli
from audiovae.atomic import write_text
from audiovae.data.artifacts import open_features, real_rows
from audiovae.inference.model import AudioVAE

REPO = Path(__file__).resolve().parents[1]


def median_seconds(call, runs: int) -> float:
    call()  # warm-up: the first call of a scripted module optimises its graph
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def build_host(build: Path) -> Path:
    prefix = torch.utils.cmake_prefix_path
    subprocess.run(["cmake", "-S", str(REPO / "examples" / "cpp"), "-B", str(build), f"-DCMAKE_PREFIX_PATH={prefix}",
                    "-DCMAKE_BUILD_TYPE=Release"], check=True, capture_output=True, text=True)
    subprocess.run(["cmake", "--build", str(build), "-j", "2"], check=True, capture_output=True, text=True)
    return build / "synth"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=".")
    parser.add_argument("--model", help="a bundle (default: the project's model)")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--clips", type=int, default=20, help="test recordings for the Griffin-Lim check")
    args = parser.parse_args()
    root = Path(args.root).resolve()
    out = root / "build" / "portable"
    out.mkdir(parents=True, exist_ok=True)
    synth_path = out / "synth.ts"
    export = (["--model", args.model] if args.model else ["--root", str(root)])
    assert cli.main([*export, "export", "--format", "torchscript", "--out", str(synth_path)]) == 0
    model = AudioVAE.from_file(Path(args.model)) if args.model else AudioVAE.from_project(root)
    spread = model.default_spread
    sound = model.length / model.codec.sample_rate
    synth = torch.jit.load(str(synth_path))
    rows = []
    with torch.no_grad():
        for threads in (torch.get_num_threads(), 1):
            torch.set_num_threads(threads)
            file_s = median_seconds(lambda: synth.generate(0, 1, spread), args.runs)
            package_s = median_seconds(lambda: model.to_audio(model.generate(model.labels[0], 1, 1, spread)),
                                       args.runs)
            rows.append((threads, file_s, package_s))
    # Griffin-Lim: the file's against librosa's on the true magnitudes of real test recordings
    specs, index, _ = open_features(root / "data" / "features")
    test = real_rows(index, "test")[: args.clips]
    scores = []
    for i in test:
        magnitude = model.codec.to_magnitude(np.asarray(specs[i:i + 1]))
        reference = model.codec.griffin_lim(magnitude, length=model.length)[0]
        with torch.no_grad():
            mine = synth.griffin_lim(torch.from_numpy(magnitude)).numpy()[0]
        scores.append(pesq(8000, reference, mine, "nb") if model.codec.sample_rate == 8000 else float("nan"))
    host_lines = []
    try:
        host = build_host(root / "build" / "cpp")
        for i, label in enumerate(model.labels):
            done = subprocess.run([str(host), str(synth_path), label, "1", str(spread), str(out / f"{label}.wav")],
                                  check=True, capture_output=True, text=True, timeout=300)
            host_lines.append(done.stdout.strip())
        host_rtf = [float(re.search(r"real-time factor ([0-9.e-]+)", line).group(1)) for line in host_lines]
    except (OSError, subprocess.CalledProcessError) as exc:
        host_rtf = []
        host_lines = [f"C++ host not built: {exc}"]
    lines = ["# The exported synthesizer: time per sound and agreement", "",
             f"`{' '.join(['benchmarks/portable_host.py'] + sys.argv[1:])}`, {provenance(Path(__file__).resolve().parents[1])}: one "
             f"{sound:.2f} s sound at {model.codec.sample_rate} Hz, spread {spread}, median of {args.runs} calls.", "",
             "| torch threads | exported file, Python (s) | real-time factor | the package's path (s) | real-time factor |",
             "|---|---|---|---|---|"]
    lines += [f"| {t} | {f:.4f} | {f / sound:.3f} | {p:.4f} | {p / sound:.3f} |" for t, f, p in rows]
    lines += ["", "C++ host (`examples/cpp/synth.cpp`, libtorch from the torch wheel, one warm-up call, then one "
              "timed `generate` per label):", ""]
    if host_rtf:
        lines += [f"- real-time factor: median {np.median(host_rtf):.3f}, worst {max(host_rtf):.3f} over "
                  f"{len(host_rtf)} labels", f"- e.g. `{host_lines[0]}`"]
    else:
        lines += [f"- {host_lines[0]}"]
    lines += ["", f"Griffin-Lim in the file against librosa's, on the true magnitudes of {len(scores)} test "
              f"recordings: PESQ-NB median {np.nanmedian(scores):.2f}, lowest {np.nanmin(scores):.2f}.", ""]
    write_text(REPORTS / "portable.md", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
