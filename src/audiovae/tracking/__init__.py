"""Tracking: MLflow runs, the model registry, the champion gate and the served model."""
