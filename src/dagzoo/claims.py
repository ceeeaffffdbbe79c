"""Declarative checks of a paper's qualitative claims against the run summary.

A paper says things like "EDM with 35 Heun steps matches DDPM with 1000 steps". A config can
state such a claim as a comparison of two metrics (or of a metric and a fixed threshold):

    claims:
      - name: "EDM Heun-35 matches DDPM-1000"
        source: "Karras et al. 2022"
        lhs: "image/edm/samplers/heun18/kid_80"
        op: "<="
        rhs: "image/ddpm/samplers/ddpm/kid_80"
        margin: 0.0            # optional: the claim is "lhs <= rhs + margin"

A metric address is ``<family>/<experiment>/<metric key>``; the metric key is a column of the
summary DataFrame (a key of a run's metrics.json) and may itself contain slashes, so an address is
split at its first two slashes only.

A reproduction with few seeds should not declare a claim broken (or confirmed) when the gap is
inside the noise, so each verdict accounts for the standard error of both sides: a claim is
``inconclusive`` when the difference is within two combined standard errors, otherwise ``held`` or
``failed``; ``missing`` when a side has no value to compare.
"""

from __future__ import annotations

import difflib
import math
import operator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from dagzoo.errors import ConfigError
from dagzoo.io import atomic_write_json

if TYPE_CHECKING:  # pandas is imported by the report, not by config validation (which imports this)
    import pandas as pd

ADDRESS_PATTERN = r"^[^/]+/[^/]+/.+$"

COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}

#: How many combined standard errors a difference must exceed before a verdict is not inconclusive.
SE_MULTIPLIER = 2.0

#: Suffix of the column holding a run's own standard error of a metric (e.g. ``test/bpc_se``).
SE_SUFFIX = "_se"

CLAIM_SCHEMA: dict = {
    "type": "array",
    "description": "qualitative claims of the reproduced papers, checked against the run summary",
    "items": {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "lhs", "op", "rhs"],
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "source": {"type": "string", "description": "where the claim comes from, e.g. a paper"},
            "lhs": {
                "type": "string",
                "pattern": ADDRESS_PATTERN,
                "description": "metric address <family>/<experiment>/<metric key>",
            },
            "op": {"enum": list(COMPARISONS)},
            "rhs": {
                "anyOf": [{"type": "string", "pattern": ADDRESS_PATTERN}, {"type": "number"}],
                "description": "a metric address, or a number (a fixed threshold)",
            },
            "margin": {"type": "number", "description": "the claim is: lhs <op> rhs + margin (default 0)"},
        },
    },
}

RULE_EXPLANATION = (
    "inconclusive: the difference is within two combined standard errors; "
    "SE from seeds (n >= 2) or the metric's own _se column"
)


def split_address(address: str) -> tuple[str, str, str]:
    """``family/experiment/metric key`` -> its three parts; only the first two slashes split,
    because metric keys themselves contain slashes (``samplers/heun18/kid_80``)."""
    parts = address.split("/", 2)
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"{address!r} is not a metric address <family>/<experiment>/<metric key>")
    return parts[0], parts[1], parts[2]


def _is_number(value) -> bool:
    # bool is an int subclass, but `rhs: true` is a config mistake, not a threshold of 1.
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_claims(claims: list[dict], experiments: dict[str, set[str]]) -> None:
    """Reject claims that name a family or experiment the config does not run, before any job
    starts, so a typo costs seconds rather than a whole DAG. Metric keys are only known once runs
    exist; a wrong one shows up later as a ``missing`` verdict.

    ``experiments`` maps each family of the config to the names of its experiments.
    """
    first_index_of_name: dict[str, int] = {}
    for i, claim in enumerate(claims):
        name = claim.get("name")
        if name in first_index_of_name:
            raise ConfigError(
                f"claims.{i}.name: {name!r} is already the name of claims.{first_index_of_name[name]}; "
                "claim names must be unique"
            )
        first_index_of_name[name] = i
        for side in ("lhs", "rhs"):
            address = claim.get(side)
            if side == "rhs" and _is_number(address):
                continue
            key_path = f"claims.{i}.{side}"
            if not isinstance(address, str):
                raise ConfigError(
                    f"{key_path}: must be a metric address <family>/<experiment>/<metric key>"
                    + (" or a number" if side == "rhs" else "")
                )
            try:
                family, experiment, _ = split_address(address)
            except ValueError as e:
                raise ConfigError(f"{key_path}: {e}") from None
            if family not in experiments:
                raise ConfigError(
                    f"{key_path}: family {family!r} is not in this config; allowed: {', '.join(sorted(experiments))}"
                )
            if experiment not in experiments[family]:
                article = "an" if family[0].lower() in "aeiou" else "a"
                raise ConfigError(
                    f"{key_path}: experiment {experiment!r} is not {article} {family} experiment; "
                    f"allowed: {', '.join(sorted(experiments[family]))}"
                )


