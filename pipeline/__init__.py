"""Orchestration: Prefect flows over the DVC stages (repro, tune, retrain)."""
