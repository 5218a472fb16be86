"""Data in: sources and their archives, splits, audio files, spectrograms, augmentation, and the
work of the ``download``, ``filter`` and ``features`` stages."""
