"""DVC stage ``train_inner``: fit the VAE on the cached, standardised outer codes only.

The work is ``audiovae.training.inner.run``; this module only runs it as a stage.
"""
from audiovae.stages import run_stage
from audiovae.training.inner import run


def main() -> None:
    run_stage(run)


if __name__ == "__main__":
    main()
