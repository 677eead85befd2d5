"""Evaluation: the paper's k-fold protocol, metrics, reports, plots and baselines."""
