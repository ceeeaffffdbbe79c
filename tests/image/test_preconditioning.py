"""The EDM-form diffusion core and the samplers, against the papers' formulas and exact cases."""

import math

import pytest
import torch

from dagzoo.image.losses import diffusion_loss
from dagzoo.image.preconditioning import DDPM, EDM, IDDPM, VE, VP, Flow, denoise
from dagzoo.image.samplers import (
    DDIMSampler,
    DDPMSampler,
    Denoiser,
    EDMSampler,
    FlowSampler,
    ddim_step,
    edm_sigma_grid,
    euler_step,
    flow_euler_step,
    sample,
)
from dagzoo.nn.unet import UNet, UNetConfig


def _t(x):
    return torch.tensor([x], dtype=torch.float64)


# ---------------------------------------------------------------------------------- EDM Table 1
def test_edm_preconditioning_matches_table1_by_hand():
    # sigma = 1, sigma_data = 0.5: c_skip = 0.25 / 1.25, c_out = 0.5 / sqrt(1.25), c_in = 1 / sqrt(1.25), c_noise = 0
    c_skip, c_out, c_in, c_noise = (float(c) for c in EDM().coefs(_t(1.0)))
    assert c_skip == pytest.approx(0.2)
    assert c_out == pytest.approx(0.4472135955)
    assert c_in == pytest.approx(0.894427191)
    assert c_noise == pytest.approx(0.0)
    assert float(EDM().coefs(_t(math.e**4))[3]) == pytest.approx(1.0)  # ln(sigma) / 4
    assert float(EDM().loss_weight(_t(1.0))) == pytest.approx(1.25 / 0.25)  # (s^2 + sd^2) / (s sd)^2


def test_vp_ve_rows_by_hand():
    vp = VP()
    # sigma(0.5) = sqrt(exp(19.9 * 0.25 / 2 + 0.1 * 0.5) - 1) = sqrt(exp(2.5375) - 1)
    s = math.sqrt(math.exp(2.5375) - 1)
    assert float(vp.sigma(_t(0.5))) == pytest.approx(s)
    c_skip, c_out, c_in, c_noise = (float(c) for c in vp.coefs(_t(s)))
    assert (c_skip, c_out, c_in) == pytest.approx((1.0, -s, 1 / math.sqrt(s * s + 1)))
    assert c_noise == pytest.approx(999 * 0.5)  # (M - 1) sigma^-1(sigma)
    c_skip, c_out, c_in, c_noise = (float(c) for c in VE().coefs(_t(4.0)))
    assert (c_skip, c_out, c_in, c_noise) == pytest.approx((1.0, 4.0, 1.0, math.log(2.0)))


def test_iddpm_levels_follow_the_recursion_and_c_noise_is_the_table1_index():
    M, C1, C2 = 1000, 0.001, 0.008
    abar = [math.sin(0.5 * math.pi * j / M / (C2 + 1)) ** 2 for j in range(M + 1)]
    u = [0.0] * (M + 1)
    for j in range(M, 0, -1):
        u[j - 1] = math.sqrt((u[j] ** 2 + 1) / max(abar[j - 1] / abar[j], C1) - 1)
    pre = IDDPM()
    assert float(pre.sigma_max) == pytest.approx(u[0], rel=1e-9)  # Table 1 indexes u_0 as the largest
    assert float(pre.sigma_min) == pytest.approx(u[M - 1], rel=1e-9)
    for j in (0, 17, 500, 999):
        c_noise = float(pre.coefs(_t(u[j]))[3])
        assert c_noise == M - 1 - j  # c_noise = M - 1 - argmin_j |u_j - s|


def test_ddpm_row_is_epsilon_prediction_with_l_simple():
    pre = DDPM("linear", T=1000)
    assert float(pre.betas[0]) == pytest.approx(1e-4) and float(pre.betas[-1]) == pytest.approx(0.02)
    k = 300
    abar = float(torch.prod(1 - pre.betas[: k + 1]))
    assert float(pre.u[k]) == pytest.approx(math.sqrt((1 - abar) / abar))
    # x-bar = x_t / sqrt(abar): c_in x-bar = x_t, and D = x-bar - sigma eps_hat
    c_skip, c_out, c_in, c_noise = (float(c) for c in pre.coefs(pre.u[k : k + 1]))
    assert (c_skip, c_out, c_in, c_noise) == pytest.approx((1.0, -float(pre.u[k]), math.sqrt(abar), k))
    cos = DDPM("cosine", T=1000)
    assert float(cos.alphas_bar[0]) > float(cos.alphas_bar[-1]) and float(cos.betas.max()) <= 0.999


