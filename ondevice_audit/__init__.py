"""ondevice-audit: measure reliability bias of on-device ML models across groups of people.

Pipeline, one package per stage: data -> frontend -> model/optimize -> export -> runtimes/targets
-> metrics -> report/gate. ``audit.py`` ties the stages together; ``cli`` is a thin shell over it.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
