"""`random`: the same encoder, untrained (its seed's initialisation): the lower reference every
learned representation must beat with the same probe. Training saves the initial weights."""

from __future__ import annotations

from dagzoo.registry import register
from dagzoo.repr.base import ReprModel, ReprParams


@register("repr", "random")
class RandomInit(ReprModel):
    """The untrained encoder (lower reference)."""

    Params = ReprParams

    def fit(self, ctx) -> dict:
        from dagzoo import distributed
        from dagzoo.train import save_torch_file

        net = self.init_network(ctx.seed)
        net.eval()  # BatchNorm then uses its initial running statistics (mean 0, var 1)
        if distributed.state().is_main:
            save_torch_file({"state_dict": net.state_dict(), "meta": self.save_meta()}, ctx.run_dir / "model.pt")
        return {
            "steps": 0,
            "unit": ctx.unit,
            ctx.unit: 0,
            "flops": None,
            "train_time_s": 0.0,
            "resumed_from": None,
            "params": self.num_params(),
        }
