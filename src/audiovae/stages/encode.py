"""DVC stage ``encode``: run the frozen outer encoder over every split once and cache the codes.

The work is ``audiovae.training.encode.run``; this module only runs it as a stage.
"""
from audiovae.stages import run_stage
from audiovae.training.encode import run


def main() -> None:
    run_stage(run)


if __name__ == "__main__":
    main()
