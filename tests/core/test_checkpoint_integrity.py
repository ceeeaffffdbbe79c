"""What the pipeline writes can be trusted: checkpoints and model.pt carry a sha256 digest of their
payload (bytes flipped or NaN written into a tensor are refused as corrupt, not trained on or
mistaken for divergence), files follow the user's umask, and a likelihood bound whose standard
error cannot be estimated reports NaN ("—"), never 0."""

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from dagzoo import io
from dagzoo.errors import CheckpointError, TrainingError
from dagzoo.eval.perplexity import likelihood_metrics
from dagzoo.lifecycle import Model, RunContext
from dagzoo.train import DIGEST_KEY, Trainer, TrainParams, payload_digest, save_torch_file

pytestmark = pytest.mark.probe


# ---------------------------------------------------------------------------------- helpers
def _trainer(run_dir, steps=10, **kw):
    """A tiny model through the real Trainer; its weight (4 x 16 floats) is a tensor to corrupt.
    A constant lr, so a run of 10 steps is the first half of a run of 20."""
    torch.manual_seed(0)
    model = torch.nn.Linear(16, 4)
    params = TrainParams(
        steps=steps,
        lr=0.01,
        warmup_steps=0,
        min_lr_ratio=1.0,
        checkpoint_every=5,
        eval_every=100,
        log_every=1,
        ema_decay=0.9,
        **kw,
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    x = torch.randn(32, 16)
    return Trainer(
        model,
        params,
        run_dir,
        seed=0,
        config_hash="h",
        loss_fn=lambda m, step: m(x).pow(2).mean(),
        units_per_step=32,
        device=torch.device("cpu"),
    )


def _flip_16_floats(path, tensor: torch.Tensor) -> None:
    """Overwrite 16 floats inside `tensor`'s raw bytes in the (uncompressed) zip of a torch file."""
    raw = bytearray(path.read_bytes())
    payload = tensor.contiguous().numpy().tobytes()
    at = raw.find(payload)
    assert at >= 0 and raw.find(payload, at + 1) < 0, "the tensor's bytes are in the file exactly once"
    raw[at + 8 : at + 8 + 64] = np.full(16, 0.5, np.float32).tobytes()
    path.write_bytes(bytes(raw))


def _assert_refused_as_corrupt(err: Exception, path) -> None:
    msg = str(err)
    assert "\n" not in msg, "one line"
    assert str(path) in msg and "is corrupt" in msg and "sha256" in msg
    assert "nothing was overwritten" in msg and "Delete it" in msg and "restore a backup" in msg


@pytest.fixture
def checkpointed(tmp_path):
    """A run stopped at step 10 of 20 (its last.pt at step 10)."""
    _trainer(tmp_path, steps=10).fit()
    ckpt = tmp_path / "checkpoints" / "last.pt"
    assert torch.load(ckpt, weights_only=True)["step"] == 10
    return ckpt


# ---------------------------------------------------------------------------------- checkpoints
def test_flipped_floats_inside_a_checkpoint_tensor_are_refused(tmp_path, checkpointed):
    weight = torch.load(checkpointed, weights_only=True)["model"]["weight"]
    _flip_16_floats(checkpointed, weight)
    # the defect: torch itself loads the damaged tensor without a word
    assert not torch.equal(torch.load(checkpointed, weights_only=True)["model"]["weight"], weight)
    before = checkpointed.read_bytes()
    with pytest.raises(CheckpointError) as e:
        _trainer(tmp_path, steps=20).fit()
    _assert_refused_as_corrupt(e.value, checkpointed)
    assert checkpointed.read_bytes() == before, "nothing is overwritten"


def test_nan_written_into_a_checkpoint_is_corrupt_not_divergence(tmp_path, checkpointed):
    state = torch.load(checkpointed, weights_only=True)
    state["model"]["weight"].fill_(float("nan"))  # re-saved with the old digest
    torch.save(state, checkpointed)
    with pytest.raises(CheckpointError) as e:
        _trainer(tmp_path, steps=20).fit()
    _assert_refused_as_corrupt(e.value, checkpointed)
    assert not isinstance(e.value, TrainingError) and "diverged" not in str(e.value)


@pytest.mark.parametrize("where", ["optimizer", "ema", "step"])
def test_the_digest_covers_optimizer_ema_and_counters(tmp_path, checkpointed, where):
    state = torch.load(checkpointed, weights_only=True)
    if where == "optimizer":
        state["optimizer"]["state"][0]["exp_avg_sq"][0, 0] += 1e-3
    elif where == "ema":
        state["ema"]["shadow"]["bias"][1] = 0.0
    else:
        state["step"] = 5
    torch.save(state, checkpointed)
    with pytest.raises(CheckpointError, match="is corrupt"):
        _trainer(tmp_path, steps=20).fit()


def test_an_intact_checkpoint_resumes_and_equals_an_uninterrupted_run(tmp_path, checkpointed):
    resumed = _trainer(tmp_path, steps=20)
    assert resumed.fit()["resumed_from"] == 10
    straight = _trainer(tmp_path / "straight", steps=20)
    straight.fit()
    for k, v in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[k], v, rtol=0, atol=0)


