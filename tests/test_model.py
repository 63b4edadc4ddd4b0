"""The GPT model: parameter accounting, FLOP accounting, initial loss, memorisation, attention paths."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn import functional as F

from fits.accounting import embedding_params, kaplan_params, non_embedding_params
from fits.accounting import shape_flops_per_token as flops_per_token
from verifier.model import GPT, SCORES_MAX_ELEMENTS, GPTConfig, attention_by_scores, scores_fit, xformers_available


@settings(max_examples=20, deadline=None)
@given(n_layer=st.integers(1, 4), d_model=st.sampled_from([8, 16, 48, 64, 96]),
       vocab=st.sampled_from([7, 256, 1000]), seq_len=st.sampled_from([4, 32]), tied=st.booleans(),
       bias=st.booleans())
def test_parameter_counts_match_the_module(n_layer, d_model, vocab, seq_len, tied, bias):
    model = GPT(GPTConfig(n_layer=n_layer, d_model=d_model, n_head=1, vocab_size=vocab, seq_len=seq_len,
                          tie_embeddings=tied, bias=bias))
    every = sum(p.numel() for p in model.parameters())
    n = model.num_params()
    assert n == non_embedding_params(n_layer, d_model, bias=bias)
    # the difference from Kaplan's 12·n_layer·d²: LayerNorm gains, and biases when present
    extra = 13 * n_layer * d_model + 2 * d_model if bias else 2 * n_layer * d_model + d_model
    assert n - kaplan_params(n_layer, d_model) == extra
    assert every == model.num_params(non_embedding=False)
    assert every - n == embedding_params(vocab, seq_len, d_model, tie_embeddings=tied)
    assert every - n == (vocab * (1 if tied else 2) + seq_len) * d_model


def test_kaplan_reference_shapes():
    # spec/kaplan2020.md §1.2: (2, 128) is "393.2K"; (48, 1600) the GPT-2 1.5B shape.
    assert kaplan_params(2, 128) == 393_216
    assert kaplan_params(48, 1600) == pytest.approx(1.47e9, rel=0.01)
    # the exact count differs by biases and LayerNorm only: under 0.1% at d_model 1600
    assert non_embedding_params(48, 1600, bias=True) / kaplan_params(48, 1600) - 1 < 1e-3
    assert non_embedding_params(2, 128) == 393_216 + 2 * 2 * 128 + 128


def test_flops_per_token_accounting():
    n_layer, d_model, seq_len = 4, 128, 256
    attention = 6 * n_layer * seq_len * d_model
    assert flops_per_token(n_layer, d_model, seq_len) == 6 * 12 * n_layer * d_model**2 + attention
    # spec §1.3: for (48, 1600) at n_ctx 1024 the mask term adds about 5% to the forward FLOPs
    share = flops_per_token(48, 1600, 1024) / (6 * kaplan_params(48, 1600)) - 1
    assert share == pytest.approx(1024 / (12 * 1600), rel=1e-9)
    assert 0.04 < share < 0.06


@pytest.mark.parametrize("vocab", [256, 4096])
def test_initial_loss_is_near_log_vocab(vocab):
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=2, d_model=64, n_head=1, vocab_size=vocab, seq_len=64))
    x = torch.randint(0, vocab, (8, 64))
    y = torch.randint(0, vocab, (8, 64))
    with torch.no_grad():
        _, loss = model(x, y)
    assert loss.item() == pytest.approx(math.log(vocab), rel=0.02)


def test_a_tiny_batch_is_memorised():
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=1, d_model=32, n_head=1, vocab_size=64, seq_len=16))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    x = torch.randint(0, 64, (2, 16))
    y = torch.randint(0, 64, (2, 16))
    for _ in range(300):
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05


def _reference_attention(model: GPT, x: torch.Tensor) -> torch.Tensor:
    """Causal attention written out longhand, for the first block's attention module."""
    attn = model.blocks[0].attn
    b, t, d = x.shape
    h = attn.n_head
    q, k, v = attn.qkv(x).view(b, t, 3, h, d // h).permute(2, 0, 3, 1, 4)
    scores = q @ k.transpose(-1, -2) / math.sqrt(d // h)
    scores = scores.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), float("-inf"))
    y = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, d)
    return attn.proj(y)


def test_sdpa_path_is_causal_attention():
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=1, d_model=32, n_head=4, vocab_size=16, seq_len=12, attention="sdpa"))
    x = torch.randn(3, 12, 32)
    with torch.no_grad():
        assert torch.allclose(model.blocks[0].attn(x), _reference_attention(model, x), atol=1e-5)
        # causality: changing the last position leaves the earlier outputs unchanged
        x2 = x.clone()
        x2[:, -1] += 1.0
        assert torch.allclose(model.blocks[0].attn(x)[:, :-1], model.blocks[0].attn(x2)[:, :-1], atol=1e-6)


