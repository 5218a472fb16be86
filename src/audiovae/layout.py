"""The project's files: every path a stage reads or writes, named once, relative to the project root.

``dvc.yaml`` declares the same paths as the stages' deps and outs; ``tests/test_dvc_deps.py`` holds
the two equal and finds any path of this layout written out anywhere else in the package. Callers
join a name to their root: ``root / layout.FEATURES``.
"""
from __future__ import annotations

from pathlib import Path

# ---------------------------------------------------------------- the files inside a folder output
# (a stage writes them into its temporary copy of the folder, ``staging / layout.CODES``, which is
# renamed into place when complete; readers join them to the folder: ``root / layout.ENCODINGS_CODES``)
SKIPPED_NAME = "skipped.csv"     # data/raw: files of a source not taken as audio, and why
AUDIO_ARRAY = "audio.npy"        # data/filtered: (files, samples) at one rate and length
AUDIO_META = "audio.json"        # data/filtered: that rate and length
INDEX = "index.csv"              # data/filtered, features, encodings: which file each row is
SPECTROGRAMS = "spectrograms.npy"  # data/features: (rows, bins, frames) in [0, 1]
CODEC = "codec.json"             # data/features: everything that inverts a spectrogram to audio
CODES = "codes.npy"              # data/encodings: (rows, code size), not standardised
CODE_STATS = "stats.npz"         # data/encodings: the real training codes' mean and std
CODES_MANIFEST = "manifest.json"  # data/encodings: the outer model and code shape they came from
MODEL = "model.pt"               # data/models/*: the checkpoint with its config
LATENTS_ARRAY = "latents.npy"    # data/latents: the inner VAE's posterior mean of each real recording
SUMMARY = "summary.json"         # data/models/*, reports/*: a stage's facts

# ---------------------------------------------------------------- data/: the stages' outputs, in order
RAW = Path("data/raw")                          # download: the source files as fetched
SKIPPED = RAW / SKIPPED_NAME
METADATA = Path("data/metadata.csv")            # download: one row per file
MANIFEST = Path("data/manifest.csv")            # download: paths and checksums (the data's identity)
FILTERED = Path("data/filtered")                # filter: one rate, one length
FILTERED_AUDIO = FILTERED / AUDIO_ARRAY
FILTERED_META = FILTERED / AUDIO_META
FILTERED_INDEX = FILTERED / INDEX
FEATURES = Path("data/features")                # features: spectrograms, their index and codec
FEATURES_SPECS = FEATURES / SPECTROGRAMS
FEATURES_INDEX = FEATURES / INDEX
FEATURES_CODEC = FEATURES / CODEC
OUTER_DIR = Path("data/models/outer")           # train_outer
OUTER_MODEL = OUTER_DIR / MODEL
OUTER_SUMMARY = OUTER_DIR / SUMMARY
ENCODINGS = Path("data/encodings")              # encode: the frozen encoder's codes of every file
ENCODINGS_CODES = ENCODINGS / CODES
ENCODINGS_STATS = ENCODINGS / CODE_STATS
ENCODINGS_INDEX = ENCODINGS / INDEX
ENCODINGS_MANIFEST = ENCODINGS / CODES_MANIFEST
INNER_DIR = Path("data/models/inner")           # train_inner
INNER_MODEL = INNER_DIR / MODEL
INNER_SUMMARY = INNER_DIR / SUMMARY
LATENTS = Path("data/latents")                  # train_prior: the frozen inner VAE's latents, once
LATENTS_MEANS = LATENTS / LATENTS_ARRAY
LATENTS_INDEX = LATENTS / INDEX
PRIOR_DIR = Path("data/models/prior")           # train_prior: what generation samples from
PRIOR_MODEL = PRIOR_DIR / MODEL
PRIOR_SUMMARY = PRIOR_DIR / SUMMARY
BUNDLE = Path("data/export/model.avae")         # export: the whole model in one file

# ---------------------------------------------------------------- reports/: what a reader looks at
REPORTS = Path("reports")
STAGE_PARAMS = REPORTS / "params"               # params: each stage's effective values (stage_params)
FILTER_REPORT = REPORTS / "filter"
FILTER_REJECTIONS = FILTER_REPORT / "rejections.csv"
FILTER_LENGTHS = FILTER_REPORT / "lengths.csv"
FILTER_PERCENTILES = FILTER_REPORT / "percentiles.csv"
FILTER_SUMMARY = FILTER_REPORT / SUMMARY
FILTER_HISTOGRAM = FILTER_REPORT / "length_hist.png"
FEATURES_SUMMARY = REPORTS / "features" / SUMMARY
OUTER_HISTORY = REPORTS / "outer" / "history.csv"
ENCODE_SUMMARY = REPORTS / "encode" / SUMMARY
INNER_HISTORY = REPORTS / "inner" / "history.csv"
INNER_KL = REPORTS / "inner" / "kl_per_dim.csv"
PRIOR_COMPONENTS = REPORTS / "prior" / "components.csv"  # train_prior: each label's components
AUDIO = REPORTS / "audio"                       # evaluate: the report page's players
REPORT_PAGE = REPORTS / "index.html"
METRICS = REPORTS / "metrics.json"
PLOTS = REPORTS / "plots"
CATEGORY_GRID = "categories.png"                # in PLOTS: each category through every row, and generated

# every path above that dvc.yaml declares (the params files are stage_params' too)
DECLARED = (RAW, METADATA, MANIFEST, FILTERED, FEATURES, OUTER_DIR, ENCODINGS, INNER_DIR, LATENTS, PRIOR_DIR,
            BUNDLE, FILTER_REJECTIONS, FILTER_LENGTHS, FILTER_PERCENTILES, FILTER_SUMMARY, FILTER_HISTOGRAM,
            FEATURES_SUMMARY, OUTER_HISTORY, ENCODE_SUMMARY, INNER_HISTORY, INNER_KL, PRIOR_COMPONENTS, AUDIO,
            REPORT_PAGE, METRICS, PLOTS)

# ---------------------------------------------------------------- not DVC outputs
ARCHIVES = Path("data/archives")                # download: the fetched archives, kept between runs
CHECKPOINTS = Path("data/checkpoints")          # epoch checkpoints a killed training resumes from
PRESETS_BENCHMARK = REPORTS / "presets_benchmark.csv"  # benchmarks/presets.py, shown on the report page
TUNING = REPORTS / "tuning"                     # tune: one folder per study
RETRAIN_REPORT = REPORTS / "retrain.md"         # the retrain flow's decision and metrics diff


def stage_params(stage: str) -> Path:
    """The effective parameters of one stage, written by the params stage, read by DVC and the stage."""
    return STAGE_PARAMS / f"{stage}.yaml"


def checkpoint(stage: str) -> Path:
    """The epoch checkpoint of a training stage (``outer`` or ``inner``)."""
    return CHECKPOINTS / f"{stage}.pt"
