"""One transformer for every text objective (pre-LN, fused scaled-dot-product attention, tied embeddings).

Inputs live in a vocabulary of `vocab_in` ids (the predicted tokens plus input-only symbols such
as BOS and MASK); the head predicts the first `vocab_out` of them through the tied embedding
matrix, so input-only symbols can never be predicted (MDLM's SUBS "MASK logit = -inf" holds by
construction).

- `causal=True` gives the autoregressive model; `causal=False` a bidirectional one.
- `attn_mask` (boolean, True = may attend) gives any other pattern (block diffusion).
- `positions` sets position ids explicitly (BD3-LM feeds x_t and x_0 with the same positions).
- `positional="rotary"` rotates queries and keys by their positions (RoPE, Su et al. 2021; the
  DiT backbones of MDLM, SEDD and BD3-LM use it), `"learned"` adds a learned absolute embedding
  (GPT-2). With learned absolute positions a bidirectional denoiser must learn relative attention
  from scratch before it can use any neighbour, which stalls small budgets at the unigram level.
- `cond` (B, d) or (B, T, d) switches on adaLN-Zero time conditioning as in DiT: every block's
  layer norms are shifted/scaled and its residual branches gated by a projection of `cond`,
  initialised to zero so a conditioned block starts as the identity.
- `cache` (a KVCache) lets new tokens attend to keys/values of earlier calls; with
  ``store=True`` the new keys/values are appended (semi-autoregressive sampling).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class TransformerConfig:
    vocab_in: int
    vocab_out: int
    block_size: int
    n_layer: int = 4
    n_head: int = 4
    d_model: int = 128
    dropout: float = 0.0
    causal: bool = True
    time_conditioning: bool = False
    positional: str = "learned"  # "learned" absolute embeddings or "rotary" (RoPE)

    def __post_init__(self):
        if self.positional not in ("learned", "rotary"):
            raise ValueError(f"positional must be 'learned' or 'rotary', got {self.positional!r}")
        if self.positional == "rotary" and (self.d_model // self.n_head) % 2:
            raise ValueError("rotary positions need an even head dimension (d_model / n_head)")


class KVCache:
    """Per-layer keys and values of tokens already processed (B, H, T, head_dim)."""

    def __init__(self, n_layer: int):
        self.k: list[torch.Tensor | None] = [None] * n_layer
        self.v: list[torch.Tensor | None] = [None] * n_layer

    def __len__(self) -> int:
        return 0 if self.k[0] is None else self.k[0].shape[2]


def rotary_tables(positions: torch.Tensor, head_dim: int, base: float = 10_000.0):
    """cos and sin of angle position * base^(-2i/head_dim), i < head_dim/2: (*positions.shape, head_dim/2)."""
    inv_freq = base ** (-torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim)
    angles = positions.float()[..., None] * inv_freq
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the pairs (x_i, x_{i + d/2}) of x (B, H, T, d) by the angles of cos/sin (T, d/2) or (B, 1, T, d/2)."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).type_as(x)


class SelfAttention(nn.Module):
    def __init__(self, c: TransformerConfig):
        super().__init__()
        assert c.d_model % c.n_head == 0, "d_model must be divisible by n_head"
        self.n_head, self.dropout = c.n_head, c.dropout
        self.qkv = nn.Linear(c.d_model, 3 * c.d_model, bias=False)
        self.proj = nn.Linear(c.d_model, c.d_model, bias=False)

    def forward(
        self, x, causal: bool, attn_mask, cache: KVCache | None = None, layer: int = 0, store: bool = False, rope=None
    ):
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_head, C // self.n_head).permute(2, 0, 3, 1, 4)
        if rope is not None:  # cached keys were rotated at their own positions when stored
            q, k = apply_rotary(q, *rope), apply_rotary(k, *rope)
        if cache is not None and cache.k[layer] is not None:
            k = torch.cat([cache.k[layer], k], dim=2)
            v = torch.cat([cache.v[layer], v], dim=2)
            causal = False  # new tokens see every cached token; `attn_mask` restricts if needed
        if cache is not None and store:
            cache.k[layer], cache.v[layer] = k, v
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=attn_mask,
            is_causal=causal and attn_mask is None,
            dropout_p=self.dropout if self.training else 0.0,
        )
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


def _modulate(x, shift, scale):
    return x * (1 + scale) + shift


class Block(nn.Module):
    def __init__(self, c: TransformerConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(c.d_model)
        self.attn = SelfAttention(c)
        self.ln2 = nn.LayerNorm(c.d_model)
        self.mlp = nn.Sequential(
            nn.Linear(c.d_model, 4 * c.d_model, bias=False), nn.GELU(), nn.Linear(4 * c.d_model, c.d_model, bias=False)
        )
        self.drop = nn.Dropout(c.dropout)
        self.ada = nn.Linear(c.d_model, 6 * c.d_model) if c.time_conditioning else None

    def forward(self, x, causal, attn_mask, cond=None, cache=None, layer=0, store=False, rope=None):
        if self.ada is None or cond is None:
            x = x + self.drop(self.attn(self.ln1(x), causal, attn_mask, cache, layer, store, rope))
            return x + self.drop(self.mlp(self.ln2(x)))
        s1, c1, g1, s2, c2, g2 = self.ada(cond).chunk(6, dim=-1)
        h = self.attn(_modulate(self.ln1(x), s1, c1), causal, attn_mask, cache, layer, store, rope)
        x = x + g1 * self.drop(h)
        return x + g2 * self.drop(self.mlp(_modulate(self.ln2(x), s2, c2)))


class TimeEmbedding(nn.Module):
    """Sinusoidal features of a scalar noise level -> MLP -> conditioning vector (DiT)."""

    def __init__(self, d: int, n_freq: int = 128):
        super().__init__()
        self.n_freq = n_freq
        self.mlp = nn.Sequential(nn.Linear(n_freq, d), nn.SiLU(), nn.Linear(d, d))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.n_freq // 2
        freqs = torch.exp(-math.log(10_000) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
        args = t.float()[..., None] * freqs
        return self.mlp(torch.cat([torch.cos(args), torch.sin(args)], dim=-1))


class Transformer(nn.Module):
    def __init__(self, c: TransformerConfig):
        super().__init__()
        self.config = c
        self.tok_emb = nn.Embedding(c.vocab_in, c.d_model)
        self.pos_emb = nn.Embedding(c.block_size, c.d_model) if c.positional == "learned" else None
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.n_layer))
        self.ln_f = nn.LayerNorm(c.d_model)
        self.time_emb = TimeEmbedding(c.d_model) if c.time_conditioning else None
        self.ada_f = nn.Linear(c.d_model, 2 * c.d_model) if c.time_conditioning else None
        self.apply(self._init)
        for name, p in self.named_parameters():  # GPT-2: scale residual projections by depth
            if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * c.n_layer))
        for m in [b.ada for b in self.blocks] + [self.ada_f]:  # adaLN-Zero
            if m is not None:
                nn.init.zeros_(m.weight)
                nn.init.zeros_(m.bias)

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)

    def forward(
        self,
        idx: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
        t: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
        cache: KVCache | None = None,
        store: bool = False,
    ) -> torch.Tensor:
        """Logits (B, T, vocab_out) for input ids (B, T).

        t: noise level per sequence (B,) or per token (B, T) when time conditioning is on.
        """
        B, T = idx.shape
        if positions is None:
            start = len(cache) if cache is not None else 0
            positions = torch.arange(start, start + T, device=idx.device)
        if int(positions.max()) >= self.config.block_size:
            raise ValueError(f"position {int(positions.max())} exceeds block_size {self.config.block_size}")
        h, rope = self.tok_emb(idx), None
        if self.pos_emb is not None:
            h = h + self.pos_emb(positions)
        else:
            cos, sin = rotary_tables(positions, self.config.d_model // self.config.n_head)
            rope = (cos[:, None], sin[:, None]) if positions.dim() == 2 else (cos, sin)
        x = self.drop(h)
        cond = None
        if self.time_emb is not None:
            if t is None:
                raise ValueError("this transformer is time-conditioned: pass t")
            cond = self.time_emb(t)
            if cond.dim() == 2:
                cond = cond[:, None, :]
        for i, block in enumerate(self.blocks):
            x = block(x, self.config.causal, attn_mask, cond, cache, i, store, rope)
        x = self.ln_f(x)
        if cond is not None:
            shift, scale = self.ada_f(cond).chunk(2, dim=-1)
            x = _modulate(x, shift, scale)
        return F.linear(x, self.tok_emb.weight[: self.config.vocab_out])

    def num_params(self, embeddings: bool = True) -> int:
        n = sum(p.numel() for p in self.parameters())
        if not embeddings:
            n -= self.tok_emb.weight.numel() + (self.pos_emb.weight.numel() if self.pos_emb is not None else 0)
        return n

    def train_flops_per_token(self, context: int) -> float:
        """6 N + 12 L d T (PaLM, appendix B): N = non-embedding weights plus the output head
        (vocab_out x d), T = attention context; counts attention as dense (no causal halving)."""
        c = self.config
        n = self.num_params(embeddings=False) + c.vocab_out * c.d_model
        return 6.0 * n + 12.0 * c.n_layer * c.d_model * context
