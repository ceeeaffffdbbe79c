"""Claims: a paper's qualitative statements checked against the run summary, with standard errors."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from jsonschema import Draft202012Validator

from dagzoo.claims import CLAIM_SCHEMA, check_claims, claims_table, evaluate_claims, split_address, write_claims
from dagzoo.errors import ConfigError

KID_EDM = "image/edm/samplers/heun18/kid_80"
KID_DDPM = "image/ddpm/samplers/ddpm/kid_80"
BPC = "text/transformer/test/bpc"

EXAMPLE = {
    "name": "EDM Heun-35 matches DDPM-1000",
    "source": "Karras et al. 2022",
    "lhs": KID_EDM,
    "op": "<=",
    "rhs": KID_DDPM,
}


def summary(rows: list[dict]) -> pd.DataFrame:
    """A summary frame shaped like dagzoo.report.collect's: one row per family/experiment/seed."""
    return pd.DataFrame(rows)


def one_seed_images(edm_kid: float, edm_se: float | None = 0.001) -> pd.DataFrame:
    return summary(
        [
            {
                "family": "image",
                "experiment": "edm",
                "seed": 0,
                "samplers/heun18/kid_80": edm_kid,
                "samplers/heun18/kid_80_se": edm_se if edm_se is not None else np.nan,
            },
            {
                "family": "image",
                "experiment": "ddpm",
                "seed": 0,
                "samplers/ddpm/kid_80": 0.020,
                "samplers/ddpm/kid_80_se": 0.002,
            },
        ]
    )


def claim(**overrides) -> dict:
    return {**EXAMPLE, **overrides}


def test_split_address_keeps_slashes_of_the_metric_key():
    assert split_address(KID_EDM) == ("image", "edm", "samplers/heun18/kid_80")
    with pytest.raises(ValueError):
        split_address("image/edm")


# --- one seed: the SE is the run's own <metric>_se column -------------------------------------------------


def test_one_seed_held_with_se_columns():
    # d = 0.010 - 0.020 = -0.010; combined SE = sqrt(0.001^2 + 0.002^2) = 0.0022361; 2 SE = 0.0044721
    [r] = evaluate_claims([claim()], one_seed_images(0.010))
    assert r["verdict"] == "held"
    assert r["lhs_value"] == pytest.approx(0.010) and r["lhs_se"] == pytest.approx(0.001)
    assert r["rhs_value"] == pytest.approx(0.020) and r["rhs_se"] == pytest.approx(0.002)
    assert r["difference"] == pytest.approx(-0.010)
    assert r["combined_se"] == pytest.approx(math.sqrt(5e-6))
    assert r["combined_se"] == pytest.approx(0.00223607, rel=1e-6)
    assert r["n_seeds_lhs"] == 1 and r["n_seeds_rhs"] == 1
    assert r["se_known"] is True
    assert (r["name"], r["source"], r["lhs"], r["op"], r["rhs"], r["margin"]) == (
        EXAMPLE["name"],
        "Karras et al. 2022",
        KID_EDM,
        "<=",
        KID_DDPM,
        0.0,
    )


def test_one_seed_failed_when_the_opposite_is_clear():
    [r] = evaluate_claims([claim(op=">=")], one_seed_images(0.010))
    assert r["verdict"] == "failed"


def test_one_seed_inconclusive_within_two_combined_se():
    # d = 0.019 - 0.020 = -0.001, |d| <= 0.0044721: the claim holds on these numbers but not beyond noise
    for op in ("<=", ">="):
        [r] = evaluate_claims([claim(op=op)], one_seed_images(0.019))
        assert r["verdict"] == "inconclusive", op
        assert r["difference"] == pytest.approx(-0.001)


def test_one_seed_without_se_column_is_decided_from_values_and_says_so():
    df = summary(
        [
            {"family": "text", "experiment": "transformer", "seed": 0, "test/bpc": 1.9},
            {"family": "text", "experiment": "kn", "seed": 0, "test/bpc": 2.0},
        ]
    )
    [r] = evaluate_claims([{"name": "x", "lhs": BPC, "op": "<", "rhs": "text/kn/test/bpc"}], df)
    assert r["verdict"] == "held"
    assert r["se_known"] is False
    assert r["lhs_se"] is None and r["combined_se"] is None
    assert r["difference"] == pytest.approx(-0.1)
    assert r["source"] is None