@pytest.mark.parametrize("pre", [VP(), VE(), IDDPM(), EDM(), DDPM(), Flow()], ids=lambda p: p.name)
def test_effective_loss_weight_is_one(pre):
    # EDM eq. 8: lambda(sigma) c_out(sigma)^2 = 1 for every row, i.e. the network's target has unit weight
    sigma = torch.tensor([0.05, 0.7, 3.0, 40.0], dtype=torch.float64)
    c_out = pre.coefs(sigma)[1]
    assert torch.allclose(pre.loss_weight(sigma) * c_out**2, torch.ones_like(sigma))


def test_flow_row_equals_velocity_matching():
    torch.manual_seed(0)
    net = lambda x, c: torch.tanh(x) * c.reshape(-1, 1, 1, 1) + 0.3  # noqa: E731 - any velocity field
    y, n = torch.randn(4, 1, 3, 3, dtype=torch.float64), torch.randn(4, 1, 3, 3, dtype=torch.float64)
    t = torch.tensor([0.1, 0.4, 0.6, 0.9], dtype=torch.float64)
    x_t = (1 - t.reshape(-1, 1, 1, 1)) * y + t.reshape(-1, 1, 1, 1) * n
    v_loss = (net(x_t, t) - (n - y)) ** 2
    pre = Flow()
    sigma = t / (1 - t)
    D = denoise(lambda x, c: net(x.double(), c.double()), pre, x_t * (1 + sigma.reshape(-1, 1, 1, 1)), sigma)
    assert torch.allclose(pre.loss_weight(sigma).reshape(-1, 1, 1, 1) * (D - y) ** 2, v_loss, atol=1e-10)


def test_edm_training_noise_distribution():
    g = torch.Generator().manual_seed(0)
    ln = torch.log(EDM().sample_sigma(200_000, g))
    assert float(ln.mean()) == pytest.approx(-1.2, abs=0.01) and float(ln.std()) == pytest.approx(1.2, abs=0.01)


# ---------------------------------------------------------------------------------- samplers
def _random_unet(seed=0):
    torch.manual_seed(seed)
    net = UNet(
        UNetConfig(channels=8, channel_mult=[1, 2], num_res_blocks=1, attn_resolutions=[4], dropout=0.0, resolution=8)
    ).double()
    with torch.no_grad():
        for p in net.parameters():  # zero-initialised output layers would make every field trivial
            p.normal_(0, 0.2)
    return lambda x, c: net(x.double(), c.double())


def test_ddim_eta0_step_is_an_euler_step_of_the_pf_ode_and_of_flow_matching():
    net = _random_unet()
    pre = DDPM()
    den = Denoiser(net, pre)
    x_t = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    k, j = 700, 450
    abar_t, abar_s = float(pre.alphas_bar[k]), float(pre.alphas_bar[j])
    ddim = ddim_step(den, x_t, abar_t, abar_s, eta=0.0, sigma_t=float(pre.u[k]))
    # the same step in x-bar = x_t / sqrt(abar) space, sigma = sqrt((1 - abar) / abar)
    euler = euler_step(den, x_t / math.sqrt(abar_t), float(pre.u[k]), math.sqrt((1 - abar_s) / abar_s))
    assert torch.allclose(ddim, math.sqrt(abar_s) * euler, atol=1e-10)

    flow = Flow()
    fden = Denoiser(net, flow)
    x = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    t, s = 0.8, 0.55
    step_t = flow_euler_step(fden.velocity, x, t, s)
    step_sigma = euler_step(fden, x / (1 - t), t / (1 - t), s / (1 - s))  # x-bar = x_t / (1 - t)
    assert torch.allclose(step_t, (1 - s) * step_sigma, atol=1e-10)


@pytest.mark.parametrize("steps", [1, 5, 18])
def test_heun_with_n_steps_uses_2n_minus_1_evaluations(steps):
    net = _random_unet()
    g = torch.Generator().manual_seed(0)
    for pre, params in ((EDM(), EDMSampler(steps=steps)), (Flow(), FlowSampler(steps=steps, heun=True))):
        den = Denoiser(net, pre)
        sample(den, params, (2, 1, 8, 8), g, "cpu")
        assert den.nfe == 2 * steps - 1
    den = Denoiser(net, EDM())
    sample(den, EDMSampler(steps=steps, heun=False), (2, 1, 8, 8), g, "cpu")
    assert den.nfe == steps


