"""fits.accounting: exact parameter counts of the built GPT, Kaplan's 12·L·d², and FLOPs per token by convention."""

from __future__ import annotations

import numpy as np
import pytest

from fits import accounting as acc


@pytest.mark.parametrize(
    ("n_layer", "d_model", "n_head", "vocab", "seq_len", "tied", "bias"),
    [
        (1, 16, 2, 256, 64, True, False),
        (2, 32, 4, 256, 128, False, False),
        (3, 48, 6, 300, 32, True, True),
        (4, 64, 8, 97, 256, False, True),
        (2, 128, 8, 256, 64, True, False),
    ],
)
def test_exact_counts_equal_the_built_models_tensors(n_layer, d_model, n_head, vocab, seq_len, tied, bias):
    torch = pytest.importorskip("torch")
    from verifier.model import GPT, GPTConfig

    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=n_layer, d_model=d_model, n_head=n_head, vocab_size=vocab, seq_len=seq_len,
                          tie_embeddings=tied, bias=bias))
    counts = acc.param_counts(n_layer, d_model, vocab, seq_len, tie_embeddings=tied, bias=bias)
    assert counts.total == sum(p.numel() for p in model.parameters())
    assert counts.total == acc.total_params(n_layer, d_model, vocab, seq_len, tie_embeddings=tied, bias=bias)
    assert counts.non_embedding == model.num_params() == acc.non_embedding_params(n_layer, d_model, bias=bias)
    assert counts.total == model.num_params(non_embedding=False)
    assert counts.head == (0 if tied else vocab * d_model)
    assert counts.embedding + counts.head == acc.embedding_params(vocab, seq_len, d_model, tie_embeddings=tied)
    assert counts.kaplan == 12 * n_layer * d_model**2
    assert counts.count("total") == counts.total and counts.count("non_embedding") == counts.non_embedding


def test_non_embedding_formulas():
    assert acc.non_embedding_params(2, 128) == 393_216 + 2 * 2 * 128 + 128
    assert acc.non_embedding_params(2, 128, bias=True) == 393_216 + 13 * 2 * 128 + 2 * 128
    assert acc.embedding_params(50257, 1024, 768) == (50257 + 1024) * 768
    assert acc.embedding_params(50257, 1024, 768, tie_embeddings=False) == (2 * 50257 + 1024) * 768
    assert acc.head_params(50257, 768) == 0 and acc.head_params(50257, 768, tie_embeddings=False) == 50257 * 768
    # vectorised over shapes
    got = acc.non_embedding_params(np.array([2.0, 4.0]), np.array([64.0, 128.0]))
    assert got.tolist() == [12 * 2 * 64**2 + 2 * 2 * 64 + 64, 12 * 4 * 128**2 + 2 * 4 * 128 + 128]
    with pytest.raises(ValueError, match="params count"):
        acc.count_params("some", 2, 64, 256, 64)


@pytest.mark.parametrize(
    ("n_layer", "d_model", "printed"),
    [(2, 128, 3.93e5), (36, 1280, 7.08e8), (48, 1600, 1.47e9), (6, 4288, 1.32e9), (207, 768, 1.47e9)],
)
def test_kaplan_reference_shapes(n_layer, d_model, printed):
    """Kaplan §1.2 reference shapes (spec kaplan2020.md §1.2): N = 12·n_layer·d_model²."""
    assert acc.kaplan_params(n_layer, d_model) == pytest.approx(printed, rel=0.005)
    # the exact count adds LayerNorm gains only: well under 0.1% at these widths... and 0.5% at the smallest
    assert acc.non_embedding_params(n_layer, d_model) / acc.kaplan_params(n_layer, d_model) - 1 < 0.005


def test_kaplan_smallest_shape_exactly():
    assert acc.kaplan_params(2, 128) == 393_216  # "393.2K" in Fig. 4
    assert acc.non_embedding_params(48, 1600, bias=True) / acc.kaplan_params(48, 1600) - 1 < 1e-3


