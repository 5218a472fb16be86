"""Inference: the exported bundle, the ``export`` stage, and ``AudioVAE`` (reconstruct and
generate), re-exported here as the package's public entry point."""
from audiovae.inference.model import AudioVAE

__all__ = ["AudioVAE"]
