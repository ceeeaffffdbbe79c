"""Checked numeric types for the stages' command-line options (a stage run by hand gets the same
limits the config schema gives the DAG's values), and the parser that reports a bad option in
one line."""

from __future__ import annotations

import argparse
import math
import sys


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (exit status 2, as argparse's)."""

    def error(self, message: str):
        sys.stderr.write(f"dagzoo: error: {self.prog}: {message} (see {self.prog} --help)\n")
        sys.exit(2)


def int_at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def float_above(bound: float, inclusive: bool = False):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value) or value < bound or (value == bound and not inclusive):
            raise argparse.ArgumentTypeError(
                f"must be a finite number {'>=' if inclusive else '>'} {bound}, got {text}"
            )
        return value

    parse.__name__ = f"number {'>=' if inclusive else '>'} {bound}"
    return parse


positive_int = int_at_least(1)
positive_float = float_above(0.0)
