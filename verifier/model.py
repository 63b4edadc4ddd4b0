"""A GPT decoder in one file (its parameter and FLOP accounting is fits.accounting).

Architecture (GPT-2 style): token + learned position embedding, ``n_layer`` pre-LayerNorm blocks
(``x + attn(ln(x))``, ``x + mlp(ln(x))``) with d_ff = 4·d_model, a final LayerNorm, and an output head.
The head is tied to the token embedding by default (Kaplan's Table 1 lists the de-embedding with no
parameters of its own); ``tie_embeddings=False`` gives it its own matrix. Linear layers and LayerNorms
have no biases by default (as nanoGPT recommends: as good, and on a CPU about 15% faster per step,
because a bias costs a broadcast copy forward and a reduction backward); ``bias=True`` is GPT-2's layout.

Parameter and FLOP accounting (Kaplan's 12·n_layer·d², the exact non-embedding count, embedding and head
tables, FLOPs per token by convention) lives in fits.accounting; ``GPT.num_params`` calls it, and
tests/test_accounting.py checks it against the built module's tensors.

Attention runs through ``xformers.ops.memory_efficient_attention`` with a causal mask when xformers is
importable and the tensors are on CUDA, else through ``torch.nn.functional.scaled_dot_product_attention``,
except in bf16 on a CPU when the score tensor is small (``scores_fit``): there the scores are materialised
(``baddbmm`` with an additive causal mask, softmax, ``bmm``), because PyTorch's flash-attention CPU kernel gains
nothing from bf16 (measured on an AVX512-BF16 CPU: slower than in fp32) while the bf16 batched matmuls run at
the bf16 matmul rate; about twice as fast as SDPA's bf16 path there, fwd + bwd. In fp32 SDPA stays the faster.

The module holds fp32 weights. A bf16 run (``RunConfig.precision``) calls it under autocast (verifier.device):
the linear layers and attention then run in bfloat16, LayerNorm in fp32, and the loss is taken on fp32 logits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from fits import accounting
from fits.errors import BadInput, Unavailable

try:  # optional GPU kernel; the model works without it
    import xformers.ops as xops
except Exception:  # ImportError, or a broken build that fails while loading its extensions
    xops = None

ATTENTION_BACKENDS = ("auto", "sdpa", "xformers")
SCORES_MAX_ELEMENTS = 2**25
"""Largest score tensor (batch·heads·T², 64 MiB in bf16) the CPU bf16 path materialises per layer; longer
contexts or larger micro-batches take SDPA's flash kernel, whose memory does not grow with T²."""


def scores_fit(device_type: str, dtype: torch.dtype, batch: int, n_head: int, seq_len: int) -> bool:
    """Whether "auto" attention materialises the scores (CPU, bf16, a score tensor within SCORES_MAX_ELEMENTS)."""
    return device_type == "cpu" and dtype == torch.bfloat16 and batch * n_head * seq_len**2 <= SCORES_MAX_ELEMENTS


def attention_by_scores(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout_p: float = 0.0) -> torch.Tensor:
    """Causal attention over (b, h, t, hd) tensors with the score matrix written out: one ``baddbmm`` adds the
    mask while it scales (no separate mask or scale pass), softmax in the input dtype (its CPU kernel
    accumulates in fp32), one ``bmm``."""
    b, h, t, hd = q.shape
    mask = torch.full((t, t), float("-inf"), dtype=q.dtype, device=q.device).triu(1)
    scores = torch.baddbmm(mask, q.reshape(b * h, t, hd), k.reshape(b * h, t, hd).transpose(1, 2), alpha=hd**-0.5)
    probs = F.dropout(torch.softmax(scores, dim=-1), dropout_p, training=dropout_p > 0)
    return torch.bmm(probs, v.reshape(b * h, t, hd)).view(b, h, t, hd)