def test_a_checkpoint_from_before_digests_still_loads_unchecked(tmp_path, checkpointed, capsys):
    state = torch.load(checkpointed, weights_only=True)
    del state[DIGEST_KEY]
    torch.save(state, checkpointed)
    assert _trainer(tmp_path, steps=20).fit()["resumed_from"] == 10
    assert "no sha256 digest" in capsys.readouterr().err


def test_payload_digest_is_deterministic_and_sensitive():
    a = {
        "model": {"w": torch.arange(6.0).reshape(2, 3), "b": torch.zeros(3, dtype=torch.bfloat16)},
        "optimizer": {"state": {0: {"step": torch.tensor(3.0)}}, "param_groups": [{"lr": 0.1, "params": [0]}]},
        "step": 7,
        "ema": None,
    }
    reordered = {
        "step": 7,
        "ema": None,
        "optimizer": a["optimizer"],
        "model": {"b": a["model"]["b"], "w": a["model"]["w"].clone()},
    }
    assert payload_digest(a) == payload_digest(reordered)
    for change in (
        lambda s: s["model"]["w"].__setitem__((0, 0), 0.5),  # a value
        lambda s: s["model"].__setitem__("w", s["model"]["w"].reshape(3, 2)),  # a shape
        lambda s: s["model"].__setitem__("w", s["model"]["w"].double()),  # a dtype
        lambda s: s["optimizer"]["state"][0]["step"].add_(1),  # nested optimizer state
        lambda s: s["optimizer"]["param_groups"][0].__setitem__("lr", 0.2),
    ):
        b = {
            **reordered,
            "model": {k: v.clone() for k, v in reordered["model"].items()},
            "optimizer": {
                "state": {0: {"step": a["optimizer"]["state"][0]["step"].clone()}},
                "param_groups": [dict(a["optimizer"]["param_groups"][0])],
            },
        }
        change(b)
        assert payload_digest(b) != payload_digest(a)


# ---------------------------------------------------------------------------------- model.pt
class _Tiny(Model):
    @dataclass
    class Params(TrainParams):
        pass

    def build(self):
        return torch.nn.Linear(16, 4)

    def step_loss(self, net, step, seed):
        return net(torch.ones(8, 16)).pow(2).mean()

    def units_per_step(self):
        return 8


