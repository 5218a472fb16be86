"""DVC stage ``features``: batched STFT of the filtered audio into one memory-mapped array.

The work is ``audiovae.data.features.run``; this module only runs it as a stage.
"""
from audiovae.data.features import run
from audiovae.stages import run_stage


def main() -> None:
    run_stage(run)


if __name__ == "__main__":
    main()
