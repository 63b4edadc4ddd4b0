"""A mixture-of-experts plan's layout: the shape that carries the law's total N, and its counts.

The law's N is the total non-embedding count (Krajewski et al. 2024), which a MoE block holds as
(4 + 8·(experts + shared)/G)·d_model² per layer against a dense block's 12·d_model². The backbone (n_layer,
d_model, heads, d_ff = 4·d_model) is the dense shape planner.shape picks for the dense-equivalent
12·N/(4 + 8·(experts + shared)/G), so its rules (width steps, heads, aspect ratio) hold unchanged; every
layer's FFN is then the MoE layer, each expert round(4·d_model/G) wide. The exact counts
(fits.accounting.moe_param_counts) give the total (memory) and the active parameters per token (FLOPs).
"""

from __future__ import annotations

import msgspec

from fits import accounting
from fits.accounting import MoeCounts, MoeSpec
from fits.errors import BadInput
from fits.laws.base import LossModel
from planner import memory
from planner.errors import PlanError
from planner.plan import MoePlan, Shape
from planner.request import PlanRequest
from planner.shape import shape_for_params


def moe_model(model: LossModel, moe: MoeSpec | None) -> LossModel:
    """The fit's model for the request's layout (a PlanError naming the MoE field the family refuses)."""
    try:
        return model.for_moe(moe)
    except PlanError:
        raise
    except BadInput as exc:
        raise PlanError(exc.field or "moe_experts", exc.message) from None


def moe_shape(moe: MoeSpec, params: float, *, vocab_size: int, seq_len: int,
              kv_heads: int | None = None) -> tuple[Shape, MoeCounts]:
    """The backbone shape whose MoE total non-embedding count is ``params``, and that shape's counts."""
    total_per_layer, _ = moe.per_layer()
    backbone = shape_for_params(12.0 * params / total_per_layer, counts="non_embedding", vocab_size=vocab_size,
                                seq_len=seq_len, kv_heads=kv_heads)
    try:
        counts = accounting.moe_param_counts(
            backbone.n_layer, backbone.d_model, vocab_size, seq_len, experts=moe.experts, top_k=moe.top_k,
            granularity=moe.granularity, shared_experts=moe.shared_experts, n_head=backbone.n_head,
            n_kv_head=backbone.n_kv_head,
        )
    except BadInput as exc:
        raise PlanError(exc.field or "moe_granularity", exc.message) from None
    warnings = list(backbone.warnings)
    exact = 4 * backbone.d_model / moe.granularity
    if abs(exact - counts.expert_d_ff) > 1e-9:
        warnings.append(
            f"4·d_model/G = {exact:.4g} is not a whole width: each expert is {counts.expert_d_ff} wide "
            f"(effective G = {4 * backbone.d_model / counts.expert_d_ff:.4g})"
        )
    shape = msgspec.structs.replace(
        backbone,
        params_non_embedding=counts.non_embedding,
        params_total=counts.total,
        params_error=(counts.non_embedding - params) / params,
        warnings=warnings,
    )
    return shape, counts


def moe_dims(shape: Shape, counts: MoeCounts, *, seq_len: int, vocab_size: int) -> memory.ModelDims:
    """What memory depends on for a MoE: every expert held (the total), the active experts' width in the
    activations (top_k + shared experts of expert_d_ff each), the routed experts that expert parallelism shards."""
    return memory.ModelDims(
        n_layer=shape.n_layer, d_model=shape.d_model, n_head=shape.n_head, seq_len=seq_len, vocab_size=vocab_size,
        params_total=float(counts.total), n_kv_head=shape.n_kv_head,
        d_ff=(counts.top_k + counts.shared_experts) * counts.expert_d_ff, dropout=False,
        expert_params=float(counts.routed), experts=counts.experts, top_k=counts.top_k,
    )


MOE_LAYOUT = ("experts", "top_k", "granularity", "shared_experts", "expert_d_ff", "expansion_rate")
"""The layout figures a MoePlan carries as the accounting counted them."""


def moe_part(counts: MoeCounts, tokens: float, flops_per_token: float, dims: memory.ModelDims) -> MoePlan:
    """The plan's MoE record."""
    weights, grads, optimizer = memory.state_bytes(dims, memory.Layout())
    return MoePlan(
        **{name: getattr(counts, name) for name in MOE_LAYOUT},
        params_total=float(counts.total),
        params_active=float(counts.active),
        params_non_embedding=float(counts.non_embedding),
        params_active_non_embedding=float(counts.active_non_embedding),
        active_fraction=counts.active_non_embedding / counts.non_embedding,
        params_per_expert=float(counts.expert),
        params_router=float(counts.router),
        params_experts=float(counts.routed + counts.shared),
        params_attention=float(counts.attention),
        tokens_per_active_param=tokens / counts.active_non_embedding,
        flops_per_token=flops_per_token,
        model_states_gb=(weights + grads + optimizer) / memory.GB,
    )


def moe_assumptions(moe: MoeSpec, counts: MoeCounts, request: PlanRequest) -> list[str]:
    out = []
    if request.moe_experts is None:
        out.append(
            f"no MoE layout given: the fit's own, {moe.experts} experts as wide as the dense FFN, top-1 "
            "(moe_experts, moe_top_k, moe_granularity choose another)"
        )
    total_per_layer, _ = moe.per_layer()
    out += [
        f"mixture of experts: {moe.experts} routed experts (top-{moe.top_k}) and {moe.shared_experts} shared per "
        f"layer in every layer, each expert {counts.expert_d_ff} wide (d_ff/G, G = {moe.granularity:g}), a "
        "bias-free d_model × experts router; the backbone (n_layer, d_model, heads, d_ff) is the dense shape the "
        f"shape rules give for N_dense = 12·N/(4 + 8·(experts + shared)/G) = N/{total_per_layer / 12:.4g}, so the "
        "MoE's total non-embedding count is N within those rules' tolerance; total parameters (memory) and active "
        "ones (FLOPs) from fits.accounting.moe_param_counts",
        "MoE layout: memory holds every expert (the total) and the activations of the top-k and shared experts; "
        "the layout search splits the routed experts by tensor and pipeline parallelism like dense weights and by "
        "expert parallelism over e of the data-parallel ranks (e dividing them and the expert count; the experts' "
        "optimizer states sharded over the d/e replicas), and times the all-to-all (dispatch and combine per MoE "
        "layer, forward and backward, not overlapped); routing is taken as balanced (planner/layout.py)",
    ]
    if request.moe_experts is not None and request.moe_granularity is None:
        out.append(
            f"granularity not given: G = top_k = {moe.top_k}, so a token uses one dense FFN's worth of expert "
            "parameters, the setup the law was fitted on (Krajewski et al. route each token to G experts)"
        )
    return out
