"""A GPT-style transformer (pre-LN, fused scaled-dot-product attention, tied embeddings).

Inputs live in a vocabulary of `vocab_in` ids (the predicted tokens plus input-only symbols such
as BOS); the head predicts the first `vocab_out` of them through the tied embedding matrix.
`causal=True` gives the autoregressive model; an explicit boolean `attn_mask` (True = may
attend) supports other attention patterns.
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


class SelfAttention(nn.Module):
    def __init__(self, c: TransformerConfig):
        super().__init__()
        assert c.d_model % c.n_head == 0, "d_model must be divisible by n_head"
        self.n_head, self.dropout = c.n_head, c.dropout
        self.qkv = nn.Linear(c.d_model, 3 * c.d_model, bias=False)
        self.proj = nn.Linear(c.d_model, c.d_model, bias=False)

    def forward(self, x: torch.Tensor, causal: bool, attn_mask: torch.Tensor | None) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_head, C // self.n_head).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=causal and attn_mask is None,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class Block(nn.Module):
    def __init__(self, c: TransformerConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(c.d_model)
        self.attn = SelfAttention(c)
        self.ln2 = nn.LayerNorm(c.d_model)
        self.mlp = nn.Sequential(nn.Linear(c.d_model, 4 * c.d_model, bias=False), nn.GELU(),
                                 nn.Linear(4 * c.d_model, c.d_model, bias=False))
        self.drop = nn.Dropout(c.dropout)

    def forward(self, x, causal, attn_mask):
        x = x + self.drop(self.attn(self.ln1(x), causal, attn_mask))
        return x + self.drop(self.mlp(self.ln2(x)))


class Transformer(nn.Module):
    def __init__(self, c: TransformerConfig):
        super().__init__()
        self.config = c
        self.tok_emb = nn.Embedding(c.vocab_in, c.d_model)
        self.pos_emb = nn.Embedding(c.block_size, c.d_model)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.n_layer))
        self.ln_f = nn.LayerNorm(c.d_model)
        self.apply(self._init)
        for name, p in self.named_parameters():  # GPT-2: scale residual projections by depth
            if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * c.n_layer))

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)

    def forward(self, idx: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, T, vocab_out) for input ids (B, T)."""
        B, T = idx.shape
        if T > self.config.block_size:
            raise ValueError(f"sequence of {T} tokens exceeds block_size {self.config.block_size}")
        pos = torch.arange(T, device=idx.device)
        x = self.drop(self.tok_emb(idx) + self.pos_emb(pos))
        for block in self.blocks:
            x = block(x, self.config.causal, attn_mask)
        x = self.ln_f(x)
        return F.linear(x, self.tok_emb.weight[: self.config.vocab_out])

    def num_params(self, embeddings: bool = True) -> int:
        n = sum(p.numel() for p in self.parameters())
        if not embeddings:
            n -= self.tok_emb.weight.numel() + self.pos_emb.weight.numel()
        return n

    def train_flops_per_token(self, context: int) -> float:
        """6 N + 12 L d T (PaLM, appendix B): N = non-embedding weights plus the output head
        (vocab_out x d), T = attention context; counts attention as dense (no causal halving)."""
        c = self.config
        n = self.num_params(embeddings=False) + c.vocab_out * c.d_model
        return 6.0 * n + 12.0 * c.n_layer * c.d_model * context
