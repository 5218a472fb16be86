"""Build the configured models from their params.yaml sections, refusing those above their
parameter cap (the seed's lesson: tuning drifts to huge models)."""
from __future__ import annotations

from typing import Any

from audiovae.config.params import ParamsError
from audiovae.config.schema import Inner, Outer

from .inner import VAE
from .outer import build_outer, count_params


def outer_hyper(cfg: Outer) -> dict:
    """The chosen outer model's own section (``outer.<model>``) as keyword arguments."""
    if cfg.model == "identity":
        return {}
    return getattr(cfg, cfg.model).model_dump()


def build_checked(cfg: Outer, n_bins: int, n_frames: int):
    """Build the configured outer model, refusing one above the parameter cap."""
    model = build_outer(cfg.model, n_bins, n_frames, **outer_hyper(cfg))
    n = count_params(model)
    if cfg.max_params and n > cfg.max_params:
        raise ParamsError(f"outer model has {n:,} parameters, above outer.max_params = {cfg.max_params:,}")
    return model


def build_vae(cfg: Inner, input_dim: int, n_classes: int, code_shape=(), note_pitches=None) -> VAE:
    """The inner VAE of the ``inner`` section for codes of ``code_shape`` and ``n_classes`` labels;
    ``note_pitches`` [low, high]: pitch and velocity are inputs (the data's notes span that range)."""
    hyper: dict[str, Any] = {"input_dim": input_dim, "architecture": cfg.architecture, "code_shape": list(code_shape),
             "conv_filters": list(cfg.conv_filters), "latent_dim": cfg.latent_dim,
             "hidden": tuple(cfg.hidden), "prior": cfg.prior, "mixture_components": cfg.mixture_components,
             "n_classes": n_classes, "conditional": cfg.conditional, "reconstruction": cfg.reconstruction,
             "latent": cfg.latent, "latent_channels": cfg.latent_channels, "blocks": cfg.blocks,
             "note_pitches": list(note_pitches) if note_pitches else None}
    model = VAE(**hyper)
    if cfg.max_params and count_params(model) > cfg.max_params:
        raise ParamsError(f"inner VAE has {count_params(model):,} parameters, "
                          f"above inner.max_params = {cfg.max_params:,}")
    model.hyper = hyper
    return model
