"""The shared text backbone: rotary positions against their definition (RoPE, Su et al. 2021)."""

import math

import pytest
import torch

from dagzoo.nn.transformer import Transformer, TransformerConfig, apply_rotary, rotary_tables


def test_rotary_rotates_each_pair_by_position_times_frequency():
    """Pair i of a d-dim head is (x_i, x_{i+d/2}), rotated by the angle m * 10000^(-2i/d), by hand."""
    d, m = 4, 3
    x = torch.tensor([[[[1.0, 2.0, 3.0, 4.0]]]])  # (B, H, T, d), one token at position m
    cos, sin = rotary_tables(torch.tensor([m]), d)
    got = apply_rotary(x, cos, sin)[0, 0, 0]
    a0, a1 = m * 1.0, m * 10_000 ** (-2 / 4)
    want = torch.tensor(
        [
            1 * math.cos(a0) - 3 * math.sin(a0),
            2 * math.cos(a1) - 4 * math.sin(a1),
            1 * math.sin(a0) + 3 * math.cos(a0),
            2 * math.sin(a1) + 4 * math.cos(a1),
        ]
    )
    torch.testing.assert_close(got, want)


def test_rotary_scores_depend_only_on_relative_position():
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(1, 1, 1, 8, generator=g), torch.randn(1, 1, 1, 8, generator=g)

    def score(m, n):
        qm = apply_rotary(q, *rotary_tables(torch.tensor([m]), 8))
        kn = apply_rotary(k, *rotary_tables(torch.tensor([n]), 8))
        return float((qm * kn).sum())

    assert score(5, 2) == pytest.approx(score(13, 10), abs=1e-5)
    assert score(0, 0) == pytest.approx(float((q * k).sum()), abs=1e-6)  # position 0: identity
    assert abs(score(5, 2) - score(5, 3)) > 1e-3


def test_rotary_network_is_translation_invariant_and_uses_order():
    """A bidirectional rotary network has no absolute positions: shifting every position id leaves
    the logits unchanged; permuting the input changes them (it is not a bag of tokens)."""
    torch.manual_seed(0)
    net = Transformer(
        TransformerConfig(
            vocab_in=8, vocab_out=6, block_size=64, n_layer=2, n_head=2, d_model=16, causal=False, positional="rotary"
        )
    ).eval()
    for p in net.parameters():
        p.data += 0.05 * torch.randn_like(p)
    x = torch.randint(0, 8, (2, 10), generator=torch.Generator().manual_seed(1))
    base = net(x, positions=torch.arange(10))
    torch.testing.assert_close(net(x, positions=torch.arange(20, 30)), base, rtol=1e-4, atol=1e-4)
    assert net.pos_emb is None
    assert not torch.allclose(net(x.flip(1)).flip(1), base, atol=1e-3)


def test_unknown_positional_is_refused():
    with pytest.raises(ValueError, match="positional"):
        TransformerConfig(vocab_in=4, vocab_out=4, block_size=8, positional="alibi")
