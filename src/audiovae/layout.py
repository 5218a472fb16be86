"""The project's files: every path a stage reads or writes, named once, relative to the project root.

``dvc.yaml`` declares the same paths as the stages' deps and outs; ``tests/test_dvc_deps.py`` holds
the two equal and finds any path of this layout written out anywhere else in the package. Callers
join a name to their root: ``root / layout.FEATURES``.
"""
from __future__ import annotations

from pathlib import Path

# ---------------------------------------------------------------- data/: the stages' outputs, in order
RAW = Path("data/raw")                          # download: the source files as fetched
SKIPPED = RAW / "skipped.csv"                   #   files of a source not taken as audio, and why
METADATA = Path("data/metadata.csv")            # download: one row per file
MANIFEST = Path("data/manifest.csv")            # download: paths and checksums (the data's identity)
FILTERED = Path("data/filtered")                # filter: one rate, one length
FILTERED_AUDIO = FILTERED / "audio.npy"
FILTERED_META = FILTERED / "audio.json"
FEATURES = Path("data/features")                # features: spectrograms, their index and codec
OUTER_DIR = Path("data/models/outer")           # train_outer
OUTER_MODEL = OUTER_DIR / "model.pt"
OUTER_SUMMARY = OUTER_DIR / "summary.json"
ENCODINGS = Path("data/encodings")              # encode: the frozen encoder's codes of every file
INNER_DIR = Path("data/models/inner")           # train_inner
INNER_MODEL = INNER_DIR / "model.pt"
INNER_SUMMARY = INNER_DIR / "summary.json"
BUNDLE = Path("data/export/model.avae")         # export: the whole model in one file

# ---------------------------------------------------------------- reports/: what a reader looks at
REPORTS = Path("reports")
STAGE_PARAMS = REPORTS / "params"               # params: each stage's effective values (stage_params)
FILTER_REPORT = REPORTS / "filter"
FILTER_REJECTIONS = FILTER_REPORT / "rejections.csv"
FILTER_LENGTHS = FILTER_REPORT / "lengths.csv"
FILTER_PERCENTILES = FILTER_REPORT / "percentiles.csv"
FILTER_SUMMARY = FILTER_REPORT / "summary.json"
FILTER_HISTOGRAM = FILTER_REPORT / "length_hist.png"
FEATURES_SUMMARY = REPORTS / "features" / "summary.json"
OUTER_HISTORY = REPORTS / "outer" / "history.csv"
ENCODE_SUMMARY = REPORTS / "encode" / "summary.json"
INNER_HISTORY = REPORTS / "inner" / "history.csv"
INNER_KL = REPORTS / "inner" / "kl_per_dim.csv"
AUDIO = REPORTS / "audio"                       # evaluate: the report page's players
REPORT_PAGE = REPORTS / "index.html"
METRICS = REPORTS / "metrics.json"
PLOTS = REPORTS / "plots"

# every path above that dvc.yaml declares (the params files are stage_params' too)
DECLARED = (RAW, METADATA, MANIFEST, FILTERED, FEATURES, OUTER_DIR, ENCODINGS, INNER_DIR, BUNDLE,
            FILTER_REJECTIONS, FILTER_LENGTHS, FILTER_PERCENTILES, FILTER_SUMMARY, FILTER_HISTOGRAM,
            FEATURES_SUMMARY, OUTER_HISTORY, ENCODE_SUMMARY, INNER_HISTORY, INNER_KL, AUDIO, REPORT_PAGE,
            METRICS, PLOTS)

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
