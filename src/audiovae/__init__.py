"""audiovae: a staged pipeline that learns to reconstruct and generate short sounds.

Stages, in order (each a module with a ``main()`` that ``dvc.yaml`` calls):
``download`` -> ``filter`` -> ``features`` -> ``train_outer`` -> ``encode`` -> ``train_inner`` -> ``evaluate``.
"""

__version__ = "0.1.0"
