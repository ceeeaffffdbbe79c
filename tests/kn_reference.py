"""Brute-force pure-Python reference for interpolated modified Kneser-Ney.

This is a deliberately simple, independent implementation of interpolated
modified Kneser-Ney smoothing (Chen & Goodman 1998) used by the unit tests as
ground truth for the fast vectorized numpy implementation.  It favours clarity
over speed and uses only the standard library.

Semantics
---------
* Tokens are ints in [0, vocab_size).  ``train`` is ONE continuous token
  stream: no sentence boundaries, no BOS/EOS symbols.  The n-grams of order k
  are all k-length contiguous slices of ``train``.

* Scoring a window ``w``: the context of token ``j`` is
  ``w[max(0, j - order + 1):j]`` -- the history is truncated at the window
  start, so the first token has an empty context.  For a context of length m
  the model used is the interpolated modified KN model of order m + 1: its top
  level (order m + 1) uses RAW counts, all lower levels (orders 1..m) use
  CONTINUATION counts.

* Continuation count of a k-gram g (k below the top order):
  N1+(. g) = number of distinct (k+1)-grams in ``train`` whose last k tokens
  equal g.  It is 0 for a k-gram that only occurs at the very start of the
  stream.

* Level k (k >= 1) with context h (the last k-1 context tokens, empty for
  k = 1) and a(.) the count type of that level:
      A(h) = sum_w a(h w)
      A(h) == 0:  p_k(w|h) = p_{k-1}(w|h')      (pass-through, covers unseen h)
      otherwise:  p_k(w|h) = max(a(h w) - D(a(h w)), 0) / A(h)
                             + gamma(h) * p_{k-1}(w|h')
      gamma(h) = (D1 N1(h) + D2 N2(h) + D3 N3+(h)) / A(h)
  where Ni(h) = #{w : a(h w) == i}, N3+(h) = #{w : a(h w) >= 3},
  D(0) = 0, D(1) = D1, D(2) = D2, D(c >= 3) = D3, h' = h without its first
  token, and p_0(w) = 1 / vocab_size (uniform over the whole vocabulary).

* Discounts are computed separately for every order k and every count type
  (raw / continuation) from the count-of-counts of that order's k-grams under
  that count type: n_i = number of distinct k-grams whose count equals i.
      Y  = n1 / (n1 + 2 n2)
      D1 = 1 - 2 Y n2 / n1
      D2 = 2 - 3 Y n3 / n2
      D3 = 3 - 4 Y n4 / n3
  If any of n1, n2, n3 is 0, or any D_i falls outside [0, i], the fallback
  (D1, D2, D3) = (0.5, 1.0, 1.5) (KenLM's --discount_fallback) is used for
  that order and count type.  n4 == 0 is fine (D3 = 3).

Public API: ``reference_logprobs`` and ``reference_distribution``.
Run this file directly for a small self-check.
"""

import math
from collections import Counter

RAW = "raw"
CONT = "cont"
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)


class _KNReference:
    """Counts, discounts and probabilities; everything computed lazily."""

    def __init__(self, train, vocab_size):
        self.train = [int(t) for t in train]
        self.vocab_size = int(vocab_size)
        for t in self.train:
            if not 0 <= t < self.vocab_size:
                raise ValueError("token %r outside [0, %d)" % (t, self.vocab_size))
        self._counts = {}  # (k, type) -> Counter{k-gram tuple: count > 0}
        self._discounts = {}  # (k, type) -> (D1, D2, D3)
        self._stats = {}  # (k, type, h) -> (A, N1, N2, N3plus)

    # ----------------------------------------------------------------- counts
    def kgrams(self, k):
        """All k-length contiguous slices of train (with repetition)."""
        return [tuple(self.train[i : i + k]) for i in range(len(self.train) - k + 1)]

    def counts(self, k, kind):
        key = (k, kind)
        if key not in self._counts:
            if kind == RAW:
                c = Counter(self.kgrams(k))
            else:
                # N1+(. g): distinct (k+1)-grams whose last k tokens are g.
                c = Counter()
                for g in set(self.kgrams(k + 1)):
                    c[g[1:]] += 1
            self._counts[key] = c
        return self._counts[key]

    def count(self, k, kind, gram):
        return self.counts(k, kind).get(tuple(gram), 0)

    # -------------------------------------------------------------- discounts
    def discounts(self, k, kind):
        key = (k, kind)
        if key not in self._discounts:
            values = list(self.counts(k, kind).values())
            n1 = sum(1 for c in values if c == 1)
            n2 = sum(1 for c in values if c == 2)
            n3 = sum(1 for c in values if c == 3)
            n4 = sum(1 for c in values if c == 4)
            result = FALLBACK_DISCOUNTS
            if n1 > 0 and n2 > 0 and n3 > 0:
                y = n1 / (n1 + 2 * n2)
                d1 = 1 - 2 * y * n2 / n1
                d2 = 2 - 3 * y * n3 / n2
                d3 = 3 - 4 * y * n4 / n3
                if 0 <= d1 <= 1 and 0 <= d2 <= 2 and 0 <= d3 <= 3:
                    result = (d1, d2, d3)
            self._discounts[key] = result
        return self._discounts[key]

    @staticmethod
    def discount_for(count, discounts):
        d1, d2, d3 = discounts
        if count == 0:
            return 0.0
        if count == 1:
            return d1
        if count == 2:
            return d2
        return d3

    # ------------------------------------------------------ context statistics
    def context_stats(self, k, kind, h):
        """(A(h), N1(h), N2(h), N3+(h)) for level k, count type kind."""
        key = (k, kind, h)
        if key not in self._stats:
            total = n1 = n2 = n3p = 0
            for w in range(self.vocab_size):
                a = self.count(k, kind, h + (w,))
                total += a
                if a == 1:
                    n1 += 1
                elif a == 2:
                    n2 += 1
                elif a >= 3:
                    n3p += 1
            self._stats[key] = (total, n1, n2, n3p)
        return self._stats[key]

    # ----------------------------------------------------------- probability
    def level_prob(self, k, top, h, w):
        """p_k(w | h) inside the model whose top level is `top`."""
        if k == 0:
            return 1.0 / self.vocab_size
        assert len(h) == k - 1
        lower = self.level_prob(k - 1, top, h[1:], w)
        kind = RAW if k == top else CONT
        total, n1, n2, n3p = self.context_stats(k, kind, h)
        if total == 0:
            return lower
        d = self.discounts(k, kind)
        a = self.count(k, kind, h + (w,))
        gamma = (d[0] * n1 + d[1] * n2 + d[2] * n3p) / total
        return max(a - self.discount_for(a, d), 0.0) / total + gamma * lower

    def prob(self, w, context):
        """P(w | context) using the model of order len(context) + 1."""
        context = tuple(int(t) for t in context)
        top = len(context) + 1
        return self.level_prob(top, top, context, int(w))


