"""DVC stage ``download``: fetch each enabled source, verify it, extract its audio, describe every file.

The work is ``audiovae.data.download.run``; this module only runs it as a stage.
"""
from audiovae.data.download import run
from audiovae.stages import run_stage


def main() -> None:
    run_stage(run)


if __name__ == "__main__":
    main()