def test_edm_sigma_grid_by_hand():
    grid = edm_sigma_grid(3, 0.002, 80.0, 7.0)
    mid = ((80 ** (1 / 7) + 0.002 ** (1 / 7)) / 2) ** 7
    assert grid.tolist() == pytest.approx([80.0, mid, 0.002, 0.0])


class PointMassNet:
    """The exact network for data that is one image c: D(x; sigma) = c for every x and sigma."""

    def __init__(self, pre, c):
        self.pre, self.c = pre, c

    def __call__(self, x_in, c_noise):
        x_in, c_noise = x_in.double(), c_noise.double()
        if isinstance(self.pre, Flow):  # input x_t, c_noise = t: the velocity (x_t - c) / t
            return (x_in - self.c) / c_noise.reshape(-1, 1, 1, 1)
        if isinstance(self.pre, DDPM):
            sigma = self.pre.u[c_noise.round().long()]
        else:  # EDM: c_noise = ln(sigma) / 4
            sigma = torch.exp(4 * c_noise)
        c_skip, c_out, c_in, _ = (v.reshape(-1, 1, 1, 1) for v in self.pre.coefs(sigma))
        x = x_in / c_in
        return (self.c - c_skip * x) / c_out


@pytest.mark.parametrize(
    "pre,params",
    [
        (DDPM(), DDPMSampler()),
        (DDPM(), DDPMSampler(variance="large")),
        (DDPM(), DDIMSampler(steps=10)),
        (DDPM(), DDIMSampler(steps=10, eta=1.0)),
        (DDPM(), EDMSampler(steps=8)),
        (EDM(), EDMSampler(steps=8)),
        (EDM(), EDMSampler(steps=8, S_churn=10.0)),
        (Flow(), FlowSampler(steps=6, heun=True)),
    ],
    ids=lambda v: getattr(v, "name", type(v).__name__),
)
def test_every_sampler_recovers_a_point_mass_with_the_exact_denoiser(pre, params):
    c = torch.linspace(-0.8, 0.8, 16, dtype=torch.float64).reshape(1, 1, 4, 4)
    den = Denoiser(PointMassNet(pre, c), pre)
    x = sample(den, params, (3, 1, 4, 4), torch.Generator().manual_seed(1), "cpu")
    assert torch.allclose(x, c.expand_as(x), atol=1e-6)


def test_diffusion_loss_of_the_exact_denoiser_is_zero_and_a_wrong_one_is_not():
    c = torch.full((1, 1, 4, 4), 0.25, dtype=torch.float64)
    for pre in (EDM(), DDPM(), Flow(t_min=0.01)):
        assert float(diffusion_loss(PointMassNet(pre, c), pre, c.expand(8, -1, -1, -1).clone())) < 1e-12
        assert float(diffusion_loss(PointMassNet(pre, c + 0.1), pre, c.expand(8, -1, -1, -1).clone())) > 1e-3


def test_ddim_with_eta_1_is_the_ddpm_ancestral_step():
    # Song et al. 2021: eta = 1 between consecutive timesteps is DDPM's posterior step with variance beta-tilde
    net = _random_unet(1)
    pre = DDPM()
    den = Denoiser(net, pre)
    k = 400
    abar_t, abar_s, beta = float(pre.alphas_bar[k]), float(pre.alphas_bar[k - 1]), float(pre.betas[k])
    x_t, z = torch.randn(2, 1, 8, 8, dtype=torch.float64), torch.randn(2, 1, 8, 8, dtype=torch.float64)
    ddim = ddim_step(den, x_t, abar_t, abar_s, eta=1.0, sigma_t=float(pre.u[k]), noise=z)
    x0 = den(x_t / math.sqrt(abar_t), float(pre.u[k]))
    mean = math.sqrt(abar_s) * beta / (1 - abar_t) * x0 + math.sqrt(1 - beta) * (1 - abar_s) / (1 - abar_t) * x_t
    beta_tilde = (1 - abar_s) / (1 - abar_t) * beta
    assert torch.allclose(ddim, mean + math.sqrt(beta_tilde) * z, atol=1e-10)
