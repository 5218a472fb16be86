"""Voices FSDD does not contain: spoken digits from espeak-ng's voices through `audiovae reconstruct`.

FSDD has six speakers, and its official split puts every speaker in training, validation and
test, so the evaluate stage never hears a new voice. This benchmark makes new ones: each digit
word spoken by several espeak-ng voices and variants at two speaking rates (a machine voice is
far from a person's, which makes this a hard case, not a typical one). Every recording goes
through the CLI exactly as a user's would (`audiovae reconstruct`, silence and windows included),
and the clean classifier of the evaluate stage (trained on FSDD's real training audio) judges the
raw recordings, the outer model's reconstructions and the CLI's output; PESQ-NB and STOI compare
the CLI's output with the raw recording.

    apt-get install espeak-ng        # Debian's package
    .venv/bin/python benchmarks/unheard_voices.py [--root .] [--model model.avae] [--out benchmarks/reports/unheard_voices.md]

Needs a trained project (`make repro`), for the classifier's training audio.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from judge import as_clips, clean_judge
from roots import REPORTS, provenance

from audiovae import cli
from audiovae.atomic import write_text
from audiovae.config.params import load_params
from audiovae.evaluation import quality
from audiovae.inference.model import AudioVAE

WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
VOICES = ["en-us+m3", "en-us+f2", "en-gb+m1", "en-gb+f4", "en-029+m2", "en-gb-scotland+f1",
          "en-gb-x-rp+m5", "en-gb-x-gbclan+f3"]
RATES = [130, 170]  # words per minute


def speak(folder: Path) -> list[tuple[Path, str]]:
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is not installed: apt-get install espeak-ng")
    made = []
    for voice in VOICES:
        for rate in RATES:
            for digit, word in enumerate(WORDS):
                path = folder / f"{digit}_{voice.replace('+', '-')}_{rate}.wav"
                subprocess.run(["espeak-ng", "-v", voice, "-s", str(rate), "-w", str(path), word], check=True)
                made.append((path, str(digit)))
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=".")
    parser.add_argument("--model", help="a bundle or registry URI (default: the project's model)")
    parser.add_argument("--out", default=str(REPORTS / "unheard_voices.md"))
    args = parser.parse_args()
    root = Path(args.root).resolve()
    params = load_params(root / "params.yaml")
    model = AudioVAE.from_file(Path(args.model)) if args.model else AudioVAE.from_project(root)
    judge = clean_judge(root, params)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "in").mkdir()
        made = speak(tmp / "in")
        model_args = ["--model", args.model] if args.model else []
        assert cli.main(["--root", str(root), *model_args, "reconstruct", *[str(p) for p, _ in made],
                         "--out", str(tmp / "out")]) == 0
        raw = [model.load_audio(p) for p, _ in made]
        out = [model.load_audio(tmp / "out" / p.name) for p, _ in made]
    labels = np.array([label for _, label in made])
    raw_clips = as_clips(raw, model.codec.sample_rate, model.length)
    out_clips = as_clips(out, model.codec.sample_rate, model.length)
    outer_clips = model.to_audio(model.reconstruct_outer(model.spectrogram(raw_clips)))
    sr = model.codec.sample_rate
    rows = {"raw espeak-ng audio": raw_clips, "outer model only": outer_clips, "`audiovae reconstruct`": out_clips}
    lines = ["| audio | clean classifier | PESQ-NB | STOI |", "|---|---|---|---|"]
    for name, audio in rows.items():
        acc = judge.accuracy(audio, labels)
        if name.startswith("raw"):
            lines.append(f"| {name} | {acc:.3f} | – | – |")
        else:
            lines.append(f"| {name} | {acc:.3f} | {quality.pesq_mean(raw_clips, audio, sr, 'nb'):.2f} | "
                         f"{quality.stoi_score(raw_clips, audio, sr):.3f} |")
    table = "\n".join(lines)
    print(table)
    write_text(root / args.out, "# Voices FSDD does not contain (espeak-ng)\n\n"
               f"Produced by `python benchmarks/unheard_voices.py`, {provenance(Path(__file__).resolve().parents[1])}: {len(VOICES)} espeak-ng voices x "
               f"{len(RATES)} rates x 10 digits = {len(made)} recordings; the clean classifier is the evaluate "
               "stage's (FSDD training audio only). PESQ / STOI against the raw recording.\n\n" + table + "\n")


if __name__ == "__main__":
    main()