def test_materialised_scores_are_causal_attention():
    torch.manual_seed(0)
    q, k, v = (torch.randn(3, 4, 12, 8, requires_grad=True) for _ in range(3))
    g = torch.randn(3, 4, 12, 8)
    y = attention_by_scores(q, k, v)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert torch.allclose(y, ref, atol=1e-5)
    grads = torch.autograd.grad(y, (q, k, v), g)
    ref_grads = torch.autograd.grad(ref, (q, k, v), g)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(grads, ref_grads, strict=True))
    # in bf16: within bf16 rounding of the fp32 result, gradients included
    q16, k16, v16 = (z.detach().bfloat16().requires_grad_() for z in (q, k, v))
    y16 = attention_by_scores(q16, k16, v16)
    assert y16.dtype == torch.bfloat16 and (y16.float() - ref).abs().max() < 0.05
    grads16 = torch.autograd.grad(y16, (q16, k16, v16), g.bfloat16())
    assert all((a.float() - b).abs().max() < 0.05 * b.abs().max() for a, b in zip(grads16, ref_grads, strict=True))


def test_auto_attention_materialises_scores_in_bf16_on_cpu_only():
    assert scores_fit("cpu", torch.bfloat16, 16, 6, 256)
    assert not scores_fit("cpu", torch.float32, 16, 6, 256)  # fp32: SDPA's flash kernel is the faster
    assert not scores_fit("cuda", torch.bfloat16, 16, 6, 256)
    assert not scores_fit("cpu", torch.bfloat16, 1, 1, int(SCORES_MAX_ELEMENTS**0.5) + 1)  # T² memory: SDPA
    torch.manual_seed(0)
    x = torch.randint(0, 16, (2, 12))

    def kernels(attention: str, autocast: bool) -> set[str]:
        model = GPT(GPTConfig(n_layer=1, d_model=32, n_head=4, vocab_size=16, seq_len=12, attention=attention))
        with torch.profiler.profile() as prof, torch.autocast("cpu", torch.bfloat16, enabled=autocast):
            model(x, x)[1].backward()
        return {e.key for e in prof.key_averages()}

    assert "aten::baddbmm" in kernels("auto", True)
    assert not any("scaled_dot_product" in k for k in kernels("auto", True))
    assert "aten::baddbmm" not in kernels("auto", False)  # fp32: SDPA
    assert "aten::baddbmm" not in kernels("sdpa", True)  # an explicit "sdpa" is kept


def test_xformers_backend_refuses_cpu_tensors():
    model = GPT(GPTConfig(n_layer=1, d_model=16, n_head=2, vocab_size=8, seq_len=4, attention="xformers"))
    with pytest.raises(RuntimeError, match="xformers"):
        model(torch.zeros(1, 4, dtype=torch.long))


@pytest.mark.skipif(not (torch.cuda.is_available() and xformers_available()),
                    reason="needs CUDA and xformers to compare the two attention paths (both absent here)")
def test_xformers_and_sdpa_agree_on_cuda():
    torch.manual_seed(0)
    cfg = dict(n_layer=2, d_model=128, n_head=2, vocab_size=256, seq_len=128)
    sdpa = GPT(GPTConfig(**cfg, attention="sdpa")).cuda()
    xf = GPT(GPTConfig(**cfg, attention="xformers")).cuda()
    xf.load_state_dict(sdpa.state_dict())
    x = torch.randint(0, 256, (4, 128), device="cuda")
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        a, b = sdpa(x).float(), xf(x).float()
    assert F.cosine_similarity(a.flatten(), b.flatten(), dim=0) > 0.999
    assert (a - b).abs().max() < 0.05 * a.abs().max()


def test_config_rejects_bad_shapes():
    with pytest.raises(ValueError, match="n_head"):
        GPTConfig(n_layer=1, d_model=30, n_head=4)
    with pytest.raises(ValueError, match="n_layer"):
        GPTConfig(n_layer=0, d_model=32, n_head=1)
    with pytest.raises(ValueError, match="attention"):
        GPTConfig(n_layer=1, d_model=32, n_head=1, attention="flash")
    model = GPT(GPTConfig(n_layer=1, d_model=16, n_head=1, vocab_size=8, seq_len=4))
    with pytest.raises(ValueError, match="seq_len"):
        model(torch.zeros(1, 5, dtype=torch.long))
