"""The schema of ``params.yaml``: every key, its type and its allowed values, checked before any work.

``params.yaml`` holds every value; this module holds none of them (no field has a default here),
so there is one place to change a setting. An unknown or misspelt key, a wrong type or a value
outside its choices is refused with the key's dotted path. Each preset is checked the same way
after it is merged over the base values.
"""
from __future__ import annotations

import functools
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError

Activation = Literal["gelu", "relu", "elu", "tanh"]
Device = str  # auto | cpu | cuda | cuda:N | mps: torch parses it


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Tracking(Strict):
    enabled: bool
    experiment: str
    uri: str
    fallback_local: bool
    retry_seconds: int = Field(ge=0)


class Source(Strict):
    enabled: bool
    url: str
    archive: str
    sha256: str
    timeout_seconds: float = Field(gt=0)


class SamplesSource(Source):
    path: str
    include: list[str]
    category_from: Literal["keywords", "folder"]
    default_category: str
    folder_categories: dict[str, str]
    keywords: dict[str, list[str]]


class SoundfontSource(Strict):
    enabled: bool
    font: str
    programs: list[int | str] = Field(min_length=1)  # GM programs 0-127, or GM family names (8 programs each)
    pitch_low: int = Field(ge=0, le=127)
    pitch_high: int = Field(ge=0, le=127)
    pitch_step: int = Field(ge=1)
    velocities: list[Annotated[int, Field(ge=1, le=127)]] = Field(min_length=1)
    sample_rate: int = Field(gt=0)
    hold_seconds: float = Field(gt=0)
    release_seconds: float = Field(ge=0)
    fade_seconds: float = Field(ge=0)
    gain: float = Field(gt=0, le=10)
    label: Literal["family", "instrument"]


class Sources(Strict):
    fsdd: Source
    audiomnist: Source
    samples: SamplesSource
    soundfont: SoundfontSource


class Split(Strict):
    method: Literal["official", "speaker", "stratified", "grouped", "instrument"]
    val_fraction: float = Field(ge=0, lt=1)
    test_fraction: float = Field(ge=0, lt=1)
    official_test_takes: int = Field(ge=0)


class Data(Strict):
    sources: Sources
    split: Split


class Filter(Strict):
    lower_percentile: float = Field(ge=0, le=100)
    upper_percentile: float = Field(ge=0, le=100)
    silence_peak: float = Field(ge=0)
    trim_db: float = Field(ge=0)
    sample_rate: int = Field(gt=0)
    seconds: float = Field(gt=0)
    length_mode: Literal["center", "right"]
    long_sounds: Literal["reject", "cut"]
    fade_seconds: float = Field(ge=0)
    min_class_files: int = Field(ge=0)
    small_classes: Literal["keep", "merge", "drop"]
    merge_into: str = Field(min_length=1)
    normalise: Literal["peak", "none"]


class GriffinLim(Strict):
    iterations: int = Field(gt=0)
    momentum: float = Field(ge=0)
    seed: int


class Mix(Strict):
    enabled: bool
    per_train_file: float = Field(ge=0)
    gain_db: list[float] = Field(min_length=2, max_length=2)


class Augment(Strict):
    mix: Mix


class Features(Strict):
    n_fft: int = Field(gt=1)
    hop_length: int = Field(gt=0)
    window: str
    drop_nyquist: bool
    representation: Literal["db", "mu_law"]
    mu: float = Field(gt=0)
    scaling: Literal["global", "per_file"]
    db_floor: float
    db_ceiling: float
    silence_margin_db: float = Field(ge=0)
    batch_size: int = Field(gt=0)
    output_peak: float = Field(gt=0, le=1)
    griffin_lim: GriffinLim
    augment: Augment


class Train(Strict):
    epochs: int = Field(ge=0)
    lr: float = Field(gt=0)
    weight_decay: float = Field(ge=0)
    patience: int = Field(gt=0)
    average_window: int = Field(gt=0)
    max_seconds: float = Field(ge=0)
    mixed_precision: bool
    schedule: Literal["constant", "cosine"]
    min_lr_ratio: float = Field(ge=0, le=1)
    warmup_epochs: int = Field(ge=0)
    grad_clip: float = Field(ge=0)


class OuterConv1d(Strict):
    hidden: int = Field(gt=0)
    code_channels: int = Field(gt=0)
    downsamples: int = Field(ge=0)
    kernel_size: int = Field(gt=0)
    activation: Activation
    blocks: int = Field(ge=0)


class OuterConv2d(Strict):
    layers: int = Field(gt=0)
    kernels: int = Field(gt=0)
    first_kernel: int = Field(gt=0)
    activation: Activation


class OuterMlp(Strict):
    hidden: list[int]
    code_size: int = Field(gt=0)
    activation: Activation


class OuterUnet(Strict):
    channels: int = Field(gt=0)
    depth: int = Field(gt=0)
    activation: Activation


