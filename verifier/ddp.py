"""Distributed entry point: the ``run`` command under torchrun with DistributedDataParallel.

    python -m torch.distributed.run --standalone --nproc_per_node 8 -m verifier.ddp --n-layer 24 ...
    python -m verifier run --nproc 8 ...        # the same, launched for you

Every rank runs the same training loop (verifier.train.train) on its slice of the global batch;
gradients are averaged by DDP, so the curve matches one process with the same global batch. Rank 0
alone opens the database and writes the run and its points. Backend: NCCL on CUDA, gloo on CPU.
"""

from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist


def main(argv: list[str] | None = None) -> int:
    from verifier.cli import main as cli_main

    argv = list(sys.argv[1:] if argv is None else argv)
    if "RANK" not in os.environ:
        print("error: verifier.ddp must be started by torchrun (python -m torch.distributed.run ...)",
              file=sys.stderr)
        return 2
    wants_cpu = any(a in ("--device=cpu",) for a in argv) or _value(argv, "--device") == "cpu"
    backend = "nccl" if torch.cuda.is_available() and not wants_cpu else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend=backend)
    try:
        return cli_main(["run", *argv])
    finally:
        dist.destroy_process_group()


def _value(argv: list[str], flag: str) -> str | None:
    for i, a in enumerate(argv[:-1]):
        if a == flag:
            return argv[i + 1]
    return None


if __name__ == "__main__":
    sys.exit(main())
