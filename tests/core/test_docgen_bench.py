"""Benchmark records (dagzoo.docgen.bench) and the benchmarks page made from them."""

from __future__ import annotations

import json

import pytest

from dagzoo.errors import DataError

HEADER = {
    "date": "2026-01-02T03:04:05+0000",
    "argv": ["--quick", "--threads", "2"],
    "cpu_model": "Test CPU 9000",
    "cpu_count": 8,
    "python": "3.11.7",
    "host": "node1",
    "torch_version": "2.13.0+cpu",
    "dagzoo_version": "0.2.0",
    "git_commit": "0123abcd",
    "torch_threads": 2,
}


def test_table_prints_as_before_and_save_writes_the_record(tmp_path, monkeypatch, capsys):
    from dagzoo.docgen import bench

    monkeypatch.setattr(bench, "_items", [])
    bench.table("Speed", ["model", "tokens/s"], [["a", "1,234"], ["bigger name", 56]])
    bench.note("FPS: 12 points/s\n")
    bench.record("Printed by the script", ["x"], [[1.5]])
    assert capsys.readouterr().out == (
        "\nSpeed\n| model       | tokens/s |\n|-------------|----------|\n"
        "| a           | 1,234    |\n| bigger name | 56       |\nFPS: 12 points/s\n\n"
    )
    path = bench.save(tmp_path / "bench_fake.py", out_dir=tmp_path / "out", argv=["--quick"])
    assert path == tmp_path / "out" / "bench_fake.json"
    doc = json.loads(path.read_text())
    assert doc["script"] == "bench_fake.py"
    h = doc["header"]
    assert h["argv"] == ["--quick"] and h["date"][:2] == "20"
    assert {"git_commit", "cpu_model", "cpu_count", "torch_version", "python", "host", "dagzoo_version"} <= set(h)
    assert doc["items"] == [
        {
            "kind": "table",
            "title": "Speed",
            "header": ["model", "tokens/s"],
            "rows": [["a", "1,234"], ["bigger name", 56]],
        },
        {"kind": "text", "text": "FPS: 12 points/s"},
        {"kind": "table", "title": "Printed by the script", "header": ["x"], "rows": [[1.5]]},
    ]


def test_bench_page_from_records(tmp_path):
    from dagzoo.docgen.bench import write_bench_page

    out_dir = tmp_path / "out"
    out_dir.mkdir()
    points = {
        "script": "bench_points.py",
        "header": {**HEADER, "torch_threads": 1},
        "items": [
            {"kind": "text", "text": "train dgcnn            128 points: 95 clouds/s"},
            {"kind": "text", "text": "train voxnet           128 points: 568 clouds/s"},
        ],
    }
    text = {
        "script": "bench_text.py",
        "header": {k: v for k, v in HEADER.items() if k != "cpu_model"},
        "items": [
            {
                "kind": "table",
                "title": "Kneser-Ney",
                "header": ["order", "ppl | note"],
                "rows": [[3, "5.4321"], [5, None]],
            },
            {"kind": "text", "text": "done"},
        ],
    }
    (out_dir / "bench_points.json").write_text(json.dumps(points))
    (out_dir / "bench_text.json").write_text(json.dumps(text))
    page = write_bench_page(out_dir, tmp_path / "docs" / "benchmarks.md").read_text()
    # the scripts in the page's order (text before points), each with its facts then its items
    assert page.index("## bench_text.py") < page.index("## bench_points.py")
    section = page[page.index("## bench_text.py") : page.index("## bench_points.py")]
    assert "- command: `python bench/bench_text.py --quick --threads 2`" in section
    assert "- date: 2026-01-02T03:04:05+0000" in section and "`0123abcd`" in section
    assert "- CPU: not recorded; logical CPUs: 8; torch threads: 2" in section
    assert "- torch: 2.13.0+cpu; dagzoo: 0.2.0; python: 3.11.7; host: node1" in section
    assert "### Kneser-Ney\n\n| order | ppl \\| note |\n|---|---|\n| 3 | 5.4321 |\n| 5 | — |\n\n* done\n" in section
    points_section = page[page.index("## bench_points.py") :]
    assert "- CPU: Test CPU 9000; logical CPUs: 8; torch threads: 1" in points_section
    assert "* train dgcnn 128 points: 95 clouds/s\n* train voxnet 128 points: 568 clouds/s\n" in points_section


def test_bench_page_errors(tmp_path):
    from dagzoo.docgen.bench import write_bench_page

    with pytest.raises(DataError, match="no such folder"):
        write_bench_page(tmp_path / "nowhere", tmp_path / "page.md")
    (tmp_path / "out").mkdir()
    with pytest.raises(DataError, match="no benchmark records"):
        write_bench_page(tmp_path / "out", tmp_path / "page.md")
    (tmp_path / "out" / "bench_text.json").write_text('{"script": "bench_text.py", "items": []}')
    with pytest.raises(DataError, match="bench_text.json: missing header"):
        write_bench_page(tmp_path / "out", tmp_path / "page.md")
    assert not (tmp_path / "page.md").exists()
