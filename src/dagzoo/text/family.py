"""The text family: corpus -> tokenizer -> {n-gram, transformer, diffusion LMs} -> test
likelihood (exact, or an upper bound), samples and their generative perplexity."""

from __future__ import annotations

import json
from pathlib import Path

from dagzoo.argtypes import int_at_least, positive_float, positive_int
from dagzoo.errors import ConfigError
from dagzoo.family import Family


class TextFamily(Family):
    name = "text"
    order = 10
    unit = "tokens"
    headline_metrics = (("test BPC", r"test/bpc", 3),)
    spec_fields_read = ("eval",)
    defaults = {
        "split": {"val": 0.05, "test": 0.05},
        "tokenizer": {"kind": "char"},
        "eval": {
            "window": 256,
            "val_tokens": 32768,
            "samples": 4,
            "sample_length": 256,
            "temperature": 1.0,
            "top_k": None,
            "genppl_evaluator": None,
        },
    }

    # ------------------------------------------------------------------ config
    def validate(self, section: dict, cfg: dict) -> None:
        from dagzoo import registry
        from dagzoo.text.data import check_corpus_name

        try:
            check_corpus_name(section["corpus"])
        except Exception as e:  # noqa: BLE001 - the message names what is allowed
            raise ConfigError(f"text.corpus: {e}") from None
        split = section["split"]
        if split["val"] + split["test"] >= 1:  # each is at most 0.5: both at 0.5 would leave no training text
            raise ConfigError(
                f"text.split: val + test = {split['val'] + split['test']:g} leaves nothing to train on; "
                "allowed: val + test < 1"
            )
        tok = section["tokenizer"]
        if tok["kind"] == "char" and "vocab_size" in tok:
            raise ConfigError("text.tokenizer.vocab_size: only the bpe tokenizer takes a vocab_size")
        ev = section["eval"]
        if ev["sample_length"] > ev["window"]:
            raise ConfigError(
                f"text.eval.sample_length: must be <= text.eval.window ({ev['window']}): samples are "
                "generated inside one window, as the models are trained and evaluated"
            )
        evaluator = ev.get("genppl_evaluator")
        if evaluator is not None:
            if evaluator not in section["experiments"]:
                raise ConfigError(
                    f"text.eval.genppl_evaluator: {evaluator!r} is not an experiment; allowed: "
                    + ", ".join(sorted(section["experiments"]))
                )
            if not registry.get_model("text", section["experiments"][evaluator]["model"]).exact_likelihood:
                raise ConfigError(
                    f"text.eval.genppl_evaluator: {evaluator!r} must be an autoregressive (exact-likelihood) model"
                )

    def check_files(self, section: dict) -> None:
        if section["corpus"].startswith("file:") and not Path(section["corpus"][5:]).is_file():
            raise ConfigError(f"text.corpus: corpus file not found: {section['corpus'][5:]}")

    def spec_fields(self, section: dict) -> dict:
        return {
            "data": {"corpus": section["corpus"], "split": section["split"], "tokenizer": section["tokenizer"]},
            # only what the trained model depends on: sampling settings go to the sample rule
            # as params, so changing them reruns sampling, not training
            "eval": {k: section["eval"][k] for k in ("window", "val_tokens")},
        }

    def dataset(self, section: dict) -> str:
        return section["corpus"]

    def open_data(self, data_dir: Path):
        from dagzoo.text.data import TokenData

        return TokenData(data_dir)

    def rule_facts(self, cls: type, exp: dict) -> dict:
        from dagzoo.text.params import CLIP_SEARCH

        return {"clip_search": exp.get("clip") == CLIP_SEARCH}

    # ------------------------------------------------------------------ stages
    def add_commands(self, sub, common) -> None:
        s = sub.add_parser("prepare-text", help="fetch/read a corpus and write its train/val/test split + manifest")
        s.add_argument(
            "--corpus", required=True, help="kjv | tinyshakespeare | text8 | wikitext2 | wikitext103 | file:<path>"
        )
        s.add_argument("--out", required=True)
        s.add_argument("--val", type=float, default=0.05)
        s.add_argument("--test", type=float, default=0.05)
        s.add_argument("--cache", default=None, help="download cache (default: <out>/download)")
        s.set_defaults(fn=_prepare_text)

        s = sub.add_parser("tokenize", help="train a tokenizer on the train split and encode every split")
        s.add_argument("--corpus-dir", required=True)
        s.add_argument("--out", required=True)
        s.add_argument(
            "--tokenizer", required=True, help='JSON, e.g. {"kind": "char"} or {"kind": "bpe", "vocab_size": 2048}'
        )
        s.set_defaults(fn=_tokenize)

        s = sub.add_parser("text-evaluate", help="test-set likelihood (or its bound) of a trained run -> metrics.json")
        common(s)
        s.set_defaults(fn=_evaluate)

        s = sub.add_parser(
            "text-clip-search",
            help="a `clip: search` run's noise window: pilot, NELBO-estimator variance per window -> clip_search.json",
        )
        common(s)
        s.set_defaults(fn=_clip_search)

        s = sub.add_parser("text-sample", help="samples of a trained run -> samples.txt")
        common(s)
        s.add_argument("--samples", type=int_at_least(0), default=4, help="number of samples")
        s.add_argument("--length", type=positive_int, default=256, help="tokens per sample (<= the eval window)")
        s.add_argument("--temperature", type=positive_float, default=1.0)
        s.add_argument("--top-k", type=positive_int, default=None)
        s.set_defaults(fn=_sample)

        s = sub.add_parser("text-genppl", help="generative perplexity of a run's samples under an AR evaluator run")
        common(s)
        s.add_argument("--evaluator", required=True, help="run directory of the autoregressive evaluator")
        s.set_defaults(fn=_genppl)

    # ------------------------------------------------------------------ report
    def summary_fields(self, run_dir: Path, spec: dict, metrics: dict) -> dict:
        from dagzoo.io import read_json

        doc = read_json(run_dir / "metrics.json")
        fields = {"likelihood": "exact" if doc.get("exact_likelihood", True) else "bound", "genppl_evaluator": None}
        if (run_dir / "genppl.json").exists():
            gen = read_json(run_dir / "genppl.json")
            metrics.update(gen["metrics"])
            fields["genppl_evaluator"] = gen.get("evaluator")
        return fields

    def report_section(self, df, histories, results, out):
        from dagzoo.text.report import text_section

        return text_section(df, histories, out)


