"""Optuna tuning in parts, each with one job: ``search`` (space, sampler, pruner, objectives),
``storage`` (the shared study), ``objective`` (one trial), ``workers`` (who runs the trials) and
``report`` (what a study leaves). ``audiovae.training.tune`` puts them together."""
