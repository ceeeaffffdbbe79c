"""`mdlm`: masked diffusion LM (MDLM, Sahoo et al. 2024; LLaDA, Nie et al. 2025, is this objective at scale).

Absorbing MASK state, log-linear schedule (alpha_t = 1 - t), continuous-time NELBO with weight
1/t, SUBS parameterisation, t stratified across the batch and clipped to [eps, 1] (or to a window
`clip`, BD3-LM's clipped schedule, written or searched: dagzoo.text.clip). Samplers:
MDLM ancestral, or LLaDA's semi-autoregressive low-confidence (or random) remasking.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dagzoo.registry import Paper, param, register
from dagzoo.text.base import TextModel
from dagzoo.text.clip import ClippedSchedule
from dagzoo.text.diffusion import ancestral_sample, llada_sample, mask_tokens, stratified_times
from dagzoo.text.losses import masked_nelbo_terms
from dagzoo.text.params import ClippedScheduleParams


@register(
    "text",
    "mdlm",
    papers=(
        Paper(
            "Simple and Effective Masked Diffusion Language Models",
            "Sahoo et al.",
            2024,
            "https://arxiv.org/abs/2406.07524",
        ),
        Paper("Large Language Diffusion Models", "Nie et al.", 2025, "https://arxiv.org/abs/2502.09992"),
    ),
)
class MDLM(ClippedSchedule, TextModel):
    """Masked diffusion LM (MDLM / LLaDA objective; NELBO upper bound)."""

    exact_likelihood = False

    @dataclass
    class Params(ClippedScheduleParams):
        sampler: str = param(
            "ancestral",
            "ancestral (MDLM) or llada (semi-AR low-confidence remasking)",
            choices=("ancestral", "llada"),
            stage="sample",
        )
        llada_block_length: int = param(32, "LLaDA: tokens per semi-autoregressive block", min=1, stage="sample")
        remasking: str = param(
            "low_confidence",
            "LLaDA: which predictions to keep each step",
            choices=("low_confidence", "random"),
            stage="sample",
        )

    def times_in(self, batch, window, generator, low, high):
        return stratified_times(batch, generator, max(low, self.params.eps), high)

    def nelbo_sample(self, net, x0, t, generator):
        t_tok = (t if t.dim() == 2 else t[:, None]).to(x0.device).expand_as(x0).float()
        x_t, masked = mask_tokens(x0, t_tok, self.mask_id, generator)
        return masked_nelbo_terms(self.logits(net, x_t, t_tok[:, 0]), x0, masked, t_tok)

    @torch.no_grad()
    def sample(self, n, length, generator, temperature, top_k):
        self.net.eval()
        p = self.params

        def logits_fn(x, t):
            return self.logits(self.net, x, t)

        if p.sampler == "llada":
            x, nfe = llada_sample(
                logits_fn,
                n,
                length,
                self.mask_id,
                p.sample_steps,
                p.llada_block_length,
                generator,
                temperature,
                p.remasking,
                self.device,
            )
        else:
            x, nfe = ancestral_sample(
                logits_fn, n, length, self.mask_id, p.sample_steps, generator, temperature, self.device
            )
        return x.cpu().numpy(), nfe