def test_non_finite_se_column_means_unknown_se():
    [r] = evaluate_claims([claim()], one_seed_images(0.019, edm_se=None))
    assert r["lhs_se"] is None and r["se_known"] is False
    assert r["verdict"] == "held"  # 0.019 <= 0.020, no noise estimate to say otherwise


# --- several seeds: the SE is the spread over seeds --------------------------------------------------------


def three_seed_text() -> pd.DataFrame:
    # the runs' own test/bpc_se values are deliberately huge: with n >= 2 seeds they must be ignored
    return summary(
        [
            {"family": "text", "experiment": "transformer", "seed": s, "test/bpc": v, "test/bpc_se": 9.0}
            for s, v in enumerate([1.0, 1.2, 1.4])
        ]
    )


def test_three_seeds_use_std_over_seeds():
    # mean 1.2; std(ddof=1) = sqrt((0.04 + 0 + 0.04) / 2) = 0.2; SE = 0.2 / sqrt(3) = 0.1154701
    # against a fixed 1.5 (SE 0): d = -0.3, 2 SE = 0.2309401 -> held
    [r] = evaluate_claims([{"name": "bpc below 1.5", "lhs": BPC, "op": "<", "rhs": 1.5}], three_seed_text())
    assert r["lhs_value"] == pytest.approx(1.2)
    assert r["lhs_se"] == pytest.approx(0.2 / math.sqrt(3))
    assert r["lhs_se"] == pytest.approx(0.1154701, rel=1e-6)
    assert r["n_seeds_lhs"] == 3
    assert r["rhs_value"] == 1.5 and r["rhs_se"] == 0.0 and r["n_seeds_rhs"] is None
    assert r["combined_se"] == pytest.approx(0.1154701, rel=1e-6)
    assert r["difference"] == pytest.approx(-0.3)
    assert r["verdict"] == "held"


def test_three_seeds_inconclusive_and_failed_against_a_number():
    df = three_seed_text()
    # d = 1.2 - 1.4 = -0.2, within 0.2309401
    [r] = evaluate_claims([{"name": "a", "lhs": BPC, "op": "<", "rhs": 1.4}], df)
    assert r["verdict"] == "inconclusive"
    # d = 1.2 - 0.9 = 0.3, outside: the claim "bpc < 0.9" is clearly false
    [r] = evaluate_claims([{"name": "b", "lhs": BPC, "op": "<", "rhs": 0.9}], df)
    assert r["verdict"] == "failed"


def test_seed_se_on_both_sides_combine_in_quadrature():
    df = summary(
        [
            {"family": "text", "experiment": e, "seed": s, "test/bpc": v}
            for e, vals in (("transformer", [1.0, 1.2, 1.4]), ("kn", [2.0, 2.3]))
            for s, v in enumerate(vals)
        ]
    )
    # rhs: mean 2.15, std(ddof=1) = sqrt(2 * 0.15^2) = 0.2121320, SE = 0.2121320 / sqrt(2) = 0.15
    [r] = evaluate_claims([{"name": "n", "lhs": BPC, "op": "<", "rhs": "text/kn/test/bpc"}], df)
    assert r["rhs_value"] == pytest.approx(2.15)
    assert r["rhs_se"] == pytest.approx(0.15)
    assert r["n_seeds_rhs"] == 2
    assert r["combined_se"] == pytest.approx(math.sqrt(0.2**2 / 3 + 0.15**2))
    assert r["difference"] == pytest.approx(-0.95)
    assert r["verdict"] == "held"


def test_exact_tie_with_zero_se_is_decided_by_the_operator():
    # identical seeds: SE exactly 0, so there is no noise band; "<=" holds a tie and "<" does not
    df = summary([{"family": "text", "experiment": "transformer", "seed": s, "test/bpc": 1.0} for s in range(2)])
    [le, lt] = evaluate_claims(
        [{"name": "le", "lhs": BPC, "op": "<=", "rhs": 1.0}, {"name": "lt", "lhs": BPC, "op": "<", "rhs": 1.0}], df
    )
    assert le["combined_se"] == 0.0 and le["difference"] == 0.0
    assert (le["verdict"], lt["verdict"]) == ("held", "failed")