@dataclass(frozen=True)
class SideEstimate:
    """One side of a claim: the mean over seeds, its standard error (None when unknown), the number
    of seeds that reported the metric, and why there is no value (None when there is one)."""

    value: float | None
    se: float | None
    n_seeds: int | None
    missing: str | None = None


def _finite_or_none(x) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _close_metric_names(metric: str, columns) -> str:
    matches = difflib.get_close_matches(metric, [str(c) for c in columns], n=3)
    return f"; did you mean: {', '.join(matches)}" if matches else ""


def estimate_metric(df: pd.DataFrame, address: str) -> SideEstimate:
    """Mean over an experiment's seeds of one metric, with its standard error.

    With two or more seeds the SE is the spread of the seed values, std(ddof=1)/sqrt(n): it
    measures what a claim is about (does the method win across training runs), including training
    noise that a single run's evaluation SE cannot see. With one seed the only estimate is the
    run's own ``<metric>_se`` column (e.g. the SE of a test BPC over test windows), when reported.
    """
    family, experiment, metric = split_address(address)
    if df.empty or not {"family", "experiment"} <= set(df.columns):
        return SideEstimate(None, None, None, f"experiment {family}/{experiment} has no runs in the summary")
    runs = df[(df["family"] == family) & (df["experiment"] == experiment)]
    if runs.empty:
        return SideEstimate(None, None, None, f"experiment {family}/{experiment} has no runs in the summary")
    if metric not in runs.columns or runs[metric].isna().all():
        return SideEstimate(
            None,
            None,
            0,
            f"metric {metric!r} is not reported by {family}/{experiment}" + _close_metric_names(metric, runs.columns),
        )
    reported = runs[runs[metric].notna()]
    values = reported[metric].astype(float)
    n = len(values)
    mean = float(values.mean())
    if n >= 2:
        se = _finite_or_none(values.std(ddof=1) / math.sqrt(n))
    else:
        se_column = metric + SE_SUFFIX
        se = _finite_or_none(reported[se_column].iloc[0]) if se_column in reported.columns else None
    return SideEstimate(mean, se, n)


def _decide(difference: float, holds: bool, combined_se: float | None) -> tuple[str, str]:
    """Verdict and a one-line reason. A difference inside ``SE_MULTIPLIER`` combined SEs could go
    either way on another set of seeds, so neither side of the claim is established. With an SE of
    exactly zero there is no noise to hide in, so even an exact tie is decided by the operator."""
    outcome = "held" if holds else "failed"
    if combined_se is None:
        return outcome, f"difference {difference:.4g}; standard error unknown, verdict from the values alone"
    band = SE_MULTIPLIER * combined_se
    comparison = f"|difference| {abs(difference):.4g} vs {SE_MULTIPLIER:g} x combined SE {band:.4g}"
    if combined_se > 0 and abs(difference) <= band:
        return "inconclusive", f"{comparison}: within the noise"
    return outcome, comparison


