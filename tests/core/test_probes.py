"""The hardening probe set: every bad input we know of gets one line naming the key
or file and what is allowed (exit status 1), no traceback, and nothing written that looks
complete.

This module holds the config probes (`probe_catalogue.CONFIG_PROBES`, one table) and what must
stay valid next to them. The probes that need prepared data, a trained run or a server (damaged
files, checkpoints, archives, hostile pickles and paths, credentials, kills) live beside their
fixtures in the topic modules, marked `probe`; `pytest -m probe` runs the whole set and
pytest's summary ends with its count (conftest.py)."""

import contextlib
import io
import re
import subprocess

import pytest

from dagzoo import cli
from dagzoo.config import load_config, validate_config
from dagzoo.errors import ConfigError
from dagzoo.image.samplers import EDMSampler
from dagzoo.registry import param, validate_params

from conftest import BIN, ROOT, dagzoo
from probe_catalogue import CONFIG_PROBES, render

pytestmark = pytest.mark.probe

PROBES = {pid: (edit, needle) for pid, edit, needle in CONFIG_PROBES}


def test_probe_ids_are_unique_and_every_probe_names_what_it_expects():
    assert len(PROBES) == len(CONFIG_PROBES) >= 100
    assert all(needle for _, needle in PROBES.values())


def _validate_in_process(path) -> tuple[int, str]:
    """`dagzoo validate-config PATH` through the CLI's own main() (an exception escaping it
    would be a traceback and fails the test), without a process start per probe."""
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        status = cli.main(["validate-config", str(path)])
    return status, err.getvalue()


def assert_one_line_error(status: int, stderr: str, needle: str, prefix: str = "dagzoo: error: ") -> str:
    assert "Traceback" not in stderr, stderr[-2000:]
    lines = stderr.strip().splitlines()
    assert status == 1 and len(lines) == 1, (status, stderr)
    assert lines[0].startswith(prefix) and needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.mark.parametrize("pid", PROBES)
def test_validate_config_refuses_in_one_line(tmp_path, pid):
    edit, needle = PROBES[pid]
    path = render(edit, tmp_path / "bad.yaml")
    before = set(tmp_path.rglob("*"))
    assert_one_line_error(*_validate_in_process(path), needle)
    assert set(tmp_path.rglob("*")) == before, "validation writes nothing"


@pytest.mark.parametrize("pid", ["yaml_not_utf8", "text_lr_nan", "points_k_beyond_points"])
def test_the_installed_command_gives_the_same_line(tmp_path, pid):
    edit, needle = PROBES[pid]
    r = dagzoo("validate-config", render(edit, tmp_path / "bad.yaml"), check=False)
    assert_one_line_error(r.returncode, r.stderr, needle)


