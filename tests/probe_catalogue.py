"""The config half of the hardening probe set: every way a user can get a config
wrong that we know of, each with the words its one-line error must contain. `tests/core/test_probes.py`
runs each through `dagzoo validate-config` (and a sample through a Snakemake dry run).

A probe is (id, edit, needle). `edit` is either YAML text (used as the whole file) or a dict of
dotted key paths -> values applied to the default config (`config/config.yaml`); the value
DELETE removes the key."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DELETE = object()
NO_FILE, A_DIRECTORY = object(), object()  # probes of the path itself
NAN, INF = float("nan"), float("inf")


@cache
def default_config() -> dict:
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def edited(edits: dict) -> dict:
    """The default config with `edits` (dotted key path -> value; list items by index) applied."""
    cfg = copy.deepcopy(default_config())
    for path, value in edits.items():
        *parents, last = path.split(".")
        node = cfg
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
        key = int(last) if isinstance(node, list) else last
        if value is DELETE:
            del node[key]
        else:
            node[key] = value
    return cfg


def render(edit, path: Path) -> Path:
    """Write a probe's config file: YAML text as is, or the edited default as YAML."""
    if edit is NO_FILE:
        return path
    if edit is A_DIRECTORY:
        path.mkdir()
        return path
    if isinstance(edit, bytes):
        path.write_bytes(edit)
    else:
        path.write_text(edit if isinstance(edit, str) else yaml.safe_dump(edited(edit), sort_keys=False))
    return path


T = "text.experiments."
IMG = "image.experiments."
R = "repr.experiments."
P = "points.experiments."

DUPLICATE_EXPERIMENT = """\
text:
  corpus: kjv
  experiments:
    kn3:
      model: ngram
      order: 3
    kn5:
      model: ngram
    kn3:
      model: ngram
      order: 4
"""