# --- margin ----------------------------------------------------------------------------------------------


def test_margin_shifts_the_threshold():
    df = summary([{"family": "text", "experiment": "transformer", "seed": 0, "test/bpc": 1.05}])
    base = {"name": "m", "lhs": BPC, "op": "<=", "rhs": 1.0}
    [without] = evaluate_claims([base], df)
    [with_margin] = evaluate_claims([{**base, "margin": 0.1}], df)
    assert without["verdict"] == "failed"
    assert without["difference"] == pytest.approx(0.05)
    assert with_margin["verdict"] == "held"
    assert with_margin["margin"] == 0.1
    assert with_margin["difference"] == pytest.approx(1.05 - 1.1)


def test_margin_counts_in_the_inconclusive_band():
    # 1 seed, lhs 0.024 +- 0.001 vs rhs 0.020 +- 0.002: d = 0.004 <= 0.0044721 (inconclusive);
    # with margin -0.001 the claim is "lhs <= 0.019": d = 0.005 > 0.0044721 -> failed
    [plain] = evaluate_claims([claim()], one_seed_images(0.024))
    [strict] = evaluate_claims([claim(margin=-0.001)], one_seed_images(0.024))
    assert plain["verdict"] == "inconclusive"
    assert strict["verdict"] == "failed"
    assert strict["difference"] == pytest.approx(0.005)


# --- missing ---------------------------------------------------------------------------------------------


def test_missing_experiment_says_which():
    [r] = evaluate_claims([claim(rhs="image/nope/samplers/ddpm/kid_80")], one_seed_images(0.01))
    assert r["verdict"] == "missing"
    assert "rhs" in r["detail"] and "image/nope" in r["detail"]
    assert r["lhs_value"] == pytest.approx(0.01)  # the side that exists is still reported
    assert r["difference"] is None


def test_missing_metric_says_which_and_suggests():
    df = three_seed_text()
    [r] = evaluate_claims([{"name": "typo", "lhs": "text/transformer/test/bcp", "op": "<", "rhs": 2}], df)
    assert r["verdict"] == "missing"
    assert "lhs" in r["detail"] and "'test/bcp'" in r["detail"] and "test/bpc" in r["detail"]


def test_metric_reported_only_by_another_experiment_is_missing():
    # the column exists (another experiment has it) but is NaN for this one
    df = summary(
        [
            {"family": "text", "experiment": "transformer", "seed": 0, "test/bpc": 1.2},
            {"family": "text", "experiment": "kn", "seed": 0, "test/genppl": 40.0},
        ]
    )
    [r] = evaluate_claims([{"name": "x", "lhs": BPC, "op": "<", "rhs": "text/kn/test/bpc"}], df)
    assert r["verdict"] == "missing"
    assert "text/kn" in r["detail"] and r["detail"].startswith("rhs")


def test_empty_summary_makes_every_claim_missing():
    results = evaluate_claims([claim(), {"name": "t", "lhs": BPC, "op": ">", "rhs": 0}], pd.DataFrame())
    assert [r["verdict"] for r in results] == ["missing", "missing"]


# --- validation before any job runs ----------------------------------------------------------------------

EXPERIMENTS = {"image": {"edm", "ddpm"}, "text": {"transformer", "kn"}}


def test_check_claims_accepts_valid_claims_and_numeric_rhs():
    check_claims([EXAMPLE, {"name": "t", "lhs": BPC, "op": "<", "rhs": 2.0}], EXPERIMENTS)


def test_check_claims_names_the_key_path_of_an_unknown_family():
    claims = [EXAMPLE, claim(name="b"), claim(name="c", lhs="imgae/edm/kid")]
    with pytest.raises(ConfigError) as e:
        check_claims(claims, EXPERIMENTS)
    assert str(e.value) == "claims.2.lhs: family 'imgae' is not in this config; allowed: image, text"


