"""Why a compressed variant serves one group worse, per layer, and the smallest change that fixes it.

``job.explain_variant`` runs one ``Explainer`` (``interface.py``): ``quantization.py`` drives TensorFlow Lite's
quantization debugger and selective quantization; ``pruning.py`` compares pruned layers with their dense
selves. ``ranking.py`` turns per-speaker layer errors into per-group numbers with a speaker-bootstrap interval;
``comparison.py`` audits base, variant and candidates on the same clips; ``document.py`` and ``render.py`` make
the report. Nothing is imported here, so ``explain --help`` loads no numerical stack.
"""