CONFIG_PROBES: list[tuple[str, object, str]] = [
    # ---- the file itself
    ("file_missing", NO_FILE, "config file not found"),
    ("file_is_a_directory", A_DIRECTORY, "is a directory"),
    ("file_empty", "", "declares no family"),
    ("yaml_syntax", "text:\n  corpus: [kjv\n", "is not valid YAML"),
    ("yaml_tab_indent", "text:\n\tcorpus: kjv\n", "is not valid YAML"),
    ("yaml_python_tag", "results: !!python/object/apply:os.system ['touch PWNED']\n", "is not valid YAML"),
    ("yaml_top_level_list", "- text\n- image\n", "the config must be a mapping of keys to values"),
    ("yaml_top_level_scalar", "just a string\n", "got a str"),
    ("yaml_not_utf8", b"text:\n  corpus: \xff\xfe\n", "not valid UTF-8 (byte 16"),
    ("duplicate_experiment", DUPLICATE_EXPERIMENT, "text.experiments.kn3: duplicate key (lines 4 and 9)"),
    (
        "duplicate_key_in_list_item",
        "seeds: [0]\nclaims:\n  - kind: x\n    kind: y\n",
        "claims.0.kind: duplicate key (lines 3 and 4)",
    ),
    ("duplicate_top_level_key", "seeds: [0]\nseeds: [1]\n", "seeds: duplicate key (lines 1 and 2)"),
    (
        "experiment_name_a_number",
        "text:\n  experiments:\n    1: {model: ngram}\n    kn5: {model: ngram}\n",
        "text.experiments.1: a key must be a string, got the int 1; quote it ('1':)",
    ),
    (
        "key_a_boolean",
        "text:\n  experiments:\n    kn3: {model: ngram, yes: 3}\n",
        "text.experiments.kn3.True: a key must be a string, got the bool True; quote it as written "
        "('yes':, 'on':, ...)",
    ),
    # ---- top level
    ("unknown_top_key", {"resluts": "x"}, "resluts: unknown key"),
    ("unknown_family", {"audio": {"experiments": {}}}, "audio: unknown key"),
    ("results_empty", {"results": ""}, "results:"),
    ("results_root", {"results": "/"}, "results: '/' is the filesystem root"),
    ("results_not_string", {"results": 3}, "results:"),
    ("results_braces", {"results": "res{x}"}, "results: 'res{x}' contains braces"),
    ("results_tilde", {"results": "~/results"}, "results: '~/results' starts with ~, which nothing expands"),
    ("results_a_file", {"results": str(ROOT / "README.md")}, "README.md' is an existing file, not a directory"),
    ("seeds_whole_float", {"seeds": [1.0]}, "seeds.0: expected an integer, got 1.0 (write 1)"),
    ("threads_whole_float", {"threads": 2.0}, "threads: expected an integer, got 2.0"),
    ("processes_whole_float", {"processes": 2.0}, "processes: expected an integer"),
    (
        "yaml_alias_inside_its_anchor",
        "text: &a {corpus: kjv, experiments: {kn3: {model: ngram}}, x: *a}\n",
        "text.x: contains itself (a YAML alias used inside its own anchor)",
    ),
    ("yaml_nested_too_deep", "[" * 100_000 + "\n", "nested too deeply to read"),
    ("seeds_empty", {"seeds": []}, "seeds:"),
    ("seeds_duplicate", {"seeds": [0, 0]}, "seeds:"),
    ("seeds_negative", {"seeds": [-1]}, "seeds.0:"),
    ("seeds_overflow", {"seeds": [0, 2**70]}, "seeds.1:"),
    ("seeds_string", {"seeds": "0"}, "seeds:"),
    ("threads_zero", {"threads": 0}, "threads:"),
    ("eval_threads_negative", {"eval_threads": -1}, "eval_threads:"),
    ("mlflow_prefix_type", {"mlflow.experiment_prefix": 5}, "mlflow.experiment_prefix:"),
    ("mlflow_unknown_key", {"mlflow.trackinguri": "x"}, "mlflow.trackinguri: unknown key"),
    ("no_family", "seeds: [0]\n", "the config declares no family"),
    # ---- text
    ("text_corpus_unknown", {"text.corpus": "gutenberg"}, "text.corpus:"),
    ("text_corpus_empty_file", {"text.corpus": "file:"}, "text.corpus:"),
    ("text_split_sum", {"text.split": {"val": 0.6, "test": 0.6}}, "text.split.test: 0.6 is greater than the maximum"),
    ("text_split_no_train", {"text.split": {"val": 0.5, "test": 0.5}}, "text.split"),
    ("text_split_negative", {"text.split.val": -0.1}, "text.split.val:"),
    ("text_split_nan", {"text.split.val": NAN}, "text.split.val: must be a finite number"),
    ("text_tokenizer_kind", {"text.tokenizer.kind": "word"}, "text.tokenizer.kind:"),
    ("text_bpe_vocab_tiny", {"text.tokenizer": {"kind": "bpe", "vocab_size": 10}}, "text.tokenizer.vocab_size:"),
    ("text_window_zero", {"text.eval.window": 0}, "text.eval.window:"),
    ("text_window_string", {"text.eval.window": "256"}, "text.eval.window:"),
    ("text_window_whole_float", {"text.eval.window": 32.0}, "text.eval.window: expected an integer, got 32.0"),
    ("text_samples_whole_float", {"text.eval.samples": 2.0}, "text.eval.samples: expected an integer"),
    (
        "text_experiment_name_too_long",
        {T + "x" * 101: {"model": "ngram"}},
        "a name of 101 characters; allowed: at most 100",
    ),
    (
        "text_experiment_name_periodic",
        {T + "kn" + "ab" * 20: {"model": "ngram"}},
        "a name ending in 20 or more repeats of 'ab', which Snakemake refuses",
    ),
    ("text_top_k_zero", {"text.eval.top_k": 0}, "text.eval.top_k:"),
    ("text_temperature_inf", {"text.eval.temperature": INF}, "text.eval.temperature: must be a finite number"),
    ("text_genppl_unknown", {"text.eval.genppl_evaluator": "kn99"}, "text.eval.genppl_evaluator:"),
    ("text_genppl_not_ar", {"text.eval.genppl_evaluator": "mdlm"}, "text.eval.genppl_evaluator:"),
    ("text_no_experiments", {"text.experiments": {}}, "text.experiments:"),
    ("text_experiment_null", {T + "transformer": None}, "text.experiments.transformer:"),
    ("text_experiment_name", {T + "bad name!": {"model": "ngram", "order": 3}}, "bad name!"),
    ("text_model_unknown", {T + "kn3.model": "ngramm"}, "text.experiments.kn3.model:"),
    ("text_model_missing", {T + "kn3.model": DELETE}, "text.experiments.kn3"),
    ("text_order_zero", {T + "kn3.order": 0}, "text.experiments.kn3.order:"),
    ("text_order_float", {T + "kn3.order": 2.5}, "text.experiments.kn3.order:"),
    ("text_param_unknown", {T + "transformer.nlayer": 2}, "text.experiments.transformer.nlayer:"),
    ("text_heads_do_not_divide", {T + "transformer.n_head": 3}, "text.experiments.transformer"),
    ("text_steps_negative", {T + "transformer.steps": -5}, "text.experiments.transformer.steps:"),
    ("text_batch_zero", {T + "transformer.batch_size": 0}, "text.experiments.transformer.batch_size:"),
    ("text_lr_zero", {T + "transformer.lr": 0}, "text.experiments.transformer.lr: must be > 0"),
    ("text_lr_nan", {T + "transformer.lr": NAN}, "text.experiments.transformer.lr: must be a finite number"),
    ("text_lr_inf", {T + "transformer.lr": INF}, "text.experiments.transformer.lr: must be a finite number"),
    ("text_lr_string", {T + "transformer.lr": "1e-3x"}, "text.experiments.transformer.lr:"),
    (
        "text_lr_exponent_without_dot",
        {T + "transformer.lr": "3e-4"},
        "text.experiments.transformer.lr: expected float, got '3e-4' (YAML reads a number with an exponent but no dot "
        "as a string: write 3.0e-4)",
    ),
    ("text_dropout_nan", {T + "transformer.dropout": NAN}, "text.experiments.transformer.dropout: must be a finite"),
    ("text_dropout_one", {T + "transformer.dropout": 1.0}, "text.experiments.transformer.dropout:"),
    ("text_optimizer_unknown", {T + "transformer.optimizer": "adam"}, "text.experiments.transformer.optimizer:"),
    (
        "text_positional_unknown",
        {T + "transformer.positional": "sinusoidal"},
        "text.experiments.transformer.positional:",
    ),
    ("text_eval_every_zero", {T + "transformer.eval_every": 0}, "text.experiments.transformer.eval_every:"),
    ("text_nelbo_samples_zero", {T + "mdlm.nelbo_samples": 0}, "text.experiments.mdlm.nelbo_samples:"),
    ("text_sedd_graph_unknown", {T + "sedd.graph": "uniformm"}, "text.experiments.sedd.graph:"),
    ("text_block_length_zero", {T + "bd3lm4.block_length": 0}, "text.experiments.bd3lm4.block_length:"),
    # ---- images
    ("image_source_unknown", {"image.data.source": "mnist"}, "image.data.source:"),
    ("image_resize_zero", {"image.data.resize": 0}, "image.data.resize:"),
    ("image_resize_whole_float", {"image.data.resize": 16.0}, "image.data.resize: expected an integer"),
    (
        "image_sampler_name_with_a_dash",
        {IMG + "ddpm.samplers": {"x-2-y": {"kind": "ddim", "steps": 10}}},
        "image.experiments.ddpm.samplers: 'x-2-y' is not a name; allowed: ASCII letters, digits, '_' and '.'",
    ),
    (
        "image_sampler_name_reserved",
        {IMG + "ddpm.samplers": {"untrained": {"kind": "ddim", "steps": 10}}},
        "image.experiments.ddpm.samplers: the name 'untrained' is reserved; allowed: any other name",
    ),
    (
        "image_sampler_name_periodic",
        {IMG + "ddpm.samplers": {"d" * 25: {"kind": "ddim", "steps": 10}}},
        "image.experiments.ddpm.samplers.ddddddddddddddddddddddddd: a name ending in 20 or more repeats of 'd'",
    ),
    ("image_eval_samples_zero", {"image.eval.samples": 0}, "image.eval.samples:"),
    ("image_channel_mult_empty", {IMG + "ddpm.channel_mult": []}, "image.experiments.ddpm.channel_mult:"),
    ("image_attention_resolution", {IMG + "ddpm.attn_resolutions": [5]}, "image.experiments.ddpm.attn_resolutions"),
    ("image_main_sampler_unknown", {IMG + "ddpm.main_sampler": "heun99"}, "image.experiments.ddpm.main_sampler:"),
    (
        "image_sampler_kind_unknown",
        {IMG + "ddpm.samplers.ddim50.kind": "plms"},
        "image.experiments.ddpm.samplers.ddim50.kind:",
    ),
    (
        "image_sampler_steps_zero",
        {IMG + "ddpm.samplers.ddim50.steps": 0},
        "image.experiments.ddpm.samplers.ddim50.steps:",
    ),
    (
        "image_sampler_steps_beyond_T",
        {IMG + "ddpm.samplers.ddim50.steps": 5000},
        "image.experiments.ddpm.samplers.ddim50.steps",
    ),
    (
        "image_sampler_nan",
        {IMG + "edm.samplers.heun18.S_max": NAN},
        "image.experiments.edm.samplers.heun18.S_max: must be a finite",
    ),
    (
        "image_sampler_churn_inf",
        {IMG + "edm.samplers.heun18.S_churn": INF},
        "image.experiments.edm.samplers.heun18.S_churn: must be a finite number",
    ),
    ("image_sampler_rho_negative", {IMG + "edm.samplers.heun18.rho": -1}, "image.experiments.edm.samplers.heun18.rho:"),
    (
        "image_sampler_wrong_model",
        {IMG + "flow.samplers.euler50.kind": "ddpm"},
        "image.experiments.flow.samplers.euler50",
    ),
    (
        "image_ddpm_schedule_alone",
        {IMG + "ddpm.schedule": "cosine"},
        "image.experiments.ddpm.schedule: for ddpm, `schedule` is the learning-rate schedule and the betas' is "
        "`beta_schedule`",
    ),
    ("image_latent_zero", {IMG + "vae.latent_dim": 0}, "image.experiments.vae.latent_dim:"),
    ("image_gumbel_one_class", {IMG + "gumbel_vae.n_classes": 1}, "image.experiments.gumbel_vae.n_classes:"),
    ("image_ema_negative", {IMG + "ddpm.ema_halflife_kimg": -1}, "image.experiments.ddpm.ema_halflife_kimg:"),
    # ---- representations
    ("repr_val_fraction_one", {"repr.data.val_fraction": 1.0}, "repr.data.val_fraction:"),
    ("repr_probe_grid_empty", {"repr.eval.probe_grid": []}, "repr.eval.probe_grid:"),
    ("repr_probe_grid_negative", {"repr.eval.probe_grid": [-1.0]}, "repr.eval.probe_grid.0:"),
    ("repr_knn_k_zero", {"repr.eval.knn_k": 0}, "repr.eval.knn_k:"),
    ("repr_knn_temperature_zero", {"repr.eval.knn_temperature": 0}, "repr.eval.knn_temperature:"),
    ("repr_jitter_saturation_on_grey", {R + "simclr.jitter": [0.4, 0.4, 0.4, 0.0]}, "repr.experiments.simclr.jitter"),
    ("repr_crop_range_reversed", {R + "simclr.crop_scale": [0.9, 0.5]}, "repr.experiments.simclr.crop_scale"),
    ("repr_widths_strides_mismatch", {R + "simclr.widths": [32, 64]}, "repr.experiments.simclr"),
    ("repr_temperature_zero", {R + "simclr.temperature": 0}, "repr.experiments.simclr.temperature:"),
    ("repr_model_unknown", {R + "simclr.model": "byol"}, "repr.experiments.simclr.model:"),
    # ---- point clouds
    ("points_zero_points", {"points.data.points": 0}, "points.data.points:"),
    ("points_points_whole_float", {"points.data.points": 512.0}, "points.data.points: expected an integer"),
    ("points_source_unknown", {"points.data.source": "modelnet20"}, "points.data.source:"),
    ("points_no_train_shapes", {"points.data.shapes.train_per_class": 0}, "points.data.shapes.train_per_class:"),
    ("points_k_beyond_points", {"points.data.points": 8}, "points.experiments.dgcnn.k"),
    ("points_voxel_grid_tiny", {P + "voxnet.grid": 2}, "points.experiments.voxnet.grid:"),
    ("points_voxel_grid_below_one_pooled_voxel", {P + "voxnet.grid": 10}, "points.experiments.voxnet.grid:"),
    ("points_voxnet_dropout_one_number", {P + "voxnet.dropout": 0.5}, "points.experiments.voxnet.dropout:"),
    ("points_mlp_empty", {P + "pointnet.mlp1": []}, "points.experiments.pointnet.mlp1:"),
    ("points_label_smoothing_high", {P + "dgcnn.label_smoothing": 1.5}, "points.experiments.dgcnn.label_smoothing:"),
    ("points_momentum_one", {P + "dgcnn.momentum": 1.5}, "points.experiments.dgcnn.momentum:"),
    # ---- claims
    ("claim_op_unknown", {"claims.0.op": "=<"}, "claims.0.op:"),
    (
        "claim_address_malformed",
        {"claims.0.lhs": "text/transformer"},
        "claims.0.lhs: 'text/transformer' is not a metric address; allowed: <family>/<experiment>/<metric key>",
    ),
    ("claim_experiment_unknown", {"claims.0.lhs": "text/nope/test/bpc"}, "claims.0.lhs:"),
    ("claim_family_unknown", {"claims.0.lhs": "audio/x/test/bpc"}, "claims.0.lhs:"),
    ("claim_name_duplicate", {"claims.1.name": "AR <= BD3-LM(L'=4)"}, "claims.1.name:"),
    ("claim_name_missing", {"claims.0.name": DELETE}, "claims.0"),
]
