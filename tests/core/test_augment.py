"""The shared batched augmentations and the family-agnostic diffusion core."""

import torch

from dagzoo.augment import random_flip, random_rows, step_generator
from dagzoo.image.losses import diffusion_loss
from dagzoo.image.preconditioning import EDM, denoise


def test_random_flip_flips_exactly_the_drawn_examples():
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2 * 3, 1, 4, 5)[:6]
    out = random_flip(x, torch.Generator().manual_seed(1))
    drawn = torch.rand(6, generator=torch.Generator().manual_seed(1)) < 0.5
    assert 0 < drawn.sum() < 6
    for i in range(6):
        assert torch.equal(out[i], x[i].flip(-1) if drawn[i] else x[i])


def test_augmentations_are_functions_of_seed_and_step_and_work_on_any_rank():
    data = torch.randn(50, 7, 3)  # e.g. 50 clouds of 7 points
    a = random_flip(random_rows(data, 8, step_generator(1, 5, 0x11)), step_generator(1, 5, 0x22), dim=1)
    b = random_flip(random_rows(data, 8, step_generator(1, 5, 0x11)), step_generator(1, 5, 0x22), dim=1)
    c = random_rows(data, 8, step_generator(1, 6, 0x11))
    assert torch.equal(a, b) and a.shape == (8, 7, 3) and not torch.equal(a, c)


def test_the_diffusion_core_takes_data_of_any_rank():
    pre = EDM()
    net = lambda x, c: x * 0.5 + c.reshape(-1, *([1] * (x.dim() - 1)))  # noqa: E731 - any F
    for shape in ((4, 3), (4, 2, 3), (4, 1, 2, 3)):
        y = torch.randn(*shape, dtype=torch.float64)
        sigma = torch.full((4,), 0.7, dtype=torch.float64)
        c_skip, c_out, c_in, c_noise = pre.coefs(sigma)
        D = denoise(net, pre, y, sigma)
        expected = c_skip[0] * y + c_out[0] * (c_in[0] * y * 0.5 + c_noise[0])
        torch.testing.assert_close(D, expected.to(D.dtype), rtol=1e-6, atol=1e-6)
        assert diffusion_loss(net, pre, y.float(), torch.Generator().manual_seed(0)).dim() == 0
