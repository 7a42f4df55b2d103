"""The harness room: training regimes under Accelerate, explanation evaluation, presets.

Python API: ``train(...)`` (``cambench_qr.harness.train``), ``evaluate(...)``
(``cambench_qr.harness.evaluate``), ``PRESETS`` (``cambench_qr.harness.presets``). Command line:
``cambench-qr train|evaluate`` or ``accelerate launch -m cambench_qr.harness.train|evaluate``.
"""