def reference_logprobs(train, vocab_size, order, windows):
    """Natural-log probability of every token of every window."""
    if order < 1:
        raise ValueError("order must be >= 1")
    model = _KNReference(train, vocab_size)
    out = []
    for window in windows:
        window = [int(t) for t in window]
        row = []
        for j, tok in enumerate(window):
            context = window[max(0, j - order + 1) : j]
            row.append(math.log(model.prob(tok, context)))
        out.append(row)
    return out


def reference_distribution(train, vocab_size, order, context):
    """The full distribution P(w | context) for w in range(vocab_size) (len(context) <= order-1)."""
    if order < 1:
        raise ValueError("order must be >= 1")
    if len(context) > order - 1:
        raise ValueError("context longer than order - 1")
    model = _KNReference(train, vocab_size)
    return [model.prob(w, context) for w in range(vocab_size)]


def _self_check():
    import random

    rng = random.Random(0)
    checked = 0
    for trial in range(6):
        vocab_size = rng.randint(2, 12)
        length = rng.randint(1, 300)
        # Skewed token distribution so higher counts occur too.
        weights = [1.0 / (i + 1) for i in range(vocab_size)]
        train = rng.choices(range(vocab_size), weights=weights, k=length)
        for order in range(1, 5):
            for m in range(order):
                contexts = [[rng.randrange(vocab_size) for _ in range(m)]]
                if len(train) >= m:
                    start = rng.randint(0, len(train) - m)
                    contexts.append(train[start : start + m])
                    contexts.append(train[:m])
                for context in contexts:
                    dist = reference_distribution(train, vocab_size, order, context)
                    total = math.fsum(dist)
                    assert abs(total - 1.0) <= 1e-12, (trial, order, context, total)
                    assert all(p > 0 for p in dist), (trial, order, context, dist)
                    checked += 1
            # logprobs agree with the distributions they are built from
            windows = [train[:10], [rng.randrange(vocab_size) for _ in range(7)], []]
            lps = reference_logprobs(train, vocab_size, order, windows)
            for window, row in zip(windows, lps):
                assert len(row) == len(window)
                for j, (tok, lp) in enumerate(zip(window, row)):
                    ctx = window[max(0, j - order + 1) : j]
                    p = reference_distribution(train, vocab_size, order, ctx)[tok]
                    assert abs(lp - math.log(p)) <= 1e-12
    # A tiny hand-checkable case: unigram raw model on [0, 0, 1], V = 3.
    # n1 = 1, n2 = 1, n3 = 0 -> fallback D = (0.5, 1.0, 1.5).
    # A = 3, gamma = (0.5 * 1 + 1.0 * 1) / 3 = 0.5.
    dist = reference_distribution([0, 0, 1], 3, 1, [])
    expected = [(2 - 1.0) / 3 + 0.5 / 3, (1 - 0.5) / 3 + 0.5 / 3, 0.5 / 3]
    assert all(abs(a - b) <= 1e-15 for a, b in zip(dist, expected)), dist
    print("kn_reference self-check passed (%d distributions)" % checked)


if __name__ == "__main__":
    _self_check()
