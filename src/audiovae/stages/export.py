"""DVC stage ``export``: the trained model as one file, ``data/export/model.avae``, and in the registry.

The work is ``audiovae.inference.export.run``; this module only runs it as a stage.
"""
from audiovae.inference.export import run
from audiovae.stages import run_stage


def main() -> None:
    run_stage(run)


if __name__ == "__main__":
    main()
