"""DVC stage ``train_outer``: fit the deterministic outer autoencoder on the feature spectrograms.

The work is ``audiovae.training.outer.run``; this module only runs it as a stage.
"""
from audiovae.stages import run_stage
from audiovae.training.outer import run


def main() -> None:
    run_stage(run)


if __name__ == "__main__":
    main()
