"""Benchmark: what the decoder's near-floor output costs, at several `features.silence_margin_db`.

A decoder's sigmoid never reaches 0, so where a recording is silent the model returns levels just
above `features.db_floor`, which Griffin-Lim turns into hiss about 80 dB below full scale. The
margin decodes such levels as silence, as the true floor is; it is a decoding choice, so the
project's trained model is scored at each margin without retraining:

    .venv/bin/python benchmarks/silence_margin.py [--margins 0 1 3 5 8] [--clips 120]

Run after `make repro`. The scores are `audiovae.evaluation.validation`'s on its fixed validation
subset (never the test split): the outer model alone and the full path (PESQ-NB, STOI, DNSMOS and
the clean judge for speech, MR-STFT for music), and generations at the sampler's default spread.
Writes benchmarks/reports/silence_margin.md with the commit and the machine.
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from roots import REPORTS, provenance

from audiovae.atomic import write_text
from audiovae.config.params import load_params
from audiovae.config.schema import generation_spread
from audiovae.evaluation.validation import Validation
from audiovae.inference.model import AudioVAE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--margins", type=float, nargs="+", default=[0, 1, 3, 5, 8])
    parser.add_argument("--clips", type=int, default=120)
    parser.add_argument("--generated", type=int, default=10, help="generations per label (default: %(default)s)")
    parser.add_argument("--out", default=str(REPORTS / "silence_margin.md"))
    args = parser.parse_args()
    root = Path.cwd()
    params = load_params(root / "params.yaml")
    model = AudioVAE.from_project(root)
    scorer = Validation.from_project(root, params, args.clips, args.generated)
    scorer = dataclasses.replace(scorer, spread=generation_spread(params.evaluate.generate_spread, params.prior,
                                                                  learned=model.prior is not None))
    trained_codec = model.codec
    rows = []
    for margin in args.margins:
        model.codec = dataclasses.replace(trained_codec, silence_margin_db=margin)
        at = dataclasses.replace(scorer, base=dataclasses.replace(scorer.base, codec=model.codec))
        references = at.references()
        row = {"silence_margin_db": margin, **{f"outer {k}": v for k, v in references["outer"].items() if k != "full_path"},
               **{k if k.startswith("generated") else f"full {k}": v for k, v in at.listen(model).items() if k != "full_path"}}
        rows.append(row)
        print(" | ".join(f"{k}={v:.4g}" for k, v in row.items()), flush=True)
    real = references["real"]  # the same at every margin
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(f"{row[c]:.3g}" for c in columns) + " |" for row in rows]
    write_text(root / args.out, "# The decoder's near-floor output (validation subset)\n\n"
               f"`benchmarks/silence_margin.py --margins {' '.join(f'{m:g}' for m in args.margins)} --clips {args.clips}`"
               f" on the project's trained model ({params.preset if params.preset != 'none' else 'the default'}), "
               f"{provenance(root)}. Real validation audio: "
               + ", ".join(f"{k} {v:.3g}" for k, v in real.items()) + ". Generations at spread "
               f"{scorer.spread:g}, {args.generated} per label.\n\n" + "\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
