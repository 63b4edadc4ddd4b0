"""What a run needs in memory on one rank, and the refusal when the device does not have it."""

from __future__ import annotations

import torch

from fits import accounting
from fits.errors import BadInput
from verifier import device as device_mod
from verifier.model import scores_fit
from verifier.runs import RunConfig

BYTES_PER_STATE_PARAM = 16
"""fp32 weight + gradient + AdamW's two moments."""
ACTIVATION_ELEMENTS_PER_LAYER = 18
"""Saved activations per token per layer, in units of d_model (inputs of the LayerNorms, QKV, attention
output and statistics, projection, and the 4·d_model feed-forward input and output)."""


class ModelTooLarge(BadInput):
    """The estimated training memory exceeds what the device has available."""


def estimate_memory(config: RunConfig, vocab_size: int, *, cuda: bool, world_size: int = 1) -> int:
    """Bytes one rank needs: parameters, gradients and AdamW state in fp32, plus the activations of one
    micro-batch (bf16 in a bf16 run, plus its bf16 weight copies; fp32 otherwise) and the fp32 logits with
    their gradient. The precision sets the activation size; on a CPU a bf16 run's attention also keeps its
    score matrices (verifier.model.scores_fit: the softmax output, and the scores while it is taken)."""
    total = accounting.total_params(config.n_layer, config.d_model, vocab_size, config.seq_len,
                                    tie_embeddings=config.tie_embeddings, bias=config.bias)
    micro = config.micro_batch or max(1, config.batch_size // world_size)
    tokens = micro * config.seq_len
    act_bytes = 2 if config.precision == "bf16" else 4
    weight_copies = 2 * total if config.precision == "bf16" else 0
    activations = tokens * config.d_model * (ACTIVATION_ELEMENTS_PER_LAYER * config.n_layer + 4) * act_bytes
    logits = tokens * vocab_size * 4 * 3
    scores = 0
    if config.precision == "bf16" and scores_fit("cuda" if cuda else "cpu", torch.bfloat16, micro, config.n_head,
                                                 config.seq_len):
        scores = 2 * micro * config.n_head * config.seq_len**2 * 2 * config.n_layer
    return total * BYTES_PER_STATE_PARAM + weight_copies + activations + logits + scores


def check_memory(config: RunConfig, vocab_size: int, dev: torch.device, *, world: int, local_world: int) -> None:
    """Raise ModelTooLarge when the run needs more than 90% of what ``dev`` has available."""
    need = estimate_memory(config, vocab_size, cuda=dev.type == "cuda", world_size=world)
    if dev.type == "cpu":
        need *= local_world  # the ranks on this host share its memory
    have = device_mod.available_memory(dev)
    if need > 0.9 * have:
        raise ModelTooLarge(
            f"this run needs about {need / 2**30:.2f} GiB per device (parameters, optimizer state "
            f"and activations) but {dev} has {have / 2**30:.2f} GiB available; use a smaller model or "
            "batch, set --micro-batch, or spread the batch over more devices with torchrun", field="memory")
