"""One diffusion core in the form of EDM (Karras et al. 2022, Table 1):

    D(x; sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x; c_noise(sigma)),

where x = y + sigma n is data y plus Gaussian noise of standard deviation sigma ("x-bar" space:
VP / DDPM states x_t are x / sqrt(1 + sigma^2), flow states x_t are x / (1 + sigma)). Training
minimises E[lambda(sigma) ||D(y + n; sigma) - y||^2] (`dagzoo.image.losses.diffusion_loss`) with
sigma drawn from the row's training distribution. Rows: VP, VE, iDDPM and EDM as in Table 1;
DDPM (Ho et al. 2020: epsilon prediction on a discrete linear or cosine beta schedule, L_simple);
rectified flow (x_t = (1-t) y + t n, velocity prediction), which is D with sigma = t / (1 - t):

    c_skip = c_in = 1 / (1 + sigma), c_out = -sigma / (1 + sigma), c_noise = t, lambda = 1 / t^2,

so ||v_pred - (n - y)||^2 = lambda ||D - y||^2 and every sampler below sees one interface.

Nothing here assumes images (a datum is any tensor whose first axis is the batch; per-example
coefficients broadcast over the other axes), but the image family is its only user, so it lives
there.
"""

from __future__ import annotations

import math

import torch

from dagzoo.augment import per_example

Coefs = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