def test_a_corrupt_model_pt_is_refused(tmp_path):
    params = _Tiny.Params(steps=3, warmup_steps=0, log_every=1, eval_every=100)
    ctx = RunContext(
        run_dir=tmp_path,
        spec={"seed": 0, "config_hash": "h"},
        device=torch.device("cpu"),
        unit="examples",
        on_progress=lambda *a, **k: None,
    )
    _Tiny(params, None, torch.device("cpu")).fit(ctx)
    path = tmp_path / "model.pt"
    weight = _Tiny.load(params, None, tmp_path, torch.device("cpu")).net.weight.detach()
    _flip_16_floats(path, weight)
    with pytest.raises(CheckpointError) as e:
        _Tiny.load(params, None, tmp_path, torch.device("cpu"))
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg and "is corrupt" in msg and "nothing was overwritten" in msg
    assert "train.json" in msg and "restore a backup" in msg


# ---------------------------------------------------------------------------------- file modes
@pytest.fixture(params=[0o022, 0o002])
def umask(request):
    old = os.umask(request.param)
    io._umask.cache_clear()  # read once per process: forget the value read under another umask
    yield request.param
    os.umask(old)
    io._umask.cache_clear()


def test_written_files_follow_the_umask(tmp_path, umask):
    expected = 0o666 & ~umask
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert plain.stat().st_mode & 0o777 == expected  # what every non-atomic write gets
    io.atomic_write_text(tmp_path / "a.txt", "x")
    io.atomic_write_json(tmp_path / "a.json", {"a": 1})
    io.atomic_save_npy(tmp_path / "a.npy", np.arange(3))
    save_torch_file({"w": torch.zeros(2)}, tmp_path / "a.pt")
    _trainer(tmp_path / "run", steps=5).fit()
    for path in ("a.txt", "a.json", "a.npy", "a.pt", "run/checkpoints/last.pt"):
        assert (tmp_path / path).stat().st_mode & 0o777 == expected, path
    assert np.load(tmp_path / "a.npy").tolist() == [0, 1, 2]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == [], "no temporary file is left"
    assert os.umask(umask) == umask, "the umask is restored after it is read"


def _fetch_extract_and_generate(tmp_path) -> tuple[dict, Path]:
    """A verified archive fetched (file:// URL) and extracted into tmp_path/cache, and a
    generated mesh folder tmp_path/shapes: every path that builds aside and renames into place."""
    import hashlib
    import tarfile

    from dagzoo.data.download import RemoteFile, fetch_extracted
    from dagzoo.points.data import generate_shapes

    member = tmp_path / "src" / "data.txt"
    member.parent.mkdir()
    member.write_text("payload")
    archive = tmp_path / "src" / "data.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        t.add(member, arcname="d/data.txt")
    remote = RemoteFile(archive.as_uri(), sha256=hashlib.sha256(archive.read_bytes()).hexdigest())
    return fetch_extracted(remote, tmp_path / "cache"), generate_shapes(tmp_path / "shapes", 1, 1, seed=0)


def test_downloads_extractions_and_generated_meshes_are_on_disk_before_their_rename(tmp_path, monkeypatch):
    # a power cut after the rename must not leave a short download or a half-written tree under
    # the final name: the data are synced first, the rename after (and its directory then)
    events, real = [], {name: getattr(os, name) for name in ("fsync", "sync", "rename", "replace")}

    def record(name):
        def call(*args):
            events.append(
                (
                    name,
                    os.readlink(f"/proc/self/fd/{args[0]}")
                    if name == "fsync"
                    else os.path.basename(args[-1])
                    if args
                    else None,
                )
            )
            return real[name](*args)

        return call

    for name in real:
        monkeypatch.setattr(os, name, record(name))
    _fetch_extract_and_generate(tmp_path)

    def first(kind, name):
        return next(i for i, (k, n) in enumerate(events) if k == kind and n.endswith(name))

    download = first("replace", "data.tar.gz")
    assert events[download - 1][0] == "fsync" and ".data.tar.gz." in events[download - 1][1]
    assert events[download + 1] == ("fsync", str(tmp_path / "cache"))
    for tree, parent in (
        (first("rename", "data.extracted"), tmp_path / "cache"),
        (first("rename", "shapes"), tmp_path),
    ):
        assert events[tree - 1][0] == "sync", events[tree - 1]
        assert events[tree + 1] == ("fsync", str(parent))


