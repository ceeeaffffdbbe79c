"""BD3-LM's clipped schedules: windows validated with their key path, the search grid, common
random numbers across windows, and the clip-search stage through the DAG (cached like every
stage: an evaluation setting changed reruns neither the search nor the training)."""

import json

import numpy as np
import pytest
import torch
import yaml

from dagzoo.errors import ConfigError
from dagzoo.registry import validate_params
from dagzoo.text.clip import windows_of
from dagzoo.text.models.bd3lm import BD3LM
from dagzoo.text.models.mdlm import MDLM

from conftest import planned_jobs, small_corpus, snakemake


@pytest.mark.parametrize(
    "clip, message",
    [
        ([0.8, 0.3], r"p.clip: \[0.8, 0.3\] is not a window; allowed: \[low, high\] with 0 <= low < high <= 1"),
        ([0.2, 1.5], r"p.clip: \[0.2, 1.5\] is not a window"),
        ([0.5, 0.5], r"p.clip: \[0.5, 0.5\] is not a window"),
        ([0.1, 0.2, 0.3], r"is not a window"),
        ("serach", r"p.clip: 'serach' is not allowed; allowed: \[low, high\] or 'search'"),
    ],
)
def test_a_bad_window_is_refused_with_its_key_path(clip, message):
    for cls in (MDLM, BD3LM):
        with pytest.raises(ConfigError, match=message):
            validate_params(cls.Params, {"clip": clip}, "p")


def test_the_search_grid_keeps_windows_inside_the_unit_interval():
    assert windows_of([0.0, 0.3, 0.6], [0.5, 1.0]) == [(0.0, 0.5), (0.0, 1.0), (0.3, 0.8)]
    with pytest.raises(ConfigError, match=r"p.clip_starts: no start \+ width"):
        validate_params(MDLM.Params, {"clip": "search", "clip_starts": [0.8], "clip_widths": [0.5]}, "p")
    assert validate_params(BD3LM.Params, {}, "p").clip == [0.3, 0.8]  # BD3-LM's default window
    assert validate_params(MDLM.Params, {}, "p").clip == [0.0, 1.0]  # MDLM's: the full range (from eps)


def test_training_times_follow_the_window_and_share_random_numbers():
    from types import SimpleNamespace

    data = SimpleNamespace(vocab_size=5)
    model = BD3LM(validate_params(BD3LM.Params, {"clip": [0.4, 0.6], "block_length": 2}, "p"), data, None)
    t = model.training_times(3, 8, torch.Generator().manual_seed(0))
    assert t.shape == (3, 8) and t.min() >= 0.4 and t.max() <= 0.6
    assert torch.equal(t[:, 0::2], t[:, 1::2])  # one t per block of 2
    # the same generator state in another window gives the affinely mapped draws (common random numbers)
    u = model.times_in(3, 8, torch.Generator().manual_seed(0), 0.0, 1.0)  # U[eps, 1]: raised to eps
    eps = model.params.eps
    assert torch.allclose(t, 0.4 + 0.2 * (u - eps) / (1 - eps), atol=1e-6)
    mdlm = MDLM(validate_params(MDLM.Params, {"eps": 0.01}, "p"), data, None)
    assert mdlm.training_times(100, 4, torch.Generator().manual_seed(1)).min() >= 0.01  # raised to eps


def _config(tmp_path, nelbo_samples=2):
    corpus = small_corpus(tmp_path / "corpus.txt", lines=300)
    tiny = {"n_layer": 1, "n_head": 2, "d_model": 32, "batch_size": 8, "eval_every": 10, "log_every": 5}
    cfg = {
        "results": str(tmp_path / "results"),
        "seeds": [0],
        "threads": 1,
        "text": {
            "corpus": f"file:{corpus}",
            "split": {"val": 0.1, "test": 0.1},
            "eval": {"window": 16, "val_tokens": 256, "samples": 0, "sample_length": 16},
            "experiments": {
                "searched": {
                    "model": "bd3lm",
                    "block_length": 4,
                    "steps": 20,
                    "clip": "search",
                    "clip_pilot_steps": 10,
                    "clip_batches": 4,
                    "clip_starts": [0.0, 0.5],
                    "clip_widths": [0.5, 1.0],
                    "loss_var_batches": 4,
                    "nelbo_samples": nelbo_samples,
                    **tiny,
                },
            },
        },
    }
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_the_search_stage_chooses_a_window_that_training_uses(tmp_path):
    r = snakemake(tmp_path, _config(tmp_path))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    run = tmp_path / "results" / "text" / "searched" / "0"
    found = json.loads((run / "clip_search.json").read_text())
    assert [(w["low"], w["high"]) for w in found["table"]] == [(0.0, 0.5), (0.0, 1.0), (0.5, 1.0)]
    best = min(found["table"], key=lambda w: w["var"])
    assert found["window"] == [best["low"], best["high"]] and found["pilot_steps"] == 10
    assert (run / "clip_search" / "model.pt").exists()  # the pilot, beside the run
    m = json.loads((run / "metrics.json").read_text())["metrics"]
    assert [m["model/clip_low"], m["model/clip_high"]] == found["window"]
    assert m["val/loss_var"] > 0 and m["val/loss_var_full"] > 0 and np.isfinite(m["test/bpc"])
    report = (tmp_path / "results" / "report" / "report.md").read_text()
    assert "### Training windows" in report and f"[{found['window'][0]:g}, {found['window'][1]:g}]" in report
    # an evaluation setting reruns the evaluation (and the report) only, not the search or the training
    jobs = planned_jobs(snakemake(tmp_path, _config(tmp_path, nelbo_samples=3), "-n").stdout)
    assert sorted(r for r, _ in jobs) == ["all", "report", "text_evaluate"], jobs


def test_bd3lms_former_beta_and_omega_point_to_clip():
    with pytest.raises(ConfigError, match=r"e.beta: BD3-LM's window is one key now; write clip: \[beta, omega\]"):
        BD3LM.check_written({"model": "bd3lm", "beta": 0.45, "omega": 0.95}, "e")
    # the config's validation says so before it calls the key unknown
    from dagzoo.config import validate_config

    with pytest.raises(ConfigError, match=r"text.experiments.b.omega: BD3-LM's window is one key now"):
        validate_config({"text": {"corpus": "kjv", "experiments": {"b": {"model": "bd3lm", "omega": 0.9}}}})