class Outer(Strict):
    model: Literal["conv1d", "conv2d", "mlp", "identity", "unet"]
    loss: Literal["mse", "l1", "l1_sc"]
    sc_weight: float = Field(ge=0)
    max_params: int = Field(ge=0)
    device: Device
    batch_size: int = Field(gt=0)
    conv1d: OuterConv1d
    conv2d: OuterConv2d
    mlp: OuterMlp
    unet: OuterUnet
    train: Train


class EncodeAugment(Strict):
    copies: int = Field(ge=0)
    gain_db: float = Field(ge=0)
    shift_seconds: float = Field(ge=0)
    speed: float = Field(ge=0, lt=0.5)
    noise_snr_db: list[float] = Field(max_length=2)


class Encode(Strict):
    batch_size: int = Field(gt=0)
    standardise: Literal["per_dim", "global", "none"]
    augment: EncodeAugment


class Export(Strict):
    register_model: bool


class Inference(Strict):
    silence_db: float = Field(ge=0)
    min_gap_seconds: float = Field(ge=0)
    margin_seconds: float = Field(ge=0)


class Inner(Strict):
    architecture: Literal["conv1d", "mlp", "conv2d"]
    conv_filters: list[int]
    latent: Literal["sequence", "global"]
    latent_channels: int = Field(gt=0)
    blocks: int = Field(ge=0)
    latent_dim: int = Field(gt=0)
    hidden: list[int]
    beta: float = Field(ge=0)
    kl_warmup_epochs: int = Field(ge=0)
    free_bits: float = Field(ge=0)
    prior: Literal["normal", "mixture", "class_mixture"]
    mixture_components: int = Field(gt=0)
    conditional: bool
    note_inputs: Literal["auto", "off"]
    class_sampling: Literal["kde", "full", "diagonal", "prior"]
    class_sampling_rank: int = Field(ge=0)
    reconstruction: Literal["mse", "bce"]
    reconstruction_reduction: Literal["sum", "mean"]
    reconstruction_weight: float = Field(gt=0)
    max_params: int = Field(ge=0)
    device: Device
    batch_size: int = Field(gt=0)
    train: Train


class Prior(Strict):
    family: Literal["gmm", "kde"]
    components: int = Field(gt=0)
    min_per_component: int = Field(gt=0)
    pca_dims: int = Field(gt=0)
    covariance: Literal["full", "diag"]
    reg_covar: float = Field(gt=0)
    n_init: int = Field(gt=0)
    temperature: float = Field(ge=0)
    kde_spread: float = Field(ge=0)


class StftCfg(Strict):
    n_fft: int = Field(gt=1)
    hop_length: int = Field(gt=0)


class MfccSegmentsCfg(StftCfg):
    n_mfcc: int = Field(gt=0)
    segments: int = Field(gt=0)


class ClassifierCfg(StftCfg):
    n_mels: int = Field(gt=0)
    pca_components: int = Field(gt=0)
    whiten: bool
    svm_c: float = Field(gt=0)
    noise_snr_db: list[float]


class CheckClassifierCfg(MfccSegmentsCfg):
    c: float = Field(gt=0)
    noise_snr_db: list[float]


class CleanClassifierCfg(MfccSegmentsCfg):
    pca_components: int = Field(gt=0)
    svm_c: float = Field(gt=0)


class QualityCfg(Strict):
    speech: Literal["auto"] | bool
    pesq_wideband: bool
    dnsmos_clips: int = Field(ge=0)


class NoveltyCfg(Strict):
    coverage_k: int = Field(gt=0)
    ndb_bins: int = Field(gt=1)
    kid_blocks: int = Field(gt=0)


class PitchCfg(Strict):
    enabled: Literal["auto"] | bool  # auto: for music (quality.speech resolves to false)
    fmin: float = Field(gt=0)
    fmax: float = Field(gt=0)
    frame_length: int = Field(gt=0)
    min_voiced: float = Field(ge=0, le=1)
    voiced_probability: float = Field(ge=0, le=1)


class UncertaintyCfg(Strict):
    resamples: int = Field(ge=0)
    level: float = Field(gt=0, lt=1)


class Evaluate(Strict):
    examples_per_class: int = Field(ge=0)
    generated_per_class: int = Field(gt=0)
    wav_generated_per_class: int = Field(ge=0)
    generate_spread: Literal["auto"] | Annotated[float, Field(ge=0)]
    novelty: NoveltyCfg
    perturb_db: float = Field(ge=0)
    tsne_perplexity: float = Field(gt=0)
    interpolation_steps: int = Field(ge=2)
    probe_dims: int = Field(ge=0)
    probe_steps: int = Field(ge=2)
    speed_max_batches: int = Field(ge=0)
    quality: QualityCfg
    clean_classifier: CleanClassifierCfg
    classifier: ClassifierCfg
    check_classifier: CheckClassifierCfg
    uncertainty: UncertaintyCfg
    pitch: PitchCfg


class SpaceEntry(Strict):
    type: Literal["int", "float", "categorical"]
    low: int | float | None = None    # an int stays an int (suggest_int's bounds)
    high: int | float | None = None
    step: int | float | None = None
    log: bool | None = None
    choices: list[Any] | None = None
    grid: list[Any] | None = None   # the values the grid sampler tries for an int or float