@pytest.mark.parametrize("pid", ["duplicate_experiment", "seeds_duplicate", "image_attention_resolution"])
def test_a_dry_run_refuses_before_any_job(tmp_path, pid):
    """The Snakefile validates with the same functions: the same message, before any job or file."""
    edit, needle = PROBES[pid]
    render(edit, tmp_path / "bad.yaml")
    r = subprocess.run(
        [
            str(BIN / "snakemake"),
            "-n",
            "-s",
            str(ROOT / "Snakefile"),
            "--directory",
            "work",
            "--configfile",
            "bad.yaml",
            "--cores",
            "1",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    out = r.stdout + r.stderr
    assert r.returncode != 0
    message = next(line for line in out.splitlines() if line.startswith("dagzoo: invalid config: "))
    assert needle in message and "invalid config: invalid config" not in message, message
    assert "Traceback" not in out
    assert not re.search(r'File "[^"]*dagzoo[/\\][^"]*\.py"', out), out
    assert not (tmp_path / "work" / "results").exists()


def test_make_validates_a_config_before_snakemake_reads_it(tmp_path):
    """Snakemake parses --configfile itself (a traceback for a file that is not UTF-8): `make run`
    and `make dry-run` check it first, passing the path quoted."""
    edit, needle = PROBES["yaml_not_utf8"]
    path = render(edit, tmp_path / "we'ird; `id` cfg.yaml")
    # -o: the venv counts as installed (this test must not reinstall it)
    r = subprocess.run(
        ["make", "-s", "-C", str(ROOT), "-o", str(BIN / "dagzoo"), "dry-run", f"CONFIG={path}", f"VENV={BIN.parent}"],
        capture_output=True,
        text=True,
    )
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    assert "not valid UTF-8 (byte 16" in r.stderr and "we'ird" in r.stderr


# ------------------------------------------------------------------------------ what stays valid
def test_merge_keys_and_their_overrides_are_not_duplicates(tmp_path):
    path = tmp_path / "merge.yaml"
    path.write_text("""\
backbone: &backbone {model: transformer, d_model: 64, lr: 0.001}
text:
  corpus: kjv
  experiments:
    small:
      <<: *backbone
      lr: 0.003
    wide:
      <<: *backbone
      d_model: 128
""")
    exps = load_config(path)["text"]["experiments"]
    assert exps["small"] == {"model": "transformer", "d_model": 64, "lr": 0.003}
    assert exps["wide"]["d_model"] == 128


def test_an_infinite_sampler_threshold_is_allowed_where_declared():
    # S_max = inf is EDM's "churn at every noise level"; the field says so with allow_inf
    cfg = {
        "image": {
            "data": {"source": "digits"},
            "experiments": {"d": {"model": "ddpm", "samplers": {"edm": {"kind": "edm", "S_max": float("inf")}}}},
        }
    }
    assert validate_config(cfg)
    with pytest.raises(ConfigError, match="S_max: must be >= 0.0, got -inf"):
        validate_params(EDMSampler, {"S_max": float("-inf")}, "s")
    with pytest.raises(ConfigError, match=r"s\.S_max: must be a finite number or \.inf / -\.inf, got nan"):
        validate_params(EDMSampler, {"S_max": float("nan")}, "s")


def test_gt_is_an_exclusive_minimum_and_list_constraints_hold_per_item():
    from dataclasses import dataclass

    @dataclass
    class P:
        rate: float = param(1.0, "", gt=0.0)
        widths: list[int] = param([4], "", min_len=1, max_len=3, min=1)

    assert validate_params(P, {"rate": 1e-9, "widths": [1, 2, 3]}, "p").rate == 1e-9
    for bad in (0, 0.0, -1.0):
        with pytest.raises(ConfigError, match=r"p\.rate: must be > 0\.0"):
            validate_params(P, {"rate": bad}, "p")
    for bad, message in [
        ([], r"p\.widths: must have at least 1 item"),
        ([1, 2, 3, 4], r"at most 3 item"),
        ([4, 0], r"p\.widths\.1: must be >= 1, got 0"),
        ([4, "8"], r"expected list of int"),
    ]:
        with pytest.raises(ConfigError, match=message):
            validate_params(P, {"widths": bad}, "p")


def test_largest_seed_a_results_subdirectory_and_an_uneven_last_block_are_valid():
    cfg = validate_config(
        {
            "seeds": [2**31 - 1],
            "results": "/tmp/dagzoo-results",
            "text": {
                "corpus": "kjv",
                "experiments": {
                    # 256 = 51 blocks of 5 and a last one of 1: BD3-LM handles it
                    "b": {"model": "bd3lm", "block_length": 5}
                },
            },
        }
    )
    assert cfg["seeds"] == [2**31 - 1]


# ------------------------------------------------------------------------------ command-line probes
@pytest.mark.parametrize(
    "argv, needle",
    [
        (["mlflow-sync", "--results", "{tmp}/no-such-results"], "--results: {tmp}/no-such-results is not a directory"),
        (["report", "--results", "{tmp}", "--claims", '[{"name": 1}]'], "--claims[0]: 'lhs' is a required property"),
        (["report", "--results", "{tmp}", "--claims", "{tmp}/missing.yaml"], "config file not found"),
        (
            ["report", "--results", "{tmp}", "--runs", "{tmp}/text/kn3/0"],
            "--runs: {tmp}/text/kn3/0 has no metrics.json",
        ),
        # a stage run by hand: the arguments the DAG fills from the validated config, checked the same way
        (
            ["tokenize", "--corpus-dir", "{tmp}", "--out", "{tmp}/out", "--tokenizer", "{bad"],
            "--tokenizer: not valid JSON",
        ),
        (
            ["tokenize", "--corpus-dir", "{tmp}", "--out", "{tmp}/out", "--tokenizer", '{"kind": "word"}'],
            "--tokenizer.kind: 'word' is not allowed; allowed: 'char', 'bpe'",
        ),
        (
            ["prepare-text", "--corpus", "kjv", "--out", "{tmp}/out", "--val", "0.05", "--test", "0.7"],
            "--test: 0.7 is greater than the maximum of 0.5",
        ),
        (["prepare-images", "--source", "digits", "--out", "{tmp}/out", "--resize", "0"], "--resize: 0 is less than"),
        (
            ["prepare-repr", "--source", "digits", "--out", "{tmp}/out", "--val-fraction", "2"],
            "--val-fraction: 2.0 is greater than the maximum of 0.5",
        ),
        (
            ["prepare-repr", "--source", "digits", "--out", "{tmp}/out", "--val-fraction", "nan"],
            "--val-fraction: must be a finite number, got nan",
        ),
        (
            ["prepare-points", "--data", '{"source": "shapes", "points": 0}', "--out", "{tmp}/out"],
            "--data.points: 0 is less",
        ),
        (
            ["prepare-points", "--data", '{"source": "shapes", "pts": 3}', "--out", "{tmp}/out"],
            "--data.pts: unknown key",
        ),
        (["prepare-points", "--data", '{"source": "shapez"}', "--out", "{tmp}/out"], "unknown data source 'shapez'"),
        (
            ["image-fid", "--samples", "{tmp}/none", "--reference", "{tmp}/none.npz"],
            "{tmp}/none.npz is missing; rerun `dagzoo image-reference`",
        ),
    ],
)
def test_command_line_mistakes_are_one_line(tmp_path, argv, needle):
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        status = cli.main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert_one_line_error(status, err.getvalue(), needle.replace("{tmp}", str(tmp_path)))
    assert list(tmp_path.iterdir()) == [], "nothing is written"


@pytest.mark.parametrize(
    "argv, needle",
    [
        (
            ["repr-knn", "--features", "f.npz", "--k", "0", "--temperature", "0.1", "--out", "o.json"],
            "--k: must be >= 1",
        ),
        (
            ["repr-knn", "--features", "f.npz", "--k", "two", "--temperature", "0.1", "--out", "o.json"],
            "--k: expected an integer, got 'two'",
        ),
        (
            ["repr-knn", "--features", "f.npz", "--k", "5", "--temperature", "nan", "--out", "o.json"],
            "--temperature: must be a finite number > 0.0, got nan",
        ),
        (
            [
                "repr-smoothed",
                "--features",
                "f.npz",
                "--ratio",
                "0.5",
                "--epochs",
                "3",
                "--lr",
                "0.1",
                "--out",
                "o.json",
            ],
            "--ratio: must be a finite number >= 1.0",
        ),
        (
            ["text-sample", "--spec", "s.json", "--data", "d", "--run-dir", "r", "--temperature", "0"],
            "--temperature: must be a finite number > 0.0, got 0",
        ),
        (["train", "--spec", "s.json", "--data", "d", "--run-dir", "r", "--threads", "0"], "--threads: must be >= 1"),
        (
            ["image-fid", "--samples", "s", "--reference", "r.npz", "--kid-subset-size", "1"],
            "--kid-subset-size: must be >= 2",
        ),
        (["no-such-stage"], "invalid choice: 'no-such-stage'"),
    ],
)
def test_command_line_usage_errors_are_one_line_with_status_2(argv, needle):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as e:
        cli.main(argv)
    lines = err.getvalue().strip().splitlines()
    assert e.value.code == 2 and len(lines) == 1 and lines[0].startswith("dagzoo: error: "), err.getvalue()
    assert needle in lines[0] and "--help" in lines[0], lines[0]


@pytest.mark.parametrize(
    "sampler, needle",
    [
        ("{bad", "--sampler: not valid JSON"),
        ("[1]", "--sampler: expected a JSON object"),
        ('{"kind": "plms"}', "--sampler.kind: 'plms' is not a sampler"),
        ('{"kind": "ddim", "steps": 0}', "--sampler.steps: must be >= 1"),
    ],
)
def test_a_bad_sampler_is_refused_before_any_model_is_loaded(tmp_path, sampler, needle):
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        status = cli.main(
            [
                "image-sample",
                "--spec",
                str(tmp_path / "none.json"),
                "--data",
                str(tmp_path),
                "--run-dir",
                str(tmp_path / "run"),
                "--name",
                "s",
                "--sampler",
                sampler,
                "--n",
                "4",
            ]
        )
    assert_one_line_error(status, err.getvalue(), needle)
    assert list(tmp_path.iterdir()) == []
