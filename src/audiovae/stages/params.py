"""DVC stage ``params``: write the effective parameters each stage reads, preset applied, one file a stage.

The work is ``audiovae.config.stage_params.run``; this module only runs it as a stage.
"""
from audiovae.config.stage_params import run
from audiovae.stages import run_stage


def main() -> None:
    run_stage(run)


if __name__ == "__main__":
    main()