def evaluate_claim(claim: dict, df: pd.DataFrame) -> dict:
    """The verdict of one claim on the summary ``df`` (one row per family, experiment and seed)."""
    op, rhs, margin = claim["op"], claim["rhs"], float(claim.get("margin", 0.0))
    lhs_side = estimate_metric(df, claim["lhs"])
    rhs_side = SideEstimate(float(rhs), 0.0, None) if _is_number(rhs) else estimate_metric(df, rhs)
    result = {
        "name": claim["name"],
        "source": claim.get("source"),
        "lhs": claim["lhs"],
        "op": op,
        "rhs": rhs,
        "lhs_value": lhs_side.value,
        "lhs_se": lhs_side.se,
        "rhs_value": rhs_side.value,
        "rhs_se": rhs_side.se,
        "margin": margin,
        "difference": None,
        "combined_se": None,
        "n_seeds_lhs": lhs_side.n_seeds,
        "n_seeds_rhs": rhs_side.n_seeds,
        "se_known": False,
        "verdict": "missing",
        "detail": None,
    }
    missing = [f"{side}: {s.missing}" for side, s in (("lhs", lhs_side), ("rhs", rhs_side)) if s.missing]
    if missing:
        result["detail"] = "; ".join(missing)
        return result
    threshold = rhs_side.value + margin
    difference = lhs_side.value - threshold
    se_known = lhs_side.se is not None and rhs_side.se is not None
    combined_se = math.hypot(lhs_side.se, rhs_side.se) if se_known else None
    verdict, detail = _decide(difference, COMPARISONS[op](lhs_side.value, threshold), combined_se)
    result.update(difference=difference, combined_se=combined_se, se_known=se_known, verdict=verdict, detail=detail)
    return result


def evaluate_claims(claims: list[dict], df: pd.DataFrame) -> list[dict]:
    """One result dict per claim, in the order of the config (see ``evaluate_claim``)."""
    return [evaluate_claim(claim, df) for claim in claims]


def _format_number(x: float | None) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{x:.4g}"


def _format_estimate(value: float | None, se: float | None, n_seeds: int | None) -> str:
    if value is None:
        return "—"
    text = f"{_format_number(value)} ± {_format_number(se)}"
    return f"{text} (n={n_seeds})" if n_seeds else text


def _cell(text) -> str:
    # a "|" inside a cell would end it early
    return "—" if text is None else str(text).replace("|", "\\|")


def claims_table(results: list[dict]) -> list[str]:
    """Markdown lines of the claims section: one row per claim, then the rule behind the verdicts.
    No claims -> no lines, so a report without claims has no empty section."""
    if not results:
        return []
    lines = [
        "| claim | source | lhs | value ± SE | op | rhs | value ± SE | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        op = f"`{r['op']}`" + (f" (margin {r['margin']:+.4g})" if r.get("margin") else "")
        verdict = f"**{r['verdict'].upper()}**"
        if r["verdict"] in ("held", "failed") and not r.get("se_known"):
            verdict += " (SE unknown)"
        if r["verdict"] == "missing" and r.get("detail"):
            verdict += f" ({r['detail']})"
        rhs_estimate = (
            _format_number(r["rhs_value"])
            if _is_number(r["rhs"])
            else _format_estimate(r["rhs_value"], r["rhs_se"], r["n_seeds_rhs"])
        )
        cells = [
            _cell(r["name"]),
            _cell(r.get("source")),
            f"`{r['lhs']}`",
            _format_estimate(r["lhs_value"], r["lhs_se"], r["n_seeds_lhs"]),
            op,
            f"`{r['rhs']}`" if isinstance(r["rhs"], str) else _format_number(float(r["rhs"])),
            rhs_estimate,
            _cell(verdict),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", RULE_EXPLANATION + "; a verdict with SE unknown is decided from the values alone."]
    return lines


def _plain_json_value(x):
    """numpy scalars -> Python numbers, non-finite floats -> None: strict JSON has no NaN/inf."""
    if isinstance(x, bool) or x is None or isinstance(x, str):
        return x
    import numpy as np

    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    return x


def write_claims(path: Path | str, results: list[dict]) -> None:
    """Write ``{"claims": results}`` atomically, so a crash never leaves a half-written file."""
    plain = [{key: _plain_json_value(value) for key, value in r.items()} for r in results]
    atomic_write_json(Path(path), {"claims": plain})
