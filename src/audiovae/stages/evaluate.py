"""DVC stage ``evaluate``: the numbers a user can trust, on the test split, plus plots and audio.

The work is ``audiovae.evaluation.evaluate.run``; this module only runs it as a stage.
"""
from audiovae.evaluation.evaluate import run
from audiovae.stages import run_stage


def main() -> None:
    run_stage(run)


if __name__ == "__main__":
    main()
