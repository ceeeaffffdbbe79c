"""The image family: source -> uint8 arrays -> {ddpm, edm, flow, vae, gumbel_vae} -> samples per
named sampler -> Inception FID/KID against the train split's reference statistics."""

from __future__ import annotations

import json
from pathlib import Path

from dagzoo.argtypes import int_at_least, positive_int
from dagzoo.errors import ConfigError
from dagzoo.family import Family


def image_samplers(cls, exp: dict) -> dict[str, dict]:
    """The named samplers of an image experiment (the model's defaults when none are given)."""
    return exp.get("samplers") or dict(getattr(cls, "default_samplers", {}))


def main_sampler(cls, exp: dict) -> str:
    return exp.get("main_sampler") or next(iter(image_samplers(cls, exp)))


class ImageFamily(Family):
    name = "image"
    order = 20
    unit = "images"
    headline_metrics = (("FID", r"fid_\d+", 1), ("KID", r"kid_\d+", 4))
    defaults = {
        "data": {"resize": None, "channels": None},
        "eval": {
            "samples": 1000,
            "baseline_samples": 100,
            "real_samples": None,
            "reference_images": None,
            "kid_subsets": 100,
            "kid_subset_size": 1000,
            "feature_batch": 50,
            "grid": 64,
        },
    }
    experiment_keys = ("model", "samplers", "main_sampler")

    # ------------------------------------------------------------------ config
    def validate(self, section: dict, cfg: dict) -> None:
        from dagzoo.data.images import check_source_config

        check_source_config(section["data"]["source"], "image.data.source", check_files=False)

    def check_files(self, section: dict) -> None:
        from dagzoo.data.images import check_source_config

        check_source_config(section["data"]["source"], "image.data.source", check_files=True)

    def rule_facts(self, cls, exp: dict) -> dict:
        return {"samplers": image_samplers(cls, exp), "main_sampler": main_sampler(cls, exp)}

    def check_experiment(self, section, name, exp, cls, params, where) -> None:
        from dagzoo.config import check_name
        from dagzoo.image.samplers import parse_sampler

        samplers = image_samplers(cls, exp)
        if not samplers:
            raise ConfigError(
                f"{where}.samplers: {exp['model']} has no default sampler; name at least one "
                f"(kinds: {', '.join(cls.sampler_kinds)})"
            )
        for sname, sspec in samplers.items():
            check_name(sname, f"{where}.samplers.{sname}")
            if sspec.get("kind") not in cls.sampler_kinds:
                raise ConfigError(
                    f"{where}.samplers.{sname}.kind: {sspec.get('kind')!r} does not apply to "
                    f"{exp['model']}; allowed: {', '.join(cls.sampler_kinds)}"
                )
            cls.check_sampler(params, parse_sampler(sspec, f"{where}.samplers.{sname}"), f"{where}.samplers.{sname}")
        main = main_sampler(cls, exp)
        if main not in samplers:
            raise ConfigError(
                f"{where}.main_sampler: {main!r} is not one of its samplers; allowed: " + ", ".join(samplers)
            )
        cls.check_experiment(params, section, where)

    def spec_fields(self, section: dict) -> dict:
        # samplers are not part of the spec: adding or changing one reruns sampling only
        return {"data": dict(section["data"])}

    def dataset(self, section: dict) -> str:
        return section["data"]["source"]

    def open_data(self, data_dir: Path):
        from dagzoo.data.images import ImageData

        return ImageData(data_dir)

    # ------------------------------------------------------------------ stages
    def add_commands(self, sub, common) -> None:
        s = sub.add_parser("prepare-images", help="an image source -> uint8 train/test arrays + manifest")
        s.add_argument("--source", required=True, help="digits | fashion_mnist | cifar10 | cifar100 | folder:<path>")
        s.add_argument("--out", required=True)
        s.add_argument("--resize", type=int, default=None, help="square size in pixels (bilinear)")
        s.add_argument("--channels", type=int, default=None, choices=(1, 3), help="convert to 1 or 3 channels")
        s.add_argument("--cache", default=None, help="download cache (default: <out>/../downloads)")
        s.set_defaults(fn=_prepare_images)

        s = sub.add_parser("image-reference", help="Inception features + statistics of an image split (FID reference)")
        s.add_argument("--data", required=True, help="prepared image data directory")
        s.add_argument("--split", default="train", choices=("train", "test"))
        s.add_argument("--n", type=positive_int, default=None, help="a seeded random subset of n images (default: all)")
        s.add_argument("--seed", type=int, default=0)
        s.add_argument("--batch", type=positive_int, default=50)
        s.add_argument("--out", required=True, help="output .npz (a .json summary is written beside it)")
        s.add_argument("--threads", type=positive_int, default=None)
        s.set_defaults(fn=_reference)

        s = sub.add_parser("image-sample", help="sample a trained (or untrained) image model with one named sampler")
        common(s)
        s.add_argument("--name", required=True, help="sampler name (the output folder samples/<name>)")
        s.add_argument("--sampler", required=True, help='JSON, e.g. {"kind": "edm", "steps": 18}')
        s.add_argument("--n", type=positive_int, required=True, help="number of images")
        s.add_argument("--grid", type=int_at_least(0), default=64, help="images in the PNG grid")
        s.add_argument("--untrained", action="store_true", help="the untrained network of the run's seed (baseline)")
        s.set_defaults(fn=_sample)

        s = sub.add_parser("image-fid", help="fid_<N> and kid_<N> of a sample folder against a reference .npz")
        s.add_argument("--samples", required=True, help="folder with images.npy")
        s.add_argument("--reference", required=True)
        s.add_argument("--batch", type=positive_int, default=50)
        s.add_argument("--kid-subsets", type=positive_int, default=100)
        s.add_argument("--kid-subset-size", type=int_at_least(2), default=1000)
        s.add_argument("--threads", type=positive_int, default=None)
        s.set_defaults(fn=_fid)

        s = sub.add_parser("image-evaluate", help="collect a run's sampler FID/KID (+ VAE bits/dim) -> metrics.json")
        common(s)
        s.add_argument("--samplers", nargs="*", default=[])
        s.add_argument("--main-sampler", required=True)
        s.set_defaults(fn=_evaluate)

        s = sub.add_parser("real-vs-real", help="FID/KID of the test split against the train reference")
        s.add_argument("--test", required=True)
        s.add_argument("--train", required=True)
        s.add_argument("--out", required=True)
        s.add_argument("--kid-subsets", type=positive_int, default=100)
        s.add_argument("--kid-subset-size", type=int_at_least(2), default=1000)
        s.set_defaults(fn=_real_vs_real)

    # ------------------------------------------------------------------ report
    def summary_fields(self, run_dir: Path, spec: dict, metrics: dict) -> dict:
        return {"likelihood": "bound" if "test/bits_per_dim" in metrics else "none"}

    def report_section(self, df, histories, results, out):
        from dagzoo.image.report import image_section

        return image_section(df, results, out)


