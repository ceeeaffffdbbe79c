"""The product speaks of the software, never of how it was made: no development history in what
ships (README, docs, changelog, source, configs, rules, Makefile, bench, scripts, tests)."""

import re
import subprocess

import pytest

from conftest import ROOT

#: phrases that date a text by the way it was written instead of by a version
HISTORY = re.compile(
    r"\bsessions? \d+|\bthis session\b|\bprevious session\b|\bprevious commit\b|\bour machines?\b", re.IGNORECASE
)
SHIPPED = (
    "README.md",
    "CHANGELOG.md",
    "CITATION.cff",
    "Makefile",
    "Snakefile",
    "pyproject.toml",
    "docs/",
    "src/",
    "config/",
    "workflow/",
    "bench/",
    "scripts/",
    "tests/",
    ".ci/",
)


def shipped_files() -> list:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    return sorted(
        ROOT / name
        for name in listed
        if name.startswith(SHIPPED) and (ROOT / name).is_file() and name != "tests/core/test_no_history.py"
    )


def history_lines(path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:  # a binary file (a figure): no prose
        return []
    return [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for n, line in enumerate(text.splitlines(), 1)
        if HISTORY.search(line)
    ]


def test_no_development_history_in_what_ships():
    files = shipped_files()
    assert any(f.name == "README.md" for f in files) and any(f.suffix == ".py" for f in files)
    found = [hit for f in files for hit in history_lines(f)]
    assert not found, "development history in shipped text (say it by version in CHANGELOG.md):\n" + "\n".join(found)


@pytest.mark.parametrize(
    "line",
    [
        "Session 16 ran it on one GPU",
        "measured in this session",
        "a previous session's run",
        "the numbers of the previous commit",
        "our machines find it",
        "sessions 9-17",
    ],
)
def test_the_history_pattern_catches(line):
    assert HISTORY.search(line)


@pytest.mark.parametrize(
    "line",
    ['@pytest.fixture(scope="session")', "pytest's session-scoped fixtures", "dagzoo 0.2.0 retrains every CPC run"],
)
def test_the_history_pattern_spares(line):
    assert not HISTORY.search(line)