@dataclass(frozen=True)
class GPTConfig:
    n_layer: int
    d_model: int
    n_head: int
    vocab_size: int = 256
    seq_len: int = 256
    tie_embeddings: bool = True
    bias: bool = False
    dropout: float = 0.0
    attention: str = "auto"
    """"auto" (xformers on CUDA when importable, else SDPA), "sdpa", or "xformers"."""

    def __post_init__(self) -> None:
        for name in ("n_layer", "d_model", "n_head", "vocab_size", "seq_len"):
            if getattr(self, name) < 1:
                raise BadInput(f"must be a positive integer, got {getattr(self, name)}", field=name)
        if self.d_model % self.n_head:
            raise BadInput(f"{self.d_model} must be divisible by n_head ({self.n_head})", field="d_model")
        if self.attention not in ATTENTION_BACKENDS:
            raise BadInput(f"must be one of {ATTENTION_BACKENDS}, got {self.attention!r}", field="attention")


def xformers_available() -> bool:
    return xops is not None


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=cfg.bias)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=cfg.bias)
        self.dropout = cfg.dropout
        self.backend = cfg.attention

    def _use_xformers(self, x: torch.Tensor) -> bool:
        if self.backend == "xformers":
            if xops is None or not x.is_cuda:
                raise Unavailable("'xformers' needs xformers installed and CUDA tensors", field="attention")
            return True
        return self.backend == "auto" and xops is not None and x.is_cuda

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_head, d // self.n_head).unbind(2)  # each (b, t, h, hd)
        p = self.dropout if self.training else 0.0
        if self._use_xformers(x):
            y = xops.memory_efficient_attention(q, k, v, attn_bias=xops.LowerTriangularMask(), p=p)
        else:
            q, k, v = (z.transpose(1, 2) for z in (q, k, v))  # SDPA wants (b, h, t, hd)
            if self.backend == "auto" and scores_fit(x.device.type, q.dtype, b, self.n_head, t):
                y = attention_by_scores(q, k, v, p).transpose(1, 2)
            else:
                y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True).transpose(1, 2)
        return F.dropout(self.proj(y.reshape(b, t, d)), p, self.training)


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(cfg.d_model, 4 * cfg.d_model, bias=cfg.bias)
        self.proj = nn.Linear(4 * cfg.d_model, cfg.d_model, bias=cfg.bias)
        self.dropout = cfg.dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # exact (erf) GELU: on CPU about 4x faster than the tanh approximation, and the same on GPU
        return F.dropout(self.proj(F.gelu(self.fc(x))), self.dropout, self.training)


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model, bias=cfg.bias)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos_emb = nn.Embedding(cfg.seq_len, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model, bias=cfg.bias)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.head.weight = self.tok_emb.weight
        self.apply(self._init_weights)
        # GPT-2: scale the residual-branch output projections by 1/sqrt(2·n_layer) so the residual
        # stream's variance does not grow with depth.
        for name, p in self.named_parameters():
            if name.endswith("proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def embedding_parameters(self) -> list[nn.Parameter]:
        params = [self.tok_emb.weight, self.pos_emb.weight]
        if not self.cfg.tie_embeddings:
            params.append(self.head.weight)
        return params

    def num_params(self, *, non_embedding: bool = True) -> int:
        """The non-embedding (or, ``non_embedding=False``, total) parameter count, from fits.accounting."""
        c = self.cfg
        counts = accounting.param_counts(c.n_layer, c.d_model, c.vocab_size, c.seq_len,
                                         tie_embeddings=c.tie_embeddings, bias=c.bias)
        return counts.non_embedding if non_embedding else counts.total

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        """Logits (b, t, vocab); with targets, (logits, mean cross-entropy in nats)."""
        t = idx.shape[1]
        if t > self.cfg.seq_len:
            raise BadInput(f"sequence length {t} exceeds the model's seq_len {self.cfg.seq_len}", field="seq_len")
        pos = torch.arange(t, device=idx.device)
        x = F.dropout(self.tok_emb(idx) + self.pos_emb(pos), self.cfg.dropout, self.training)
        for block in self.blocks:
            x = block(x)
        logits = self.head(self.ln_f(x))
        if targets is None:
            return logits
        loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss
