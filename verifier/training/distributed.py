"""Helpers for the same loop on every rank under torch.distributed; on one process each is a no-op."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


def rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def main_first(fn: Callable[[], T], rank: int, world: int) -> T | None:
    """Run ``fn`` on rank 0 and hand its (small, picklable) result to every rank; an error on rank 0
    is raised on every rank, so none waits forever in a collective that rank 0 never reaches."""
    result, error = None, None
    if rank == 0:
        try:
            result = fn()
        except BaseException as exc:
            error = exc
    if world > 1:
        box = [(result, None if error is None else (isinstance(error, ValueError), str(error)))]
        dist.broadcast_object_list(box, src=0)
        result, failure = box[0]
        if rank != 0 and failure is not None:
            bad_input, message = failure
            raise (ValueError if bad_input else RuntimeError)(f"rank 0: {message}")
    if error is not None:
        raise error
    return result


def all_reduce_sum(t: torch.Tensor, world: int) -> torch.Tensor:
    if world > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_reduce_min(t: torch.Tensor, world: int) -> torch.Tensor:
    if world > 1:
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return t


def barrier(world: int) -> None:
    if world > 1:
        dist.barrier()
