"""VAE / Gumbel-softmax math, the discrete likelihood, the receptive field, image data and config."""

import gzip
import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from dagzoo.config import validate_config
from dagzoo.data.images import ImageData, prepare_images
from dagzoo.errors import ConfigError, DataError
from dagzoo.eval.receptive_field import receptive_field
from dagzoo.image.gumbel import gumbel_softmax
from dagzoo.image.losses import categorical_kl_uniform, discretized_logistic_log_prob
from dagzoo.nn.unet import UNet, UNetConfig
from dagzoo.registry import get_model, validate_params
from dagzoo.train import EMA


# ---------------------------------------------------------------------------------- VAE
def test_reparameterized_gradients_match_finite_differences():
    cls = get_model("image", "vae")
    p = validate_params(cls.Params, {"channels": 4, "hidden": 8, "latent_dim": 2}, "vae")
    model = cls(p, (1, 8, 8), torch.device("cpu"))
    net = model.build().double()
    x = torch.rand(3, 1, 8, 8, dtype=torch.float64) * 2 - 1

    def loss():
        torch.manual_seed(0)  # the same eps every call: a deterministic function of the weights
        return model.nelbo(net, x, 0).sum()

    params = [net["encoder"][-1].weight, net["encoder"][-1].bias, net["decoder"].dense[0].weight]
    grads = torch.autograd.grad(loss(), params)
    h = 1e-4  # central differences: O(h^2) truncation; roundoff ~ 1e-16 x |loss| / h
    for param, grad in zip(params, grads):
        for idx in [(0,) * param.dim(), tuple(s - 1 for s in param.shape)]:
            with torch.no_grad():
                param[idx] += h
                up = loss().item()
                param[idx] -= 2 * h
                down = loss().item()
                param[idx] += h
            assert grad[idx].item() == pytest.approx((up - down) / (2 * h), rel=1e-5, abs=1e-8)


def test_gaussian_kl_by_hand():
    from dagzoo.image.losses import gaussian_kl

    # KL(N(1, e^0.5) || N(0, 1)) = 0.5 (1 + e^0.5 - 1 - 0.5)
    assert float(gaussian_kl(torch.tensor([[1.0]]), torch.tensor([[0.5]]))) == pytest.approx(
        0.5 * (math.exp(0.5) - 0.5)
    )


def test_discretized_logistic_sums_to_one_over_the_256_levels():
    levels = torch.arange(256, dtype=torch.float64) / 127.5 - 1
    for mean, log_scale in ((0.1, -2.0), (-0.9, -4.0), (0.99, 0.5), (0.0, -6.5)):
        lp = discretized_logistic_log_prob(levels, torch.full_like(levels, mean), torch.full_like(levels, log_scale))
        assert float(torch.logsumexp(lp, 0).exp()) == pytest.approx(1.0, abs=1e-4)


# ---------------------------------------------------------------------------------- Gumbel-softmax
def test_gumbel_softmax_approaches_one_hot_as_the_temperature_falls():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05])).expand(4000, 4)
    g = torch.Generator().manual_seed(0)
    peak = {
        tau: float(gumbel_softmax(logits, tau, generator=g).max(-1).values.mean()) for tau in (5.0, 1.0, 0.1, 0.001)
    }
    assert peak[5.0] < 0.5 < peak[1.0] < peak[0.1] < peak[0.001] and peak[0.001] > 0.999


def test_gumbel_softmax_argmax_is_distributed_as_the_categorical():
    probs = np.array([0.5, 0.3, 0.15, 0.05])
    logits = torch.log(torch.tensor(probs)).expand(40_000, 4)
    y = gumbel_softmax(logits, 0.7, generator=torch.Generator().manual_seed(1))
    counts = np.bincount(y.argmax(-1).numpy(), minlength=4)
    assert stats.chisquare(counts, probs * counts.sum()).pvalue > 1e-3
    skewed = np.bincount(gumbel_softmax(torch.zeros(40_000, 4), 0.7).argmax(-1).numpy(), minlength=4)
    assert stats.chisquare(skewed, probs * skewed.sum()).pvalue < 1e-6  # the test can tell distributions apart


def test_straight_through_is_one_hot_forward_with_the_soft_gradient():
    logits = torch.randn(5, 3, requires_grad=True)
    g1, g2 = torch.Generator().manual_seed(2), torch.Generator().manual_seed(2)
    hard, soft = gumbel_softmax(logits, 0.5, True, g1), gumbel_softmax(logits, 0.5, False, g2)
    h = hard.detach()
    assert torch.allclose(h.sum(-1), torch.ones(5)) and torch.allclose(h, (h > 0.5).float(), atol=1e-6)
    w = torch.randn(5, 3)
    (ga,) = torch.autograd.grad((hard * w).sum(), logits)
    (gb,) = torch.autograd.grad((soft * w).sum(), logits)
    assert torch.allclose(ga, gb)


