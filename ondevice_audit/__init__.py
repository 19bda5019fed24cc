"""ondevice-audit: measure reliability bias of on-device ML models across groups of people.

Pipeline, one package per stage: data -> frontend -> model/optimize -> export -> runtimes/targets
-> metrics -> report/gate, and ``sweep`` runs the whole chain per cell of a design matrix. ``audit.py`` and
``train.py`` are the jobs that tie the stages together; ``tasks.py`` decides what a model's outputs mean,
``model_io.py`` how a model is read, ``targets/runs.py`` is the one path that runs a model over a dataset, and
``cli`` is a thin shell over all of it. ``docs/architecture.md`` draws the data flow.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
