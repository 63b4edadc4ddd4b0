"""A check of a plan's predictions with small proxy runs on a corpus, then a refit of the corpus's scope.

* ``records``: the stored ``Check`` and its ``CheckItem``s, ``CheckSummary`` and ``Exponents`` (no training code).
* ``items``: the comparison items (curve, final loss, early stop, allocation, extrapolation) and the predictions
  they compare with.
* ``ladder``: the proxy ladder: shapes, ``ProxySpec`` (a RunConfig with a role and a budget), the throughput
  model, and sizing a ladder to a time budget.
* ``session``: the ``Session`` a check and a calibration share (database, executor, measured throughput, corpus,
  rules) and ``open_session``.
* ``calibrate``: the calibration ladder with its refit.
* ``orchestrate``: ``run_check``, the phases of a check.
* ``picture``: the check's figure.
* ``cli``: ``python -m verifier check`` and ``python -m verifier calibrate``.
"""
