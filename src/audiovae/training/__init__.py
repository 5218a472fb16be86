"""Training: the shared loop, the outer and inner models' stages, the ``encode`` pass between
them, and Optuna tuning."""
