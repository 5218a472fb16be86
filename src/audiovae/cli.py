"""``audiovae``: generate, reconstruct, interpolate and probe sounds with the trained model.

By default every command uses the models that the last ``dvc repro`` produced in the project
(``data/models/``); ``--root`` points at another project checkout, ``--model`` at an exported
bundle (``audiovae export``) or a registered one (``models:/audiovae@champion``).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from audiovae import layout
from audiovae.inference.notes import (
    DEFAULT_VELOCITY,
    PitchError,
    note_name,
    parse_pitch,
)

EXAMPLES = """examples:
  audiovae generate --label 7 --count 20 --out generated/
  audiovae generate --label strings --pitch C4 --velocity 100 --out notes/   (a model trained on notes)
  audiovae reconstruct my_voice.wav other.flac --out recon/
  audiovae interpolate a.wav b.wav --steps 8 --out morph/
  audiovae probe --dim 3 --steps 9 --out probes/
  audiovae vary kick.wav --count 8 --noise 0.5 --out variations/
  audiovae export --out model.avae
  audiovae export --format torchscript --out synth.ts   (for a C++ host: docs/exporting.md)
  audiovae --model model.avae generate --label 7 --count 5 --out gen/
  audiovae --model models:/audiovae@champion reconstruct take1.wav --out recon/
  audiovae tune inner --trials 30 --workers 2 --apply
  audiovae report --open
  audiovae serve                      (a page to play the latent space on http://127.0.0.1:8765/)
  audiovae stage train_inner          (run one pipeline stage, as dvc.yaml does)
"""


def _model(args):
    from audiovae.inference.model import AudioVAE
    from audiovae.training.loop import pick_device

    device = pick_device(args.device)
    if not args.model:
        return AudioVAE.from_project(Path(args.root), device)
    if args.model.startswith("models:/"):
        from audiovae.tracking import registry
        return AudioVAE.from_bundle(registry.load_bundle(args.model, Path(args.root).resolve()), device)
    return AudioVAE.from_file(Path(args.model), device)


def _write(model, specs, out: Path, names: list[str]) -> list[Path]:
    from audiovae.data.audio import write_wav

    from .progress import track

    out.mkdir(parents=True, exist_ok=True)
    waves = model.to_audio(specs)
    paths = []
    for wave, name in track(list(zip(waves, names)), "write wav", unit="file"):
        path = out / f"{name}.wav"
        write_wav(path, wave, model.codec.sample_rate)
        paths.append(path)
    return paths


def _spread(args, model) -> float:
    """``--spread``, else the spread the evaluate stage scored the model's generations with."""
    if args.spread is not None:
        return float(args.spread)
    return model.default_spread


def cmd_generate(args) -> list[Path]:
    model = _model(args)
    specs = model.generate(args.label, args.count, seed=args.seed, spread=_spread(args, model),
                           pitch=args.pitch, velocity=args.velocity)
    note = f"_{note_name(args.pitch)}" if args.pitch is not None else ""
    return _write(model, specs, Path(args.out), [f"{args.label}{note}_{i:03d}" for i in range(args.count)])


def pitch_argument(text: str) -> int:
    """``--pitch`` as musicians type it: 60, C4, A#3, Bb3 (argparse shows the message and exits 2)."""
    try:
        return parse_pitch(text)
    except PitchError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def velocity_argument(text: str) -> int:
    """``--velocity``: MIDI's 1-127."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"velocity {text!r} is not a whole number 1-127") from None
    if not 1 <= value <= 127:
        raise argparse.ArgumentTypeError(f"velocity {value} is outside MIDI's 1-127")
    return value


def _write_waves(model, waves, out: Path, names: list[str]) -> list[Path]:
    from audiovae.data.audio import write_wav

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for wave, name in zip(waves, names):
        path = out / f"{name}.wav"
        write_wav(path, wave, model.codec.sample_rate, peak=model.codec.output_peak)
        paths.append(path)
    return paths


def cmd_reconstruct(args) -> list[Path]:
    """Each file trimmed as the training data was; a sound longer than the model's length goes
    through in overlapping windows and is stitched back whole, never cut."""
    from .progress import track

    model = _model(args)
    note = None
    if args.pitch is not None or args.velocity is not None:
        note = (args.pitch if args.pitch is not None else model.default_pitch() if model.pitch_range else 0,
                args.velocity if args.velocity is not None else DEFAULT_VELOCITY)
    waves = [model.reconstruct_audio(model.load_audio(Path(p)), args.label, note)
             for p in track(args.inputs, "reconstruct", unit="file")]
    return _write_waves(model, waves, Path(args.out), [Path(p).stem for p in args.inputs])


def cmd_interpolate(args) -> list[Path]:
    model = _model(args)
    labels = [args.label_a, args.label_b] if args.label_a is not None else None
    waves = model.interpolate_audio(model.load_audio(Path(args.a)), model.load_audio(Path(args.b)),
                                    args.steps, labels)
    stem = f"{Path(args.a).stem}_to_{Path(args.b).stem}"
    return _write_waves(model, waves, Path(args.out), [f"{stem}_{i:02d}" for i in range(args.steps)])


def cmd_vary(args) -> list[Path]:
    """The sample generator's variations: the recording's latent plus noise, decoded."""
    model = _model(args)
    waves = model.vary(model.load_audio(Path(args.input)), args.count, args.noise, args.seed, args.label)
    stem = Path(args.input).stem
    return _write_waves(model, waves, Path(args.out), [f"{stem}_var{i:03d}" for i in range(args.count)])


def cmd_export(args) -> list[Path]:
    """``avae``: both networks, codec, statistics, label centres, effective params, data hash in one
    file for this package. ``torchscript``: the whole synthesis path for a host without Python."""
    if args.format == "torchscript":
        from audiovae.inference import portable

        return [portable.write(_model(args), Path(args.out))]
    from audiovae.inference import bundle

    if args.model:
        raise ValueError("export --format avae writes the project's model (--root); --model is already a bundle "
                         "(--format torchscript converts one)")
    return [bundle.write(bundle.from_project(Path(args.root).resolve()), Path(args.out))]


def cmd_serve(args) -> None:
    """The explorer page (``inference/explorer.py``), until Ctrl-C."""
    from audiovae.inference import explorer

    model = _model(args)
    explorer.serve(model, Path(args.root).resolve(), args.host, args.port, _spread(args, model))


def cmd_probe(args) -> list[Path]:
    model = _model(args)
    dims = range(model.probe_units) if args.dim is None else [args.dim]
    written = []
    for dim in dims:
        specs = model.probe(dim, args.steps, args.extent, args.label)
        written += _write(model, specs, Path(args.out), [f"dim{dim:02d}_{i:02d}" for i in range(args.steps)])
    return written


def cmd_tune(args) -> None:
    from audiovae.training.tune import tune

    trials = args.trials
    if trials is None:
        from audiovae.config.params import load_params
        from audiovae.training.tune import target_of
        trials = target_of(load_params(Path(args.root).resolve() / "params.yaml"), args.target).trials
    from audiovae.training.tune import chosen_trial

    study = tune(args.target, trials, storage=args.storage, study_name=args.study, workers=args.workers,
                 apply=args.apply, root=Path(args.root).resolve(), trial=args.trial)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    print(f"study {study.study_name}: {len(study.trials)} trials, {len(complete)} complete")
    if len(study.directions) > 1:
        for t in sorted(study.best_trials, key=lambda t: t.number):
            print(f"pareto trial {t.number}: values {[round(v, 6) for v in t.values]} with {t.params}")
    if complete:
        best = chosen_trial(study, args.trial)
        print(f"{'chosen' if args.trial is not None else 'best'} trial {best.number}: "
              f"value {best.values[0]:.6g} with {best.params}")
        if args.apply:
            print(f"params.yaml updated with trial {best.number}'s values; `dvc params diff` shows the change")


def cmd_report(args) -> None:
    from audiovae.config.params import load_params
    from audiovae.evaluation.report import build

    root = Path(args.root).resolve()
    if not (root / layout.METRICS).exists():
        raise FileNotFoundError(f"{root / layout.METRICS} does not exist: run `dvc repro` first")
    page = build(root, load_params(root / "params.yaml"))
    print(f"wrote {page}")
    if args.open:
        import webbrowser
        webbrowser.open(page.as_uri())


# the stages of dvc.yaml in its order (tests/test_dvc_deps.py holds the two equal)
STAGES = ("params", "download", "filter", "features", "train_outer", "encode", "train_inner", "train_prior",
          "evaluate", "export")


def cmd_stage(args) -> None:
    import importlib

    importlib.import_module(f"audiovae.stages.{args.name}").main()


def _global_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """``--root``, ``--model``, ``--device``, ``-v``: accepted before the command and after it (as
    people type them); after it they override the ones before (``SUPPRESS`` keeps an option that
    was not given after the command from resetting one given before it)."""
    default = (lambda value: argparse.SUPPRESS) if suppress else (lambda value: value)
    parser.add_argument("--root", default=default("."), help="project root holding data/models (default: .)")
    parser.add_argument("--model", default=default(None), help="an exported bundle (model.avae) or a registry URI "
                        "(models:/audiovae@champion; store: $MLFLOW_TRACKING_URI, else the project's); "
                        "default: the project's last dvc repro")
    parser.add_argument("--device", default=default("auto"), help="auto | cpu | cuda | mps (default: auto)")
    parser.add_argument("-v", "--verbose", action="store_true", default=default(False), help="debug logging")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="audiovae", description=__doc__.replace("``", ""), epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"audiovae {__version__}")
    _global_options(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name, func, help_text, example):
        p = sub.add_parser(name, help=help_text, description=f"{help_text}\n\nexample:\n  {example}",
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        _global_options(p, suppress=True)
        p.set_defaults(func=func)
        return p

    p = add("generate", cmd_generate, "Generate new sounds of one label.",
            "audiovae generate --label 7 --count 20 --out generated/ --seed 1")
    p.add_argument("--label", required=True, help="the digit or category to generate")
    p.add_argument("--count", type=int, default=10, help="how many files (default: %(default)s)")
    p.add_argument("--out", required=True, help="output folder; files are LABEL_000.wav ...")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--pitch", type=pitch_argument,
                   help="a model trained on notes: the key, a MIDI number or a name (60, C4, A#3, Bb3; "
                        "default: middle C)")
    p.add_argument("--velocity", type=velocity_argument,
                   help="a model trained on notes: how hard the key is struck, 1-127 (default: 100)")
    p.add_argument("--spread", type=float,
                   help="how far from the typical sound: with a learned prior its temperature (1: the density "
                        "as fitted), else the spread around a training latent in units of the label's std "
                        "(default: the value the evaluate stage scored the model's generations at)")

    p = add("reconstruct", cmd_reconstruct, "Run audio files (any rate, channels, length) through the model; "
            "silence is trimmed as in training and long sounds go through in overlapping windows.",
            "audiovae reconstruct take1.wav take2.flac --out recon/")
    p.add_argument("inputs", nargs="+", help="audio files")
    p.add_argument("--out", required=True, help="output folder; files are <stem>.wav")
    p.add_argument("--label", help="the inputs' label (needed only by a label-conditioned model)")
    p.add_argument("--pitch", type=pitch_argument, help="a model trained on notes: the inputs' key (60, C4, Bb3)")
    p.add_argument("--velocity", type=velocity_argument,
                   help="a model trained on notes: the inputs' velocity, 1-127 (default: 100)")

    p = add("interpolate", cmd_interpolate, "Morph between two sounds through the latent space.",
            "audiovae interpolate one.wav two.wav --steps 8 --out morph/")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--steps", type=int, default=8, help="points on the path, ends included (default: %(default)s)")
    p.add_argument("--out", required=True)
    p.add_argument("--label-a", help="label of A (label-conditioned model only)")
    p.add_argument("--label-b", help="label of B (label-conditioned model only)")

    p = add("probe", cmd_probe, "Sweep latent dimensions (a sequence latent's channels) one at a time, the rest at zero.",
            "audiovae probe --dim 3 --steps 9 --out probes/")
    p.add_argument("--dim", type=int, help="one dimension, or channel of a sequence latent (default: every one)")
    p.add_argument("--steps", type=int, default=9, help="(default: %(default)s)")
    p.add_argument("--extent", type=float, default=3.0, help="sweep from -extent to +extent (default: %(default)s)")
    p.add_argument("--label", help="label for a label-conditioned model")
    p.add_argument("--out", required=True)

    p = add("vary", cmd_vary, "Variations around one recording: its latent plus noise, decoded.",
            "audiovae vary kick.wav --count 8 --noise 0.5 --out variations/ --seed 1")
    p.add_argument("input", help="an audio file (any rate, channels, length)")
    p.add_argument("--count", type=int, default=8, help="how many variations (default: %(default)s)")
    p.add_argument("--noise", type=float, default=0.5,
                   help="latent noise std; 0 is the plain reconstruction, more strays further (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--label", help="the input's label (label-conditioned model only)")
    p.add_argument("--out", required=True, help="output folder; files are <stem>_var000.wav ...")

    p = add("export", cmd_export, "Write the trained model as one self-contained file: a bundle for this "
            "package (avae), or the whole synthesis path for a C++ host through libtorch (torchscript).",
            "audiovae export --out model.avae\n  audiovae export --format torchscript --out synth.ts")
    p.add_argument("--format", choices=("avae", "torchscript"), default="avae",
                   help="avae (default): the bundle `--model` reads; torchscript: decoders, codec, label "
                        "statistics and Griffin-Lim in one file `torch::jit::load` runs (docs/exporting.md)")
    p.add_argument("--out", required=True, help="the file to write (.avae, or .ts for torchscript)")

    p = add("tune", cmd_tune, "Tune the outer autoencoder or the inner VAE with Optuna (spaces in params.yaml).",
            "audiovae tune inner --trials 30 --workers 2 --apply")
    p.add_argument("target", choices=("outer", "inner", "prior"),
                   help="outer first; inner trains on the cached encodings, prior on the cached latents")
    p.add_argument("--trials", type=int, help="trials to run now (default: tune.<target>.trials in params.yaml)")
    p.add_argument("--storage", help="SQLAlchemy URL or journal:PATH (default: tune.storage, else sqlite:///optuna.db)")
    p.add_argument("--study", help="study name; an existing study resumes (default: <target>-default)")
    p.add_argument("--workers", type=int, default=1, help="worker processes sharing the storage (default: %(default)s)")
    p.add_argument("--apply", action="store_true",
                   help="write the best values (on the first objective) into params.yaml")
    p.add_argument("--trial", type=int, help="with --apply: take this trial's values (e.g. one on the Pareto front); "
                   "with --trials 0 it applies without running more")

    p = add("serve", cmd_serve, "A local page to play the model's latent space: generate, principal-direction "
            "sliders, morph, vary, uploads.", "audiovae serve --port 8765   (then open http://127.0.0.1:8765/)")
    p.add_argument("--port", type=int, default=8765, help="(default: %(default)s)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: %(default)s, this machine only; 0.0.0.0 shares it)")
    p.add_argument("--spread", type=float, help="generation spread (default: evaluate.generate_spread of the model)")

    p = add("report", cmd_report, "Rebuild reports/index.html from the existing outputs (no retraining).",
            "audiovae report --open")
    p.add_argument("--open", action="store_true", help="open the page in a web browser")

    p = add("stage", cmd_stage, "Run one pipeline stage with params.yaml (what dvc.yaml calls).",
            "audiovae stage evaluate")
    p.add_argument("name", choices=STAGES)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .progress import setup_logging

    args = build_parser().parse_args(argv)
    setup_logging(logging.DEBUG if args.verbose else logging.INFO)
    try:
        result = args.func(args)
    except (FileNotFoundError, ValueError, LookupError) as exc:
        print(f"audiovae {args.command}: error: {exc}", file=sys.stderr)
        return 2
    if isinstance(result, list):
        print(f"wrote {len(result)} file(s) to {result[0].parent if result else args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
