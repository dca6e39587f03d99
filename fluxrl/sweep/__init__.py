"""Sweeps: every combination of swept config values, trained and tabulated; locally or on a Ray cluster.

A sweep's values split in two (`plan.py`): those of fields the config declares traced (`traced.py`: learning
rates, coefficients, lambda, alpha) become a hyperparameter axis of one run, trained next to the seeds by one
compiled program (`fluxrl.core.hyper`); every other value (a loss, a size, an environment) makes a separate
trial, each one fluxrl run in its own directory. An executor (`executors.py`) runs the trials: one after another
in this process, or as Ray tasks; nothing outside this package imports Ray. `driver.py` runs a planned sweep,
resumes a killed one, and writes sweep.csv, one figure per metric and the report of failed trials (`report.py`).
"""
