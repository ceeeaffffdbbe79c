"""`bd3lm`: block discrete diffusion LM (BD3-LM, Arriola et al., ICLR 2025).

The window is cut into blocks of L' tokens. Each block is a masked-diffusion model conditioned on
the clean previous blocks: training feeds x_t (+) x_0 with the block-diffusion attention mask
(x_t block b sees its own block and x_0 blocks < b; x_0 is block-causal), one t per block drawn
from the clipped schedule U[beta, omega] (`clip`, written or searched: dagzoo.text.clip). The
NELBO sums the blocks' masked-diffusion bounds (t ~ U[eps, 1]). Sampling is semi-autoregressive:
block by block, ancestral steps inside a block, finished blocks kept in a KV cache. L' = 1 with
t = 1 is exactly autoregressive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from dagzoo.errors import ConfigError
from dagzoo.nn.transformer import KVCache
from dagzoo.registry import Paper, param, register
from dagzoo.text.base import TextModel
from dagzoo.text.clip import ClippedSchedule
from dagzoo.text.diffusion import ancestral_sample, bd3_attention_mask, block_times, mask_tokens
from dagzoo.text.losses import masked_nelbo_terms
from dagzoo.text.params import ClippedScheduleParams


def prefix_block_mask(prefix: int, block: int, length: int, device=None) -> torch.Tensor:
    """Mask over [x_0 prefix (prefix tokens) ; x_t block (length)]: the prefix is block-causal
    (blocks of `block`), the x_t block sees the whole prefix and itself, the prefix never sees it."""
    n = prefix + length
    idx = torch.arange(n, device=device)
    in_prefix = idx < prefix
    blk = idx // block
    q_p, k_p = in_prefix[:, None], in_prefix[None, :]
    return (q_p & k_p & (blk[None, :] <= blk[:, None])) | (~q_p & k_p) | (~q_p & ~k_p)


@register(
    "text",
    "bd3lm",
    papers=(
        Paper(
            "Block Diffusion: Interpolating Between Autoregressive and Diffusion Language Models",
            "Arriola et al.",
            2025,
            "https://arxiv.org/abs/2503.09573",
        ),
    ),
)
class BD3LM(ClippedSchedule, TextModel):
    """Block discrete diffusion LM (BD3-LM; NELBO upper bound; semi-AR sampling with KV cache)."""

    exact_likelihood = False

    @dataclass
    class Params(ClippedScheduleParams):
        block_length: int = param(4, "L': tokens per diffusion block", min=1)
        clip: list[float] | str = param(
            [0.3, 0.8],
            "training masking rates t ~ U[beta, omega] per block (raised to eps at least), or `search`: the window of "
            "least NELBO-estimator variance among clip_widths x clip_starts, found by the clip_search stage",
        )
        sample_steps: int = param(16, "denoising steps per block", min=1, stage="sample")
        kv_cache: bool = param(True, "sample with a KV cache of finished blocks", stage="sample")

    @classmethod
    def check_written(cls, exp: dict, where: str) -> None:
        old = [key for key in ("beta", "omega") if key in exp]
        if old:
            raise ConfigError(
                f"{where}.{old[0]}: BD3-LM's window is one key now; write clip: [beta, omega] "
                f"(e.g. clip: [{exp.get('beta', 0.3)}, {exp.get('omega', 0.8)}])"
            )

    def context_length(self, window):
        return 2 * window  # the network reads x_t (+) x_0

    def times_in(self, batch, window, generator, low, high):
        p = self.params
        return block_times(batch, window, p.block_length, generator, max(low, p.eps), high)

    def nelbo_sample(self, net, x0, t, generator):
        B, W = x0.shape
        t_tok = (t if t.dim() == 2 else t[:, None]).to(x0.device).expand(B, W).float()
        x_t, masked = mask_tokens(x0, t_tok, self.mask_id, generator)
        inputs = torch.cat([x_t, x0], dim=1)
        positions = torch.arange(W, device=x0.device).repeat(2)
        t_in = torch.cat([t_tok, torch.zeros_like(t_tok)], dim=1)
        logits = self.logits(
            net, inputs, t_in, attn_mask=bd3_attention_mask(W, self.params.block_length, x0.device), positions=positions
        )
        return masked_nelbo_terms(logits[:, :W], x0, masked, t_tok)

    @torch.no_grad()
    def sample(self, n, length, generator, temperature, top_k, kv_cache: bool | None = None):
        self.net.eval()
        p, dev = self.params, self.device
        use_cache = p.kv_cache if kv_cache is None else kv_cache
        L = p.block_length
        cache = KVCache(p.n_layer) if use_cache else None
        done = torch.zeros((n, 0), dtype=torch.long, device=dev)
        nfe = 0
        for b in range(math.ceil(length / L)):
            lo, hi = b * L, min(length, (b + 1) * L)
            pos = torch.arange(lo, hi, device=dev)
            if use_cache:

                def logits_fn(x, t):
                    return self.logits(self.net, x, t, positions=pos, cache=cache)
            else:
                prefix = done
                mask = prefix_block_mask(lo, L, hi - lo, dev)

                def logits_fn(x, t):
                    t_in = torch.cat([torch.zeros(n, lo, device=dev), t[:, None].expand(n, hi - lo)], dim=1)
                    out = self.logits(
                        self.net,
                        torch.cat([prefix, x], dim=1),
                        t_in,
                        attn_mask=mask,
                        positions=torch.arange(hi, device=dev),
                    )
                    return out[:, lo:]

            block, k = ancestral_sample(
                logits_fn, n, hi - lo, self.mask_id, p.sample_steps, generator, temperature, dev
            )
            nfe += k
            if use_cache:
                self.logits(self.net, block, torch.zeros(n, device=dev), positions=pos, cache=cache, store=True)
                nfe += 1
            done = torch.cat([done, block], dim=1)
        return done.cpu().numpy(), nfe