def test_check_claims_names_the_key_path_of_an_unknown_experiment():
    with pytest.raises(ConfigError) as e:
        check_claims([claim(rhs="image/foo/kid")], EXPERIMENTS)
    assert str(e.value) == "claims.0.rhs: experiment 'foo' is not an image experiment; allowed: ddpm, edm"


@pytest.mark.probe
def test_check_claims_rejects_a_malformed_address_and_duplicate_names():
    with pytest.raises(ConfigError, match=r"^claims\.0\.lhs: "):
        check_claims([claim(lhs="image/edm")], EXPERIMENTS)
    with pytest.raises(ConfigError, match=r"^claims\.1\.name: .*claims\.0"):
        check_claims([EXAMPLE, EXAMPLE], EXPERIMENTS)


# --- the JSON schema fragment ----------------------------------------------------------------------------


def test_schema_accepts_the_example_and_a_numeric_threshold():
    Draft202012Validator.check_schema(CLAIM_SCHEMA)
    validator = Draft202012Validator(CLAIM_SCHEMA)
    assert validator.is_valid([EXAMPLE])
    assert validator.is_valid([{"name": "t", "lhs": BPC, "op": ">", "rhs": 1.5, "margin": 0.1}])


@pytest.mark.probe
@pytest.mark.parametrize(
    "bad",
    [
        claim(op="=="),
        claim(lhs="image/edm"),
        claim(rhs=True),
        claim(margin="0.1"),
        claim(colour="red"),
        {k: v for k, v in EXAMPLE.items() if k != "rhs"},
    ],
)
def test_schema_rejects_bad_claims(bad):
    assert not Draft202012Validator(CLAIM_SCHEMA).is_valid([bad])


# --- report outputs --------------------------------------------------------------------------------------


def test_claims_table_shows_values_and_every_verdict():
    df = one_seed_images(0.010)
    results = evaluate_claims(
        [
            claim(name="held | piped"),
            claim(name="failed", op=">="),
            claim(name="close", lhs=KID_EDM, rhs=0.0105),
            claim(name="gone", rhs="image/nope/kid"),
        ],
        df,
    )
    lines = claims_table(results)
    text = "\n".join(lines)
    assert lines[0] == "| claim | source | lhs | value ± SE | op | rhs | value ± SE | verdict |"
    for verdict in ("**HELD**", "**FAILED**", "**INCONCLUSIVE**", "**MISSING**"):
        assert verdict in text
    assert "held \\| piped" in text  # a pipe in a name does not break the row
    assert "0.01 ± 0.001 (n=1)" in text and "0.02 ± 0.002 (n=1)" in text
    assert "within two combined standard errors" in lines[-1]
    # every table row has the 8 cells of the header
    rows = [ln for ln in lines if ln.startswith("| ")]
    assert len(rows) == 1 + len(results)
    assert all(ln.replace("\\|", "").count("|") == 9 for ln in rows)


def test_claims_table_marks_unknown_se_and_missing_values():
    df = summary([{"family": "text", "experiment": "transformer", "seed": 0, "test/bpc": 1.23456}])
    results = evaluate_claims(
        [
            {"name": "t", "lhs": BPC, "op": "<", "rhs": 2},
            {"name": "m", "lhs": BPC, "op": "<", "rhs": "text/kn/test/bpc"},
        ],
        df,
    )
    rows = claims_table(results)[2:4]
    assert "1.235 ± — (n=1)" in rows[0] and "(SE unknown)" in rows[0]
    assert rows[1].split(" | ")[6] == "—"
    assert claims_table([]) == []


def test_write_claims_is_strict_json_with_plain_numbers(tmp_path):
    results = evaluate_claims([claim()], one_seed_images(0.010))
    results[0]["lhs_value"] = np.float32(0.25)
    results[0]["difference"] = float("nan")
    path = tmp_path / "report" / "claims.json"
    write_claims(path, results)

    def no_constants(name):
        raise AssertionError(f"non-standard JSON constant {name}")

    data = json.loads(path.read_text(), parse_constant=no_constants)
    [r] = data["claims"]
    assert r["lhs_value"] == 0.25 and r["difference"] is None
    assert r["verdict"] == "held" and r["name"] == EXAMPLE["name"]