def test_categorical_kl_to_uniform():
    assert float(categorical_kl_uniform(torch.zeros(1, 2, 5))) == pytest.approx(0.0, abs=1e-7)
    # one latent, q = (0.9, 0.1), K = 2: 0.9 ln 1.8 + 0.1 ln 0.2
    q = torch.log(torch.tensor([[[0.9, 0.1]]]))
    assert float(categorical_kl_uniform(q)) == pytest.approx(0.9 * math.log(1.8) + 0.1 * math.log(0.2), rel=1e-5)


def test_gumbel_vae_temperature_anneals_to_tau_min():
    cls = get_model("image", "gumbel_vae")
    model = cls(validate_params(cls.Params, {"steps": 100, "tau0": 1.0, "tau_min": 0.5}, "g"), (1, 8, 8), "cpu")
    assert model.temperature(0) == 1.0 and model.temperature(100) == pytest.approx(0.5)
    assert model.temperature(50) == pytest.approx(math.sqrt(0.5))


# ---------------------------------------------------------------------------------- EMA
def test_edm_ema_half_life():
    net = nn.Linear(1, 1, bias=False)
    ema = EMA(net, None, halflife_images=640, rampup_ratio=None, batch_size=64)
    assert ema.current_decay() == pytest.approx(0.5**0.1)  # 10 steps of 64 images halve the weight
    ramp = EMA(net, None, halflife_images=1e6, rampup_ratio=0.05, batch_size=64)
    ramp.updates = 100  # 6,400 images seen: half-life 320 images
    assert ramp.current_decay() == pytest.approx(0.5 ** (64 / 320))