def _prepare_text(a) -> int:
    from dagzoo.config import check_section_part
    from dagzoo.text.data import prepare_corpus

    check_section_part("text", "split", {"val": a.val, "test": a.test})
    m = prepare_corpus(a.corpus, Path(a.out), val=a.val, test=a.test, cache_dir=a.cache)
    print(json.dumps(m["files"], indent=1))
    return 0


def _tokenize(a) -> int:
    from dagzoo.config import check_section_part, json_arg
    from dagzoo.text.data import prepare_tokens

    tokenizer = check_section_part("text", "tokenizer", json_arg(a.tokenizer, "--tokenizer"), "--tokenizer")
    m = prepare_tokens(Path(a.corpus_dir), Path(a.out), tokenizer)
    print(f"vocab {m['vocab_size']}: " + ", ".join(f"{k} {v['tokens']} tokens" for k, v in m["splits"].items()))
    return 0


def _clip_search(a) -> int:
    from dagzoo.text.clip import clip_search

    found = clip_search(a.spec, Path(a.data), Path(a.run_dir), Path(a.results), rule=a.rule)
    print(json.dumps({k: found[k] for k in ("window", "var", "pilot_steps", "batches")}))
    return 0


def _evaluate(a) -> int:
    from dagzoo.text.stages import evaluate

    print(json.dumps(evaluate(a.spec, Path(a.data), Path(a.run_dir), Path(a.results), rule=a.rule), indent=1))
    return 0


def _sample(a) -> int:
    from dagzoo.text.stages import sample

    print(
        sample(
            a.spec,
            Path(a.data),
            Path(a.run_dir),
            Path(a.results),
            rule=a.rule,
            samples=a.samples,
            length=a.length,
            temperature=a.temperature,
            top_k=a.top_k,
        )
    )
    return 0


def _genppl(a) -> int:
    from dagzoo.text.stages import genppl

    print(
        json.dumps(
            genppl(a.spec, Path(a.data), Path(a.run_dir), Path(a.results), rule=a.rule, evaluator=Path(a.evaluator)),
            indent=1,
        )
    )
    return 0


FAMILY = TextFamily()