class Preconditioning:
    """A row of EDM Table 1: network pre-conditioning, training noise levels and loss weight."""

    name: str
    sigma_min: float
    sigma_max: float
    sigma_data: float = 0.5

    def coefs(self, sigma: torch.Tensor) -> Coefs:
        """(c_skip, c_out, c_in, c_noise) at `sigma` (same shape as sigma)."""
        raise NotImplementedError

    def sample_sigma(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def loss_weight(self, sigma: torch.Tensor) -> torch.Tensor:
        return 1.0 / sigma**2

    def round_sigma(self, sigma: torch.Tensor) -> torch.Tensor:
        """The nearest noise level the network was trained on (identity for continuous rows)."""
        return sigma


# ---------------------------------------------------------------------------------- Table 1 rows
class VP(Preconditioning):
    """Variance preserving (Song et al. 2021): sigma(t) = sqrt(exp(beta_d t^2 / 2 + beta_min t) - 1)."""

    name = "vp"

    def __init__(self, beta_d: float = 19.9, beta_min: float = 0.1, M: int = 1000, epsilon_t: float = 1e-5):
        self.beta_d, self.beta_min, self.M, self.epsilon_t = beta_d, beta_min, M, epsilon_t
        self.sigma_min = float(self.sigma(torch.tensor(epsilon_t, dtype=torch.float64)))
        self.sigma_max = float(self.sigma(torch.tensor(1.0, dtype=torch.float64)))

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(torch.exp(0.5 * self.beta_d * t**2 + self.beta_min * t) - 1)

    def sigma_inv(self, sigma: torch.Tensor) -> torch.Tensor:
        return (torch.sqrt(self.beta_min**2 + 2 * self.beta_d * torch.log1p(sigma**2)) - self.beta_min) / self.beta_d

    def coefs(self, sigma):
        one = torch.ones_like(sigma)
        return one, -sigma, 1 / torch.sqrt(sigma**2 + 1), (self.M - 1) * self.sigma_inv(sigma)

    def sample_sigma(self, n, generator=None):
        t = self.epsilon_t + (1 - self.epsilon_t) * torch.rand(n, generator=generator)
        return self.sigma(t)


class VE(Preconditioning):
    """Variance exploding (Song et al. 2021): ln sigma ~ U(ln sigma_min, ln sigma_max)."""

    name = "ve"

    def __init__(self, sigma_min: float = 0.02, sigma_max: float = 100.0):
        self.sigma_min, self.sigma_max = sigma_min, sigma_max

    def coefs(self, sigma):
        one = torch.ones_like(sigma)
        return one, sigma, one, torch.log(0.5 * sigma)

    def sample_sigma(self, n, generator=None):
        u = torch.rand(n, generator=generator)
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** u


class _Discrete(Preconditioning):
    """Rows trained on a finite, increasing table of noise levels u_0 < ... < u_{M-1};
    c_noise is the index of the level (as the original networks were conditioned)."""

    u: torch.Tensor  # float64 (M,)

    def _set_table(self, u: torch.Tensor) -> None:
        self.u = u
        self.sigma_min, self.sigma_max = float(u[0]), float(u[-1])

    def index(self, sigma: torch.Tensor) -> torch.Tensor:
        return torch.argmin((sigma.double().reshape(-1, 1) - self.u.to(sigma.device)[None]).abs(), dim=1).reshape(
            sigma.shape
        )

    def round_sigma(self, sigma):
        return self.u.to(sigma.device)[self.index(sigma)].to(sigma.dtype)

    def coefs(self, sigma):
        one = torch.ones_like(sigma)
        return one, -sigma, 1 / torch.sqrt(sigma**2 + 1), self.c_noise(sigma)

    def c_noise(self, sigma):
        return self.index(sigma).to(sigma.dtype)

    def sample_sigma(self, n, generator=None):
        j = torch.randint(0, len(self.u), (n,), generator=generator)
        return self.u[j].float()


class IDDPM(_Discrete):
    """Improved DDPM (Nichol & Dhariwal 2021) as in EDM Table 1: u_M = 0,
    u_{j-1} = sqrt((u_j^2 + 1) / max(alpha_bar(j-1) / alpha_bar(j), C1) - 1),
    alpha_bar(j) = sin(pi/2 j / (M (C2 + 1)))^2; c_noise = M - 1 - argmin_j |u_j - sigma|."""

    name = "iddpm"

    def __init__(self, M: int = 1000, C1: float = 0.001, C2: float = 0.008):
        self.M = M

        def alpha_bar(j):
            return math.sin(0.5 * math.pi * j / M / (C2 + 1)) ** 2

        u = torch.zeros(M + 1, dtype=torch.float64)
        for j in range(M, 0, -1):
            u[j - 1] = math.sqrt((u[j] ** 2 + 1) / max(alpha_bar(j - 1) / alpha_bar(j), C1) - 1)
        # Table 1 indexes the levels from the largest (u_0) down; kept increasing here, so the
        # index k in this table is Table 1's c_noise = M - 1 - j
        self._set_table(torch.flip(u[:M], dims=[0]))


class DDPM(_Discrete):
    """DDPM (Ho et al. 2020): x_t = sqrt(abar_t) y + sqrt(1 - abar_t) eps for t = 1..T, the network
    predicts eps from (x_t, t); in x-bar space sigma_t = sqrt((1 - abar_t) / abar_t), D = x - sigma F
    and lambda = 1/sigma^2 makes the loss L_simple = ||eps - F||^2."""

    name = "ddpm"

    def __init__(self, schedule: str = "linear", T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02):
        self.schedule, self.T = schedule, T
        if schedule == "linear":
            betas = torch.linspace(beta_start, beta_end, T, dtype=torch.float64)
        elif schedule == "cosine":  # Nichol & Dhariwal 2021, s = 0.008, betas clipped at 0.999
            s = 0.008
            steps = torch.arange(T + 1, dtype=torch.float64) / T
            f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
            betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
        else:
            raise ValueError(f"unknown beta schedule {schedule!r}; allowed: linear, cosine")
        self.betas = betas
        self.alphas_bar = torch.cumprod(1 - betas, dim=0)
        self._set_table(torch.sqrt((1 - self.alphas_bar) / self.alphas_bar))


class EDM(Preconditioning):
    """EDM (Karras et al. 2022): c_skip = s_d^2/(s^2+s_d^2), c_out = s s_d / sqrt(s^2+s_d^2),
    c_in = 1/sqrt(s^2+s_d^2), c_noise = ln(s)/4, ln s ~ N(P_mean, P_std^2), lambda = (s^2+s_d^2)/(s s_d)^2."""

    name = "edm"

    def __init__(
        self,
        sigma_data: float = 0.5,
        P_mean: float = -1.2,
        P_std: float = 1.2,
        sigma_min: float = 0.002,
        sigma_max: float = 80.0,
    ):
        self.sigma_data, self.P_mean, self.P_std = sigma_data, P_mean, P_std
        self.sigma_min, self.sigma_max = sigma_min, sigma_max

    def coefs(self, sigma):
        sd2 = self.sigma_data**2
        return (
            sd2 / (sigma**2 + sd2),
            sigma * self.sigma_data / torch.sqrt(sigma**2 + sd2),
            1 / torch.sqrt(sigma**2 + sd2),
            torch.log(sigma) / 4,
        )

    def sample_sigma(self, n, generator=None):
        return torch.exp(self.P_mean + self.P_std * torch.randn(n, generator=generator))

    def loss_weight(self, sigma):
        return (sigma**2 + self.sigma_data**2) / (sigma * self.sigma_data) ** 2


class Flow(Preconditioning):
    """Rectified flow / flow matching with the linear path (Liu et al. 2023; Lipman et al. 2023):
    t ~ U(t_min, 1 - t_min), sigma = t / (1 - t), the network is the velocity v(x_t, t)."""

    name = "flow"

    def __init__(self, t_min: float = 1e-4):
        self.t_min = t_min
        self.sigma_min, self.sigma_max = t_min / (1 - t_min), (1 - t_min) / t_min

    @staticmethod
    def t_of(sigma: torch.Tensor) -> torch.Tensor:
        return sigma / (1 + sigma)

    def coefs(self, sigma):
        c = 1 / (1 + sigma)
        return c, -sigma * c, c, self.t_of(sigma)

    def sample_sigma(self, n, generator=None):
        t = self.t_min + (1 - 2 * self.t_min) * torch.rand(n, generator=generator)
        return t / (1 - t)

    def loss_weight(self, sigma):
        return 1.0 / self.t_of(sigma) ** 2


PRECONDITIONINGS = {"vp": VP, "ve": VE, "iddpm": IDDPM, "edm": EDM}


# ---------------------------------------------------------------------------------- the denoiser
def denoise(net, pre: Preconditioning, x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
    """D(x; sigma) in the dtype of x (float64 when a sampler asks for it); the network runs in
    float32 (or under the caller's autocast)."""
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1)
    if sigma.numel() == 1:
        sigma = sigma.expand(x.shape[0])
    c_skip, c_out, c_in, c_noise = (per_example(c, x) for c in pre.coefs(sigma))
    F_x = net((c_in * x).float(), c_noise.reshape(-1).float())
    return c_skip * x + c_out * F_x.to(x.dtype)
