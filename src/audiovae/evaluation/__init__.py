"""Evaluation: quality measures, classifiers, plots, the HTML report and the ``evaluate`` stage."""