class TuneTarget(Strict):
    trials: int = Field(gt=0)
    epochs: int | None = Field(default=None, gt=0)  # None: the target has no epochs (the prior's EM)
    objectives: list[Literal["val_loss", "full_path", "generated_accuracy", "val_loglik", "novelty_gap"]] = Field(
        min_length=1, max_length=2)
    space: dict[str, SpaceEntry]


class TuneValidation(Strict):
    clips: int = Field(ge=0)
    generated_per_label: int = Field(gt=0)


class Tune(Strict):
    storage: str
    study_suffix: str
    sampler: Literal["tpe", "grid", "random"]
    n_startup_trials: int = Field(ge=0)
    pruner: Literal["median", "hyperband", "ratio", "none"]
    pruner_ratio: float = Field(gt=0)
    pruner_startup_trials: int = Field(ge=0)
    pruner_warmup_epochs: int = Field(ge=0)
    heartbeat_seconds: int = Field(ge=0)
    grace_seconds: int = Field(ge=1)
    max_retries: int = Field(ge=0)
    storage_retry_seconds: float = Field(ge=0)
    threads_per_worker: int = Field(ge=0)
    validation: TuneValidation
    outer: TuneTarget
    inner: TuneTarget
    prior: TuneTarget


class Retrain(Strict):
    primary_metric: str
    mode: Literal["max", "min"]
    min_margin: float = Field(ge=0)
    required_metrics: list[str]


class Params(Strict):
    seed: int
    preset: str
    tracking: Tracking
    data: Data
    filter: Filter
    features: Features
    outer: Outer
    encode: Encode
    inner: Inner
    prior: Prior
    evaluate: Evaluate
    export: Export
    inference: Inference
    tune: Tune
    retrain: Retrain
    presets: dict[str, dict[str, Any]]


class TrainedEvaluate(BaseModel):
    generate_spread: Literal["auto"] | Annotated[float, Field(ge=0)]


class TrainedPrior(BaseModel):
    family: Literal["gmm", "kde"]
    temperature: float = Field(ge=0)
    kde_spread: float = Field(ge=0)


def generation_spread(spread: Literal["auto"] | float, prior: Prior | TrainedPrior | None, learned: bool) -> float:
    """The spread a model generates at: a number as given; ``auto``, its sampler's own: the learned
    prior's ``temperature`` (``learned``: the model has one), else ``kde_spread`` around training
    latents."""
    if spread != "auto":
        return float(spread)
    if prior is None:
        raise ValueError("evaluate.generate_spread is auto, but the model records no prior section to say what that is")
    return prior.temperature if learned else prior.kde_spread


class TrainedWith(BaseModel):
    """What a model bundle records of the parameters of the run that made it (``bundle.
    effective_params``, a subset of ``Params``): the settings a trained model is used with. A
    bundle written before a section existed lacks it, so each is optional and other keys pass."""
    evaluate: TrainedEvaluate | None = None
    prior: TrainedPrior | None = None
    inference: Inference | None = None


def _path(loc: tuple) -> str:
    return ".".join(str(part) for part in loc)


def errors_of(exc: ValidationError, prefix: str = "") -> list[str]:
    """One line per problem, each naming the key's dotted path."""
    lines = []
    for err in exc.errors():
        path = prefix + _path(err["loc"])
        if err["type"] == "extra_forbidden":
            lines.append(f"{path}: unknown key (misspelt? see params.yaml for the known ones)")
        elif err["type"] == "missing":
            lines.append(f"{path}: missing")
        else:
            lines.append(f"{path}: {err['msg']} (got {err.get('input')!r})")
    return lines


def _has(params: dict, dotted: str) -> bool:
    node: Any = params
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return not isinstance(node, dict)


def validate(params: dict, where: str = "params.yaml") -> list[str]:
    """Problems with ``params`` (empty when it is valid)."""
    try:
        Params.model_validate(params)
    except ValidationError as exc:
        return [f"{where}: {line}" for line in errors_of(exc)]
    # a tuning space names the keys it varies: each must be a real parameter
    return [f"{where}: tune.{target}.space.{key}: not a parameter in params.yaml"
            for target in ("outer", "inner") for key in params["tune"][target]["space"]
            if not _has(params, key)]


def _name_maps(model: type[BaseModel], at: str) -> list[str]:
    paths = []
    for name, field in model.model_fields.items():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            paths += _name_maps(kind, f"{at}{name}.")
        elif get_origin(kind) is dict:
            value = get_args(kind)[1]
            if not (isinstance(value, type) and issubclass(value, BaseModel)):
                paths.append(f"{at}{name}")
    return paths


@functools.cache
def name_maps() -> frozenset[str]:
    """Dotted paths of the mappings whose keys are names a user chooses and whose values are plain
    (a category map, a folder map): data, which a preset replaces whole rather than merges into."""
    return frozenset(_name_maps(Params, ""))
