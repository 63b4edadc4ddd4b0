"""Parameter and FLOP accounting of the project's GPT: the one place that counts either.

The architecture (verifier.model): token embedding (vocab_size·d) and learned position embedding (seq_len·d);
``n_layer`` pre-LayerNorm blocks of attention (QKV 3·d², output projection d²) and an MLP with d_ff = 4·d
(8·d²); a final LayerNorm; an output head tied to the token embedding by default (no parameters of its own)
or, untied, a vocab_size·d matrix of its own. No biases by default; ``bias=True`` is GPT-2's layout (a bias
on every Linear and LayerNorm, never on the head).

Parameter counts::

    Kaplan's N (eq. 2.1)   12·n_layer·d²                            the weight matrices only
    non-embedding          12·n_layer·d² + 2·n_layer·d + d          LayerNorm gains (bias=False)
                           12·n_layer·d² + 13·n_layer·d + 2·d       with every bias (bias=True)
    embedding              (vocab_size + seq_len)·d                 token and position tables
    head                   vocab_size·d untied, 0 tied              the output layer's own matrix
    total                  non-embedding + embedding + head         = sum(p.numel()) of the built model

Grouped-query attention (``n_kv_head`` < ``n_head``): the K and V projections are d·(d·n_kv_head/n_head) each, so a
layer's matrices are (10 + 2·n_kv_head/n_head)·d² instead of 12·d². A vocabulary padded for the matmuls
(``padded_vocab``: up to a multiple of 128) counts its padded rows: they are parameters of the built model.

FLOPs per training token (forward + backward = 3 × forward; one multiply-add = 2 FLOPs) under a named
convention, of a parameter count N the caller chooses (see ``FlopConvention``)::

    "6N"       6·N                                  Kaplan's C and Hoffmann's C = 6·N·D: no attention term
    "kaplan"   6·N + 6·n_layer·seq_len·d            Kaplan Table 1: C_forward = 2N + 2·n_layer·n_ctx·d_attn,
                                                    the causal mask halving the score/mix matmuls
    "palm"     6·N + 12·n_layer·seq_len·d           PaLM App. B / nanoGPT estimate_mfu: the full square of
                                                    scores, the usual MFU convention

each optionally with the output head's de-embedding matmul, 6·d·vocab_size (``vocab_size=`` given). Add the
head only to a count that leaves it out: a total count already holds the vocab_size·d table (tied or not),
so 6·N_total pays for the head (and, in the position table, for a little that is no matmul).

Which N a law's published coefficients count, and which FLOP convention they were fitted with, is a property
of the law family: its ``conventions`` (fits.laws.base.Conventions); ``params_count_of`` reads the former.
numpy at most (no torch), and numpy only when a count is computed: the request and plan structs import
this module's names, and the API client imports those without numpy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

from fits.errors import BadInput

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

FloatOrArray = Any
"""A float for scalar input, a numpy array otherwise."""

FlopConvention = Literal["6N", "kaplan", "palm"]
"""How training FLOPs per token are counted from a parameter count N (see CONVENTION_TEXT)."""
CONVENTIONS: tuple[FlopConvention, ...] = get_args(FlopConvention)
CONVENTION_TEXT: dict[str, str] = {
    "6N": "6·N FLOPs per token (2 per multiply-add forward, twice that backward), no attention term",
    "kaplan": "6·N + 6·n_layer·seq_len·d_model FLOPs per token (Kaplan et al. 2020 Table 1: the causal "
    "attention scores and mix, 2·n_layer·n_ctx·d_attn forward, times 3)",
    "palm": "6·N + 12·n_layer·seq_len·d_model FLOPs per token (PaLM App. B, nanoGPT estimate_mfu: the full "
    "square of attention scores, the usual MFU convention)",
}
ATTENTION_FACTOR: dict[str, float] = {"6N": 0.0, "kaplan": 6.0, "palm": 12.0}
"""FLOPs per token per n_layer·seq_len·d_model of attention score/mix work, by convention."""

ParamsCount = Literal["total", "non_embedding"]
"""Which parameters an N counts: all of them, or all but the embedding and (untied) head tables."""



def params_count_of(counts: str) -> ParamsCount:
    """The ParamsCount a law family states in its conventions (fits.laws.base.Conventions.params: "total" for
    Hoffmann et al. and Epoch, "non-embedding" for Kaplan et al.)."""
    key = counts.replace("-", "_")
    if key not in ("total", "non_embedding"):
        raise BadInput(f"a law counts 'total' or 'non-embedding' parameters, got {counts!r}", field="params")
    return key  # type: ignore[return-value]


def law_params(counts: str, non_embedding: float | None, total: float | None) -> float | None:
    """The N of one model as a law counting ``counts`` (its Conventions.params) sees it: the total count for a
    "total" law when it is known, else the non-embedding count."""
    if params_count_of(counts) == "total" and total is not None:
        return float(total)
    return None if non_embedding is None else float(non_embedding)


def law_params_column(counts: str, non_embedding: Sequence[float | None],
                      total: Sequence[float | None]) -> list[float | None]:
    """The N of several models as a law counting ``counts`` sees them, one convention for all: totals for a
    "total" law when every model has one (runs ingested from elsewhere may lack it), else non-embedding
    counts. Mixing the two in one fit would bend its exponent."""
    if params_count_of(counts) == "total" and len(total) == len(non_embedding) and all(
            t is not None for t in total):
        return [float(t) for t in total]  # type: ignore[arg-type]
    return [None if n is None else float(n) for n in non_embedding]


def _a(x: npt.ArrayLike) -> np.ndarray:
    import numpy as np  # here, not at the top: the request and plan structs import this module's names

    return np.asarray(x, dtype=float)


def _out(x: np.ndarray) -> FloatOrArray:
    return float(x) if x.ndim == 0 else x


# ------------------------------------------------------------------------------------------ parameters


VOCAB_MULTIPLE = 128


def padded_vocab(vocab_size: int, multiple: int = VOCAB_MULTIPLE) -> int:
    """The vocabulary rounded up to a multiple of 128 (tensor-core tiles; Megatron's make-vocab-size-divisible-by)."""
    return -(-int(vocab_size) // multiple) * multiple


def _kv_width(attn, n_head, n_kv_head):
    if n_head is None or n_kv_head is None or n_kv_head == n_head:
        return attn
    return attn * n_kv_head // n_head


def kaplan_params(n_layer, d_model, d_ff=None, d_attn=None, *, n_head=None, n_kv_head=None):
    """Kaplan's N ≈ 2·d_model·n_layer·(2·d_attn + d_ff) (eq. 2.1: weight matrices only), which is
    12·n_layer·d_model² for the standard shape d_attn = d_ff/4 = d_model (the default). With grouped-query
    attention (``n_kv_head`` of ``n_head`` heads) K and V are d_attn·n_kv_head/n_head wide.

    Exact int for int arguments, else float or array."""
    if d_ff is None and d_attn is None and (n_kv_head is None or n_kv_head == n_head):
        return 12 * n_layer * d_model**2
    ff = 4 * d_model if d_ff is None else d_ff
    attn = d_model if d_attn is None else d_attn
    kv = _kv_width(attn, n_head, n_kv_head)
    return 2 * d_model * n_layer * (attn + kv + ff)


def non_embedding_params(n_layer, d_model, *, bias: bool = False, n_head=None, n_kv_head=None):
    """Every parameter but the embedding tables and the untied head: 12·L·d² (GQA: kaplan_params) plus LayerNorm
    gains (2·L·d + d), and with ``bias`` every Linear and LayerNorm bias (13·L·d + 2·d in all for full attention)."""
    matrices = kaplan_params(n_layer, d_model, n_head=n_head, n_kv_head=n_kv_head)
    if bias:
        kv = _kv_width(d_model, n_head, n_kv_head)
        return matrices + n_layer * (11 * d_model + 2 * kv) + 2 * d_model
    return matrices + 2 * n_layer * d_model + d_model


def head_params(vocab_size, d_model, *, tie_embeddings: bool = True):
    """The output head's own parameters: none when tied to the token embedding, vocab_size·d_model untied."""
    return 0 * vocab_size * d_model if tie_embeddings else vocab_size * d_model


def embedding_params(vocab_size, seq_len, d_model, *, tie_embeddings: bool = True):
    """Vocabulary-sized and position tables: token + position embedding, plus the head when untied."""
    return (vocab_size * (1 if tie_embeddings else 2) + seq_len) * d_model


def total_params(n_layer, d_model, vocab_size, seq_len, *, tie_embeddings: bool = True, bias: bool = False,
                 n_head=None, n_kv_head=None):
    """Every parameter of the built model, sum(p.numel()) (a tied head is one tensor and counts once)."""
    return non_embedding_params(n_layer, d_model, bias=bias, n_head=n_head, n_kv_head=n_kv_head) + embedding_params(
        vocab_size, seq_len, d_model, tie_embeddings=tie_embeddings
    )


@dataclass(frozen=True)
class ParamCounts:
    """One shape's parameters, counted every way the project uses."""

    kaplan: int
    """12·n_layer·d_model² (Kaplan eq. 2.1)."""
    non_embedding: int
    embedding: int
    """Token + position tables (not the head)."""
    head: int
    """The untied head's own matrix (0 when tied)."""
    total: int

    def count(self, which: ParamsCount) -> int:
        return self.total if which == "total" else self.non_embedding


def param_counts(n_layer: int, d_model: int, vocab_size: int, seq_len: int, *, tie_embeddings: bool = True,
                 bias: bool = False) -> ParamCounts:
    """All counts of one GPT shape (exact ints)."""
    head = head_params(vocab_size, d_model, tie_embeddings=tie_embeddings)
    embedding = embedding_params(vocab_size, seq_len, d_model, tie_embeddings=True)
    non_embedding = non_embedding_params(n_layer, d_model, bias=bias)
    return ParamCounts(kaplan=kaplan_params(n_layer, d_model), non_embedding=non_embedding, embedding=embedding,
                       head=head, total=non_embedding + embedding + head)


def count_params(which: ParamsCount, n_layer, d_model, vocab_size, seq_len, *, tie_embeddings: bool = True,
                 bias: bool = False):
    """The ``which`` count of a shape (vectorised over n_layer and d_model)."""
    if which == "total":
        return total_params(n_layer, d_model, vocab_size, seq_len, tie_embeddings=tie_embeddings, bias=bias)
    if which == "non_embedding":
        return non_embedding_params(n_layer, d_model, bias=bias)
    raise BadInput(f"params count must be 'total' or 'non_embedding', got {which!r}", field="params")


# ------------------------------------------------------------------------------------------ FLOPs


def check_convention(convention: str) -> FlopConvention:
    if convention not in ATTENTION_FACTOR:
        raise BadInput(f"FLOP convention must be one of {', '.join(CONVENTIONS)}, got {convention!r}",
                       field="flops_convention")
    return convention  # type: ignore[return-value]


def attention_flops_per_token(n_layer: npt.ArrayLike, d_model: npt.ArrayLike, seq_len: npt.ArrayLike,
                              convention: FlopConvention = "kaplan") -> FloatOrArray:
    """Training FLOPs per token of the attention scores and mix (QKᵀ and A·V) under ``convention``:
    0 ("6N"), 6·n_layer·seq_len·d ("kaplan", causal), 12·n_layer·seq_len·d ("palm", the full square)."""
    factor = ATTENTION_FACTOR[check_convention(convention)]
    return _out(factor * _a(n_layer) * _a(seq_len) * _a(d_model))


def head_flops_per_token(d_model: npt.ArrayLike, vocab_size: npt.ArrayLike) -> FloatOrArray:
    """Training FLOPs per token of the output head (de-embedding) matmul: 6·d_model·vocab_size."""
    return _out(6.0 * _a(d_model) * _a(vocab_size))


def flops_per_token(params: npt.ArrayLike, n_layer: npt.ArrayLike, d_model: npt.ArrayLike,
                    seq_len: npt.ArrayLike, convention: FlopConvention = "6N", *,
                    vocab_size: npt.ArrayLike | None = None) -> FloatOrArray:
    """Training FLOPs per token of a model of ``params`` parameters: 6·N plus the convention's attention term,
    plus the head's 6·d_model·vocab_size when ``vocab_size`` is given (only for an N that leaves it out)."""
    out = 6.0 * _a(params) + ATTENTION_FACTOR[check_convention(convention)] * _a(n_layer) * _a(seq_len) * _a(d_model)
    if vocab_size is not None:
        out = out + 6.0 * _a(d_model) * _a(vocab_size)
    return _out(out)


def shape_flops_per_token(n_layer: npt.ArrayLike, d_model: npt.ArrayLike, seq_len: npt.ArrayLike,
                          convention: FlopConvention = "kaplan", *, vocab_size: npt.ArrayLike | None = None,
                          exact: bool = False) -> FloatOrArray:
    """FLOPs per token of a shape, N being Kaplan's 12·n_layer·d_model² (or, ``exact``, the exact bias-free
    non-embedding count, LayerNorm gains included), plus the head when ``vocab_size`` is given."""
    layers, width = _a(n_layer), _a(d_model)
    n = non_embedding_params(layers, width) if exact else kaplan_params(layers, width)
    return flops_per_token(n, layers, width, seq_len, convention, vocab_size=vocab_size)


def describe(convention: FlopConvention, params: ParamsCount, *, head: bool | None = None) -> str:
    """One line stating a count: the convention's formula, which N, and whether the head's FLOPs are added
    (by default as law_flops_per_token adds them)."""
    if head is None:
        head = convention == "palm" and params == "non_embedding"
    which = "all parameters" if params == "total" else "non-embedding parameters"
    text = f"{CONVENTION_TEXT[check_convention(convention)]}, N = {which}"
    if head:
        text += ", plus the output layer's 6·d_model·vocab"
    elif params == "total":
        text += " (the embedding table's count stands in for the output layer's 6·d_model·vocab)"
    else:
        text += ", no output-layer term"
    return text


def law_flops_per_token(params: npt.ArrayLike, n_layer: npt.ArrayLike, d_model: npt.ArrayLike,
                        seq_len: npt.ArrayLike, vocab_size: npt.ArrayLike, convention: FlopConvention,
                        counts: ParamsCount) -> FloatOrArray:
    """FLOPs per training token of a model whose law counts ``params`` as ``counts``, under ``convention``.

    The output head's 6·d_model·vocab is added under "palm" to a non-embedding N only: PaLM's and nanoGPT's N
    hold the (tied) output matrix, Kaplan's C ("6N", "kaplan") leaves the de-embedding out, and a total N
    holds the head's table already (adding it again would count it twice).
    """
    head = check_convention(convention) == "palm" and counts == "non_embedding"
    return flops_per_token(params, n_layer, d_model, seq_len, convention, vocab_size=vocab_size if head else None)


# ------------------------------------------------------------------------------------------ mixture of experts
#
# A MoE block keeps the attention (4·d² of Q, K, V and output projections) and replaces the dense FFN
# (d_ff = 4·d, 8·d² parameters) with ``experts`` routed experts and ``shared_experts`` always-on ones, each a
# two-matrix FFN of width expert_d_ff = d_ff / granularity (Krajewski et al. 2024's G), and a router (a d ×
# experts matrix, no bias). A token uses the attention, ``top_k`` routed experts, every shared expert and the
# router: those are its active parameters, which its FLOPs follow; memory holds them all.
#
#     expert (one)       2·d·expert_d_ff
#     routed             experts·expert per layer           shared   shared_experts·expert per layer
#     router             d·experts per layer                norms    2·L·d + d (LayerNorm gains)
#     total non-emb.     attention + routed + shared + router + norms
#     active non-emb.    attention + (top_k + shared_experts)·expert + router + norms
#     expansion rate     experts / granularity = routed / (one dense FFN) per layer (Krajewski et al.'s E)


@dataclass(frozen=True)
class MoeCounts:
    """One MoE shape's parameters: total (memory) and active per token (FLOPs), by part (exact ints)."""

    experts: int
    top_k: int
    shared_experts: int
    granularity: float
    expert_d_ff: int
    """Hidden width of one expert: round(4·d_model / granularity)."""
    attention: int
    expert: int
    """Parameters of one expert (2·d_model·expert_d_ff)."""
    routed: int
    """All routed experts of all layers."""
    shared: int
    router: int
    norms: int
    embedding: int
    head: int
    non_embedding: int
    """Total non-embedding parameters: what memory holds besides the embedding tables."""
    active_non_embedding: int
    """Non-embedding parameters one token uses: what its FLOPs follow."""

    @property
    def total(self) -> int:
        return self.non_embedding + self.embedding + self.head

    @property
    def active(self) -> int:
        return self.active_non_embedding + self.embedding + self.head

    @property
    def expansion_rate(self) -> float:
        """Routed-expert parameters of a layer over one dense FFN's (experts / granularity)."""
        return self.experts / self.granularity


def expert_width(d_model: int, granularity: float) -> int:
    """Hidden width of one expert, round(4·d_model / granularity); BadInput (field moe_granularity) when that is
    narrower than one unit."""
    width = round(4 * d_model / granularity)
    if width < 1:
        raise BadInput(
            f"granularity {granularity:g} makes each expert {4 * d_model / granularity:.3g} wide (d_ff = 4·d_model = "
            f"{4 * d_model} over G): an expert needs at least 1 hidden unit, so granularity ≤ {4 * d_model}",
            field="moe_granularity",
        )
    return width


def moe_param_counts(n_layer: int, d_model: int, vocab_size: int, seq_len: int, *, experts: int, top_k: int,
                     granularity: float = 1.0, shared_experts: int = 0, tie_embeddings: bool = True,
                     n_head: int | None = None, n_kv_head: int | None = None) -> MoeCounts:
    """Every count of one MoE shape (bias-free, tied head by default); see the table above. With grouped-query
    attention (``n_kv_head`` of ``n_head`` heads) K and V are d·n_kv_head/n_head wide."""
    width = expert_width(d_model, granularity)
    expert = 2 * d_model * width
    attention = n_layer * (2 * d_model**2 + 2 * d_model * _kv_width(d_model, n_head, n_kv_head))
    routed = n_layer * experts * expert
    shared = n_layer * shared_experts * expert
    router = n_layer * d_model * experts
    norms = 2 * n_layer * d_model + d_model
    non_embedding = attention + routed + shared + router + norms
    active = attention + n_layer * (top_k + shared_experts) * expert + router + norms
    return MoeCounts(
        experts=experts, top_k=top_k, shared_experts=shared_experts, granularity=float(granularity),
        expert_d_ff=width, attention=attention, expert=expert, routed=routed, shared=shared, router=router,
        norms=norms, embedding=embedding_params(vocab_size, seq_len, d_model, tie_embeddings=True),
        head=head_params(vocab_size, d_model, tie_embeddings=tie_embeddings), non_embedding=non_embedding,
        active_non_embedding=active,
    )


def moe_params_per_layer(experts: float, top_k: float, granularity: float, shared_experts: float = 0.0
                         ) -> tuple[float, float]:
    """(total, active) non-embedding parameters per n_layer·d_model², router and LayerNorm gains left out:
    4 + 8·(experts + shared)/G and 4 + 8·(top_k + shared)/G (a dense block is 12 and 12)."""
    return (4.0 + 8.0 * (experts + shared_experts) / granularity, 4.0 + 8.0 * (top_k + shared_experts) / granularity)


def krajewski_flops_per_token(n_layer: npt.ArrayLike, d_model: npt.ArrayLike, experts: npt.ArrayLike, *,
                              c_f: float = 6.0, c_r: float = 14.0) -> FloatOrArray:
    """Krajewski et al. 2024 eq. 10 per token: (12·d²·c_f + d·E·G·c_r)·n_blocks, E·G being the number of
    experts; the active block of their runs is 12·d² (top_k = G), the router costs c_r = 14 FLOPs per parameter
    (App. E: routing, combining and their gradients as well as the logits), embeddings left out."""
    d, layers = _a(d_model), _a(n_layer)
    return _out((12.0 * d * d * c_f + d * _a(experts) * c_r) * layers)


@dataclass(frozen=True)
class MoeSpec:
    """A mixture-of-experts layout independent of width: what a request asks for (planner.request)."""

    experts: int
    top_k: int = 1
    granularity: float = 1.0
    """d_ff / expert_d_ff with d_ff = 4·d_model (Krajewski et al.'s G); 1: each expert as wide as the dense FFN."""
    shared_experts: int = 0

    def per_layer(self) -> tuple[float, float]:
        """(total, active) non-embedding parameters per n_layer·d_model² (moe_params_per_layer)."""
        return moe_params_per_layer(self.experts, self.top_k, self.granularity, self.shared_experts)

    @property
    def active_fraction(self) -> float:
        """Active over total non-embedding parameters, router and LayerNorm gains left out."""
        total, active = self.per_layer()
        return active / total

    @property
    def expansion_rate(self) -> float:
        return self.experts / self.granularity
