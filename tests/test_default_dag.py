"""The README's main job end to end: the default config on the embedded KJV corpus (slow: about
7-9 minutes on 2 cores; run with `make test-slow`)."""

import subprocess

import pandas as pd
import pytest
import yaml

from conftest import BIN, ROOT


@pytest.mark.slow
def test_default_dag_reports_every_model_and_says_who_wins(tmp_path):
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["results"] = str(tmp_path / "results")
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    r = subprocess.run([str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
                        "--profile", str(ROOT / "workflow" / "profiles" / "local"), "--cores", "2",
                        "--configfile", str(tmp_path / "cfg.yaml")], capture_output=True, text=True, timeout=3600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    df = pd.read_parquet(tmp_path / "results" / "summary.parquet")
    assert set(df.experiment) == set(cfg["text"]["experiments"])
    bpc = df.set_index("experiment")["test/bpc"]
    assert bpc["kn9"] < bpc["kn7"] < bpc["kn5"] < bpc["kn3"]
    assert 1.6 < bpc["kn9"] < 1.85 and bpc["transformer"] < bpc["kn3"]
    report = (tmp_path / "results" / "report" / "report.md").read_text()
    verdict = "does not beat" if bpc["transformer"] > bpc["kn9"] else "beats"
    assert f"**transformer** (transformer) {verdict} the best n-gram" in report