def test_ema_update_is_the_elementwise_average_bit_for_bit():
    """shadow <- shadow * d + w * (1 - d) per float tensor, written out by hand; integer buffers
    (BatchNorm's step count) are copied."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    ema = EMA(net, 0.9)
    by_hand = {k: v.detach().clone() for k, v in net.state_dict().items()}
    for _ in range(4):
        with torch.no_grad():
            for q in net.parameters():
                q.add_(torch.randn_like(q))
            net[1].num_batches_tracked += 1
        ema.update(net)
        d = ema.current_decay()  # the decay this update used (it counts itself first)
        for k, v in net.state_dict().items():
            by_hand[k] = by_hand[k].mul(d).add(v, alpha=1 - d) if v.dtype.is_floating_point else v.clone()
    for k in by_hand:
        assert torch.equal(ema.shadow[k], by_hand[k]), k
    assert int(ema.shadow["1.num_batches_tracked"]) == 4


def test_a_resumed_ema_lives_on_the_models_device():
    # checkpoints load on the CPU; a CPU shadow beside CUDA weights failed the first update after
    # every resume on a GPU. The meta device stands in for a second device here.
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)).to("meta")
    ema = EMA(net, 0.9)
    ema.load_state_dict(
        {"updates": 5, "shadow": {k: torch.zeros(v.shape, dtype=v.dtype) for k, v in net.state_dict().items()}}
    )
    assert ema.updates == 5 and {v.device.type for v in ema.shadow.values()} == {"meta"}


# ---------------------------------------------------------------------------------- receptive field
def test_receptive_field_of_stacked_convolutions():
    three = nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1),
        nn.SiLU(),
        nn.Conv2d(2, 2, 3, padding=1),
        nn.SiLU(),
        nn.Conv2d(2, 1, 3, padding=1),
    )
    assert receptive_field(three, 1)["receptive_field"] == 7  # 1 + 3 x 2
    strided = nn.Sequential(nn.Conv2d(1, 2, 3, stride=2, padding=1), nn.SiLU(), nn.Conv2d(2, 1, 3, padding=1))
    assert receptive_field(strided, 1)["receptive_field"] in (7, 8)  # 3 + 2 x 2 (x2 stride), +-1 at the grid
    normed = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.GroupNorm(2, 4), nn.Conv2d(4, 1, 1))
    rf = receptive_field(normed, 1)
    assert rf["receptive_field"] == 3 and rf["global_mixing"]
    # bias-free convolutions and ReLUs (a zero input would give no gradient at all), BatchNorm
    # (per channel at evaluation: no mixing)
    relu = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, bias=False),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1, bias=False),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 1, 3, padding=1, bias=False),
    )
    assert receptive_field(relu, 1) == {"receptive_field": 7, "global_mixing": False, "clipped": False}


def test_unet_receptive_field_grows_with_depth():
    small = UNet(UNetConfig(channels=8, channel_mult=[1], num_res_blocks=1, attn_resolutions=[]))
    deep = UNet(UNetConfig(channels=8, channel_mult=[1, 2, 2], num_res_blocks=1, attn_resolutions=[4]))
    run = lambda m, x: m(x, torch.zeros(1))  # noqa: E731
    a, b = receptive_field(small, 1, call=run), receptive_field(deep, 1, call=run)
    # conv_in + 2 res blocks (2 convs each, down and up path) + conv_out: 1 + 2 x 6 = 13
    assert a["receptive_field"] == 25 and b["receptive_field"] > 3 * a["receptive_field"] and b["global_mixing"]


# ---------------------------------------------------------------------------------- data
def test_digits_prepare_and_manifest(tmp_path):
    m = prepare_images("digits", tmp_path / "d", resize=16, channels=3)
    assert m["splits"]["train"]["n"] + m["splits"]["test"]["n"] == 1797
    data = ImageData(tmp_path / "d")
    x = data.images("train")
    assert x.shape[1:] == (3, 16, 16) and x.dtype == np.uint8 and x.max() == 255
    assert m["splits"]["train"]["original_shape"] == [1, 8, 8] and data.labels("test").max() == 9


def _idx(path, array, magic_type=0x08):
    header = bytes([0, 0, magic_type, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_is_checksummed_before_decoding(tmp_path, monkeypatch):
    from dagzoo.data import images

    debian = tmp_path / "debian"
    debian.mkdir()
    for key, remote in images.FASHION_MNIST.items():
        _idx(debian / remote.filename, np.zeros((2, 28, 28) if key.endswith("x") else (2,)))
    monkeypatch.setattr(images, "DEBIAN_FASHION_MNIST", debian)
    with pytest.raises(DataError, match="checksum mismatch"):
        prepare_images("fashion_mnist", tmp_path / "f")
    assert not (tmp_path / "f" / "manifest.json").exists()


@pytest.mark.probe
def test_malformed_idx_file_is_reported(tmp_path, monkeypatch):
    from dagzoo.data import images

    path = tmp_path / "bad.gz"
    with gzip.open(path, "wb") as f:
        f.write(bytes([0, 0, 8, 3]) + (5).to_bytes(4, "big") * 3 + b"\x00" * 10)  # promises 125 values
    with pytest.raises(DataError, match="promises shape"):
        images._parse_idx(path, gzip.decompress(path.read_bytes()))


def test_folder_source_and_size_mismatch(tmp_path):
    from PIL import Image

    for split in ("train", "test"):
        (tmp_path / "imgs" / split).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(tmp_path / "imgs" / split / f"{i}.png")
    m = prepare_images(f"folder:{tmp_path / 'imgs'}", tmp_path / "out")
    assert m["splits"]["train"]["shape"] == [3, 8, 8]
    Image.fromarray(np.zeros((9, 8, 3), np.uint8)).save(tmp_path / "imgs" / "train" / "odd.png")
    with pytest.raises(DataError, match="odd.png"):
        prepare_images(f"folder:{tmp_path / 'imgs'}", tmp_path / "out2")


# ---------------------------------------------------------------------------------- config
def _cfg(**exp):
    return {"image": {"data": {"source": "digits", "resize": 16}, "experiments": {"m": exp}}}


@pytest.mark.probe
@pytest.mark.parametrize(
    "exp,match",
    [
        (
            {"model": "ddpm", "samplers": {"s": {"kind": "flow"}}},
            r"image.experiments.m.samplers.s.kind: 'flow' does not apply.*allowed: ddpm, ddim, edm",
        ),
        (
            {"model": "ddpm", "samplers": {"s": {"kind": "ddim", "eta": 2}}},
            r"image.experiments.m.samplers.s.eta: must be <= 1",
        ),
        ({"model": "ddpm", "samplers": {"untrained": {"kind": "ddpm"}}}, r"untrained"),
        (
            {"model": "edm", "precond": "vx"},
            r"image.experiments.m.precond: 'vx' is not allowed; allowed: 'vp', 've', 'iddpm', 'edm'",
        ),
        ({"model": "ddpm", "channel_mult": [1, 2, 2, 2, 2, 2]}, r"divisible by 32"),
        ({"model": "ddpm", "main_sampler": "nope"}, r"main_sampler: 'nope' is not one of its samplers; allowed: ddpm"),
        (
            {"model": "gan"},
            r"image.experiments.m.model: unknown image model 'gan'; allowed: ddpm, edm, flow, gumbel_vae, vae",
        ),
    ],
)
def test_invalid_image_configs_name_the_key_and_the_allowed_values(exp, match):
    with pytest.raises(ConfigError, match=match):
        validate_config(_cfg(**exp))


def test_unknown_image_source():
    with pytest.raises(ConfigError, match="image.data.source: unknown image source 'mnist'"):
        validate_config({"image": {"data": {"source": "mnist"}, "experiments": {"m": {"model": "vae"}}}})