def _prepare_images(a) -> int:
    from dagzoo.config import check_section_part
    from dagzoo.data.images import prepare_images

    check_section_part("image", "data", {"source": a.source, "resize": a.resize, "channels": a.channels})
    m = prepare_images(a.source, Path(a.out), resize=a.resize, channels=a.channels, cache=a.cache)
    print(json.dumps(m["splits"], indent=1))
    return 0


def _reference(a) -> int:
    from dagzoo.image.stages import reference

    print(json.dumps(reference(Path(a.data), a.split, Path(a.out), n=a.n, seed=a.seed, batch=a.batch), indent=1))
    return 0


def _sample(a) -> int:
    from dagzoo.config import json_arg
    from dagzoo.image.samplers import parse_sampler
    from dagzoo.image.stages import sample

    sampler = json_arg(a.sampler, "--sampler")
    if not isinstance(sampler, dict):
        raise ConfigError(f'--sampler: expected a JSON object like {{"kind": "edm", "steps": 18}}, got {a.sampler}')
    parse_sampler(sampler, "--sampler")  # before the model is loaded
    print(
        sample(
            a.spec,
            Path(a.data),
            Path(a.run_dir),
            Path(a.results),
            a.name,
            sampler,
            a.n,
            rule=a.rule,
            untrained=a.untrained,
            grid=a.grid,
        )
    )
    return 0


def _fid(a) -> int:
    from dagzoo.image.stages import fid

    print(
        json.dumps(
            fid(
                Path(a.samples), Path(a.reference), subsets=a.kid_subsets, subset_size=a.kid_subset_size, batch=a.batch
            ),
            indent=1,
        )
    )
    return 0


def _evaluate(a) -> int:
    from dagzoo.image.stages import evaluate

    out = evaluate(a.spec, Path(a.data), Path(a.run_dir), Path(a.results), a.samplers, a.main_sampler, rule=a.rule)
    print(json.dumps(out, indent=1, default=str))
    return 0


def _real_vs_real(a) -> int:
    from dagzoo.image.stages import real_vs_real

    print(
        json.dumps(real_vs_real(Path(a.test), Path(a.train), Path(a.out), a.kid_subsets, a.kid_subset_size), indent=1)
    )
    return 0


FAMILY = ImageFamily()
