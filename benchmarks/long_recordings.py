"""A word inside a longer recording: FSDD test words placed 1.0-1.6 s into 2.9 s of 44.1 kHz stereo
near-silence, through `audiovae reconstruct`, against the same words reconstructed on their own.

    .venv/bin/python benchmarks/long_recordings.py [--files 100] [--model model.avae]

Each word (a test-split FSDD file, scaled to peak 0.5) is placed at a random offset with room
noise around it (about -70 dBFS); the CLI reconstructs both the long take and the word alone. The
evaluate stage's clean classifier judges each output (trimmed of silence and fitted to the clip
length, as FSDD's files are), and the energy the output puts more than 0.1 s away from the word is
reported relative to the word's (it should be none: the model must not add sound to silence).
Writes benchmarks/reports/long_recordings.md.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import librosa
import numpy as np
import pandas as pd
import soundfile as sf
from judge import as_clips, clean_judge
from roots import REPORTS, provenance

from audiovae import cli
from audiovae.atomic import write_text
from audiovae.config.params import load_params
from audiovae.data.audio import read, to_mono
from audiovae.inference.model import AudioVAE

RATE, SECONDS, FIRST, LAST = 44100, 2.9, 1.0, 1.6
ROOM = 3e-4   # room noise std per channel (about -70 dBFS)
PEAK = 0.5    # the word's recording level


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=".")
    parser.add_argument("--model", help="a bundle or registry URI (default: the project's model)")
    parser.add_argument("--files", type=int, default=100, help="test words (default: %(default)s)")
    parser.add_argument("--out", default=str(REPORTS / "long_recordings.md"))
    args = parser.parse_args()
    root = Path(args.root).resolve()
    params = load_params(root / "params.yaml")
    model = AudioVAE.from_file(Path(args.model)) if args.model else AudioVAE.from_project(root)
    meta = pd.read_csv(root / "data" / "metadata.csv", dtype={"label": str})
    test = meta[(meta["split"] == "test") & (meta["dataset"] == "fsdd")]
    test = test.iloc[np.linspace(0, len(test) - 1, min(args.files, len(test))).astype(int)]
    rng = np.random.default_rng(params.seed)
    sr = model.codec.sample_rate
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "long").mkdir()
        (tmp / "alone").mkdir()
        spans = []
        for row in test.itertuples(index=False):
            signal, file_sr = read(root / row.path)
            word = librosa.resample(to_mono(signal), orig_sr=file_sr, target_sr=RATE)
            word = (PEAK * word / np.abs(word).max()).astype(np.float32)
            onset = int(rng.uniform(FIRST, max(FIRST, LAST - len(word) / RATE)) * RATE)
            take = ROOM * rng.standard_normal((int(SECONDS * RATE), 2)).astype(np.float32)
            take[onset:onset + len(word)] += np.stack([word, 0.8 * word], axis=1)
            name = Path(row.path).stem + ".wav"
            sf.write(tmp / "long" / name, take, RATE, subtype="PCM_16")
            sf.write(tmp / "alone" / name, np.stack([word, 0.8 * word], axis=1), RATE, subtype="PCM_16")
            spans.append((onset / RATE, (onset + len(word)) / RATE))
        model_args = ["--model", args.model] if args.model else []
        for kind in ("long", "alone"):
            files = sorted(str(p) for p in (tmp / kind).glob("*.wav"))
            assert cli.main(["--root", str(root), *model_args, "reconstruct", *files, "--out", str(tmp / f"rec_{kind}")]) == 0
        names = [Path(row.path).stem + ".wav" for row in test.itertuples(index=False)]
        out_long = [model.load_audio(tmp / "rec_long" / n) for n in names]
        out_alone = [model.load_audio(tmp / "rec_alone" / n) for n in names]
        raw_alone = [model.load_audio(tmp / "alone" / n) for n in names]
        # energy written away from the word (beyond 0.1 s of it), relative to the word's own
        outside = []
        for n, (a, b) in zip(names, spans):
            wave, _ = sf.read(tmp / "rec_long" / n, dtype="float32")
            mask = np.ones(len(wave), bool)
            mask[max(0, int((a - 0.1) * sr)): int((b + 0.1) * sr)] = False
            outside.append(float(np.sum(wave[mask] ** 2) / max(np.sum(wave[~mask] ** 2), 1e-12)))
    judge = clean_judge(root, params)
    labels = test["label"].astype(str).to_numpy()
    rows = {"the words, raw": raw_alone, "`reconstruct`, each word on its own": out_alone,
            "`reconstruct`, the 2.9 s takes": out_long}
    lines = ["| audio | clean classifier |", "|---|---|"]
    for name, waves in rows.items():
        lines.append(f"| {name} | {judge.accuracy(as_clips(waves, sr, model.length), labels):.3f} |")
    lines.append(f"\nEnergy written more than 0.1 s away from the word, relative to the word's: mean "
                 f"{np.mean(outside):.2e}, max {np.max(outside):.2e} ({len(names)} takes).")
    table = "\n".join(lines)
    print(table)
    write_text(root / args.out, "# A word inside a longer recording\n\nProduced by `python benchmarks/long_recordings.py`, "
               f"{provenance(Path(__file__).resolve().parents[1])}: "
               f"{len(names)} FSDD test words placed {FIRST}-{LAST} s into {SECONDS} s of {RATE} Hz stereo room noise.\n\n"
               + table + "\n")


if __name__ == "__main__":
    main()