def test_downloads_extractions_and_generated_data_follow_the_umask(tmp_path, umask):
    """Files and folders built aside and renamed into place (mkstemp: 0600, mkdtemp: 0700)."""
    files, shapes = _fetch_extract_and_generate(tmp_path)
    for path in [tmp_path / "cache" / "data.tar.gz", files["d/data.txt"], next(shapes.rglob("*.off"))]:
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path
    for folder in [files["d/data.txt"].parent.parent, shapes, next(p for p in shapes.iterdir() if p.is_dir())]:
        assert folder.stat().st_mode & 0o777 == 0o777 & ~umask, folder


# ---------------------------------------------------------------------------------- the bound's SE
def test_the_se_of_a_bound_from_one_sample_per_window_is_nan_not_zero():
    from dagzoo.text.diffusion import nelbo_windows

    g = torch.Generator().manual_seed(0)
    windows = [torch.arange(8), torch.arange(8), torch.arange(5)]

    def noisy_nelbo(x0, t):  # a stochastic per-row bound, as a diffusion LM's
        return x0.shape[1] * (2.0 + t)

    for k, finite in ((1, False), (2, True)):
        nll, var = nelbo_windows(windows, k, g, noisy_nelbo, batch_size=2)
        m = likelihood_metrics(nll, var, n_tokens=21, n_chars=30, prefix="test")
        assert math.isfinite(m["test/bpc"])
        assert math.isfinite(m["test/bpc_se"]) == finite and math.isfinite(m["test/nll_se"]) == finite
        if finite:
            assert m["test/bpc_se"] > 0
    # an estimator that marks unestimable windows NaN; exact models (None) have SE 0
    m = likelihood_metrics(np.ones(3), np.array([0.1, np.nan, 0.2]), 3, 3, "test")
    assert math.isnan(m["test/bpc_se"])
    assert likelihood_metrics(np.ones(3), None, 3, 3, "test")["test/bpc_se"] == 0  # exact: no estimation error


def test_an_unestimable_se_is_a_dash_in_the_report():
    from dagzoo.text.report import _text_table

    def row(exp, seed, se):
        return {
            "experiment": exp,
            "model": "mdlm",
            "likelihood": "bound",
            "seed": seed,
            "test/bpc": 2.0,
            "test/bpc_se": se,
            "test/nll": 1.4,
            "test/ppl": 4.0,
            "train/tokens": 1000.0,
            "train/flops": 1e9,
            "train/time_s": 1.0,
            "train/params": 100.0,
        }

    table = _text_table(
        pd.DataFrame(
            [row("one", 0, float("nan")), row("mixed", 0, 0.01), row("mixed", 1, float("nan")), row("known", 0, 0.0123)]
        )
    )
    cells = {line.split(" | ")[0].strip("| "): line.split(" | ")[4] for line in table if line.startswith("| ")}
    assert cells["one"] == "—" and cells["mixed"] == "—", cells
    assert cells["known"] == "0.0123"


def test_an_atomic_write_syncs_the_file_then_its_directory(tmp_path, monkeypatch):
    # the rename is only durable once the directory is synced: a power cut could otherwise leave
    # the old checkpoint or metrics (or none) behind a file whose data were synced
    synced, real_fsync = [], os.fsync

    def recording_fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    io.atomic_write_json(tmp_path / "metrics.json", {"a": 1})
    save_torch_file({"w": torch.zeros(2)}, tmp_path / "ckpt" / "last.pt")
    assert [os.path.basename(s).split(".")[1] for s in synced[0::2]] == ["metrics", "last"]  # the temp files
    assert synced[1::2] == [str(tmp_path), str(tmp_path / "ckpt")]  # then each one's directory
