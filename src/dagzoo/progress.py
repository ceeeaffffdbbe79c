"""Progress bars for long work: live in a terminal, one plain line every 30 s in a log file."""

from __future__ import annotations

import sys

from tqdm.auto import tqdm


def progress(iterable=None, **kwargs):
    kwargs.setdefault("mininterval", 2.0 if sys.stderr.isatty() else 30.0)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kwargs)
