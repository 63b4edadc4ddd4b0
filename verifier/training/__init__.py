"""The training loop of ``verifier.train.train``, split by concern.

* ``config``: ``make_config``, a RunConfig with the derived values (shape, length, learning rate, warm-up).
* ``memory``: what a run needs in memory, checked against what the device has.
* ``checkpoints``: the run's checkpoint directory, its lock, and atomic save / restore.
* ``distributed``: rank and world, rank-0-first calls, all-reduce (a no-op on one process).
* ``build``: the model, the optimizer, and the DDP / torch.compile wrapping of the step.
* ``progress``: the progress bar or log lines.
* ``loop``: the optimizer steps, evaluations and the curve written to the store.
"""
