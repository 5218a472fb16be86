"""DVC stage ``filter``: reject unusable files and length outliers, then normalise the rest.

The work is ``audiovae.data.filter.run``; this module only runs it as a stage.
"""
from audiovae.data.filter import run
from audiovae.stages import run_stage


def main() -> None:
    run_stage(run)


if __name__ == "__main__":
    main()