def test_three_conventions_on_a_hand_computed_shape():
    # L = 4, d = 256, T = 512, V = 1000, N = 12·4·256² = 3,145,728
    n_layer, d, t, v = 4, 256, 512, 1000
    n = 12 * n_layer * d * d
    assert n == 3_145_728
    assert acc.flops_per_token(n, n_layer, d, t, "6N") == 6 * 3_145_728 == 18_874_368
    assert acc.flops_per_token(n, n_layer, d, t, "kaplan") == 18_874_368 + 6 * 4 * 512 * 256 == 22_020_096
    assert acc.flops_per_token(n, n_layer, d, t, "palm") == 18_874_368 + 12 * 4 * 512 * 256 == 25_165_824
    head = 6 * 256 * 1000
    for conv in acc.CONVENTIONS:
        assert acc.flops_per_token(n, n_layer, d, t, conv, vocab_size=v) == acc.flops_per_token(n, n_layer, d, t,
                                                                                                  conv) + head
    assert acc.head_flops_per_token(d, v) == head
    assert acc.attention_flops_per_token(n_layer, d, t, "6N") == 0
    assert acc.attention_flops_per_token(n_layer, d, t, "palm") == 2 * acc.attention_flops_per_token(n_layer, d, t)


def test_kaplan_convention_is_table_1_times_three():
    """C_forward = 2N + 2·n_layer·n_ctx·d_attn (Table 1), backward twice the forward."""
    n_layer, d, t = 48, 1600, 1024
    n = acc.kaplan_params(n_layer, d)
    c_forward = 2 * n + 2 * n_layer * t * d
    assert acc.flops_per_token(n, n_layer, d, t, "kaplan") == 3 * c_forward
    assert acc.shape_flops_per_token(n_layer, d, t, "kaplan") == 3 * c_forward
    # spec §1.3 [derived]: the mask term adds about 5% at (48, 1600), n_ctx = 1024
    assert acc.shape_flops_per_token(n_layer, d, t, "kaplan") / (6 * n) - 1 == pytest.approx(0.053, abs=0.001)
    exact = acc.shape_flops_per_token(n_layer, d, t, "kaplan", exact=True)
    assert exact - acc.shape_flops_per_token(n_layer, d, t, "kaplan") == 6 * (2 * n_layer * d + d)


def test_palm_convention_matches_nanogpt_estimate_mfu():
    # nanoGPT: flops_per_token = 6·N + 12·L·H·Q·T with H·Q = d_model, N its (tied) parameter count
    n_layer, n_head, head_dim, t = 12, 12, 64, 1024
    n = 124_000_000
    nanogpt = 6 * n + 12 * n_layer * n_head * head_dim * t
    assert acc.flops_per_token(n, n_layer, n_head * head_dim, t, "palm") == nanogpt


def test_conventions_are_vectorised_and_checked():
    got = acc.flops_per_token(np.array([1e6, 2e6]), 2, 64, 128, "kaplan")
    assert got.tolist() == [6e6 + 6 * 2 * 128 * 64, 12e6 + 6 * 2 * 128 * 64]
    with pytest.raises(ValueError, match="FLOP convention"):
        acc.flops_per_token(1e6, 2, 64, 128, "12N")  # type: ignore[arg-type]


def test_law_families_state_their_n_and_convention():
    from fits.laws.registry import get_law

    assert acc.params_count_of(get_law("chinchilla").conventions.params) == "total"
    for law in ("kaplan", "kaplan-nd", "kaplan-ns"):
        assert acc.params_count_of(get_law(law).conventions.params) == "non_embedding"
    for law in ("chinchilla", "kaplan", "kaplan-nd", "kaplan-ns"):
        assert acc.check_convention(get_law(law).conventions.flops) == "6N"
    with pytest.raises(ValueError, match="non-embedding"):
        acc.params_count_of("some")
    assert "all parameters" in acc.describe("6N", "total")
    assert "non-embedding" in acc.describe("palm", "non_embedding", head=True)
