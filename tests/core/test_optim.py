"""The optimiser choices of TrainParams: LARS against its update written out by hand, SGD and the
step schedule, and that each trains the same toy problem to its optimum."""

import pytest
import torch

from dagzoo.optim import LARS, make_optimizer
from dagzoo.train import TrainParams, lr_at


def test_lars_step_matches_the_hand_computed_update():
    # solo-learn's LARS: r = eta ||w|| / (||g|| + wd ||w||), v <- m v + r (g + wd w), w <- w - lr v.
    # g is not parallel to w (there SimCLR's TF variant, eta ||w|| / ||g + wd w||, differs), and lr
    # changes between the steps (lr outside the momentum buffer rescales the old velocity too)
    w0 = torch.tensor([[3.0, 4.0]])  # ||w|| = 5
    g = torch.tensor([[0.8, -0.6]])  # ||g|| = 1, orthogonal to w
    w = torch.nn.Parameter(w0.clone())
    opt = LARS([w], lr=0.5, momentum=0.9, weight_decay=0.1, eta=0.02)
    w.grad = g.clone()
    opt.step()
    v1 = (0.02 * 5.0 / (1.0 + 0.1 * 5.0)) * (g + 0.1 * w0)  # r = 0.1 / 1.5
    assert torch.allclose(w.detach(), w0 - 0.5 * v1, atol=1e-7)
    w1 = w.detach().clone()
    opt.param_groups[0]["lr"] = 0.25
    w.grad = g.clone()
    opt.step()
    v2 = 0.9 * v1 + (0.02 * w1.norm() / (1.0 + 0.1 * w1.norm())) * (g + 0.1 * w1)
    assert torch.allclose(w.detach(), w1 - 0.25 * v2, atol=1e-7)


def test_lars_takes_the_raw_gradient_where_a_norm_is_zero():
    # solo-learn: no decay, no trust ratio, no clip for a zero weight or a zero gradient
    for w0, g in ((torch.tensor([[3.0, 4.0]]), torch.zeros(1, 2)), (torch.zeros(1, 2), torch.tensor([[0.6, 0.8]]))):
        w = torch.nn.Parameter(w0.clone())
        opt = LARS([w], lr=2.0, momentum=0.9, weight_decay=0.1, eta=0.02, clip=True)
        w.grad = g.clone()
        opt.step()
        assert torch.allclose(w.detach(), w0 - 2.0 * g)


def test_clipped_lars_caps_the_effective_rate_at_lr():
    w0, g = torch.tensor([[3.0, 4.0]]), torch.tensor([[0.8, -0.6]])
    for lr, rate in ((0.01, 0.01), (1.0, 0.02 * 5.0 / 1.5)):  # min(eta ||w|| / (||g|| + wd ||w||), lr)
        w = torch.nn.Parameter(w0.clone())
        opt = LARS([w], lr=lr, momentum=0.9, weight_decay=0.1, eta=0.02, clip=True)
        w.grad = g.clone()
        opt.step()
        assert torch.allclose(w.detach(), w0 - rate * (g + 0.1 * w0), atol=1e-7)


def test_biases_are_neither_decayed_nor_adapted_by_lars():
    net = torch.nn.Linear(2, 1)
    opt = make_optimizer(net, TrainParams(optimizer="lars", lr=0.1, momentum=0.0, weight_decay=0.5))
    bias0 = net.bias.detach().clone()
    net.weight.grad, net.bias.grad = torch.zeros_like(net.weight), torch.ones_like(net.bias)
    opt.step()
    assert torch.allclose(net.bias.detach(), bias0 - 0.1)  # plain SGD step, no trust ratio


def test_step_schedule():
    p = TrainParams(steps=100, lr=1.0, warmup_steps=10, schedule="step", lr_step_every=20, lr_step_gamma=0.5)
    assert lr_at(0, p) == pytest.approx(0.1)
    assert [lr_at(s, p) for s in (10, 29, 30, 49, 50)] == pytest.approx([1.0, 1.0, 0.5, 0.5, 0.25])


@pytest.mark.parametrize("name,lr", [("adamw", 0.05), ("sgd", 0.1), ("lars", 0.1)])
def test_each_optimiser_reaches_the_least_squares_solution(name, lr):
    torch.manual_seed(0)
    x = torch.randn(64, 3)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.3
    net = torch.nn.Linear(3, 1)
    p = TrainParams(optimizer=name, lr=lr, weight_decay=0.0, steps=600, warmup_steps=0, min_lr_ratio=0.0, lars_eta=1.0)
    opt = make_optimizer(net, p)
    for step in range(p.steps):  # LARS's step is eta ||w|| lr whatever the gradient: it needs the decay
        for group in opt.param_groups:
            group["lr"] = lr_at(step, p)
        opt.zero_grad()
        ((net(x) - y) ** 2).mean().backward()
        opt.step()
    assert torch.allclose(net.weight.detach(), torch.tensor([[1.0, -2.0, 0.5]]), atol=2e-2)
    assert net.bias.item() == pytest.approx(0.3, abs=2e-2)


def test_clipped_lars_never_steps_further_than_plain_sgd():
    w = torch.nn.Parameter(torch.tensor([[30.0, 40.0]]))  # ||w|| = 50, ||g|| = 0.01: ratio 100 unclipped
    opt = LARS([w], lr=0.1, momentum=0.0, eta=0.02, clip=True)
    w.grad = torch.tensor([[0.006, 0.008]])
    opt.step()
    assert torch.allclose(w.detach(), torch.tensor([[30.0 - 0.1 * 0.006, 40.0 - 0.1 * 0.008]]))
    # a trust ratio below lr is the step size itself: 0.02 * 5 / 50 = 0.002 < lr
    w = torch.nn.Parameter(torch.tensor([[3.0, 4.0]]))
    opt = LARS([w], lr=0.1, momentum=0.0, eta=0.02, clip=True)
    w.grad = torch.tensor([[30.0, 40.0]])
    opt.step()
    assert torch.allclose(w.detach(), torch.tensor([[3.0 - 0.002 * 30, 4.0 - 0.002 * 40]]))
