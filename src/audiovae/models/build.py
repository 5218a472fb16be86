"""Build the configured models from their params.yaml sections, refusing those above their
parameter cap (the seed's lesson: tuning drifts to huge models)."""
from __future__ import annotations

from audiovae.config.params import ParamsError
from .inner import VAE
from .outer import build_outer, count_params


def outer_hyper(cfg: dict) -> dict:
    kind = cfg["model"]
    if kind == "identity":
        return {}
    return dict(cfg[kind])


def build_checked(cfg: dict, n_bins: int, n_frames: int):
    """Build the configured outer model, refusing one above the parameter cap."""
    model = build_outer(cfg["model"], n_bins, n_frames, **outer_hyper(cfg))
    n = count_params(model)
    if cfg["max_params"] and n > int(cfg["max_params"]):
        raise ParamsError(f"outer model has {n:,} parameters, above outer.max_params = {int(cfg['max_params']):,}")
    return model


def build_vae(cfg: dict, input_dim: int, n_classes: int, code_shape=()) -> VAE:
    """The inner VAE of the ``inner`` section for codes of ``code_shape`` and ``n_classes`` labels."""
    hyper = {"input_dim": input_dim, "architecture": cfg["architecture"], "code_shape": list(code_shape),
             "conv_filters": list(cfg["conv_filters"]), "latent_dim": int(cfg["latent_dim"]),
             "hidden": tuple(cfg["hidden"]), "prior": cfg["prior"], "mixture_components": int(cfg["mixture_components"]),
             "n_classes": n_classes, "conditional": bool(cfg["conditional"]), "reconstruction": cfg["reconstruction"],
             "latent": cfg["latent"], "latent_channels": int(cfg["latent_channels"]), "blocks": int(cfg["blocks"])}
    model = VAE(**hyper)
    if cfg["max_params"] and count_params(model) > int(cfg["max_params"]):
        raise ParamsError(f"inner VAE has {count_params(model):,} parameters, "
                          f"above inner.max_params = {int(cfg['max_params']):,}")
    model.hyper = hyper
    return model
