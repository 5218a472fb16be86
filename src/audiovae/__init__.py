"""audiovae: a staged pipeline that learns to reconstruct and generate short sounds.

The pipeline is ``stages/`` (one thin module per DVC stage, in order: ``params`` -> ``download`` ->
``filter`` -> ``features`` -> ``train_outer`` -> ``encode`` -> ``train_inner`` -> ``evaluate`` ->
``export``); the library they call is grouped by job: ``config``, ``data``, ``models``,
``training``, ``evaluation``, ``tracking``, ``inference``. ``cli`` is the ``audiovae`` command.
"""

__version__ = "0.1.0"
