"""Interpolated modified Kneser-Ney n-gram language model (Chen & Goodman 1998), vectorized.

Definitions (one level k = n-gram order k, context h = the last k-1 tokens, h' = h minus its
first token, a(.) = the count type of the level):

    A(h)        = sum_w a(h w)
    p_k(w | h)  = [max(a(h w) - D(a(h w)), 0) + (D1 N1(h) + D2 N2(h) + D3 N3+(h)) p_{k-1}(w | h')] / A(h)
    p_k(w | h)  = p_{k-1}(w | h')                      if A(h) == 0 (unseen context)
    p_0(w)      = 1 / V                                 (uniform over the whole vocabulary)

The top level uses raw counts; lower levels use continuation counts N1+(. g), the number of
distinct left extensions of g. Discounts D1, D2, D3+ are estimated per order and count type
from counts-of-counts: Y = n1/(n1+2 n2), D_i = i - (i+1) Y n_{i+1}/n_i; where they are undefined
or outside [0, i] (tiny corpora) we fall back to KenLM's --discount_fallback values 0.5, 1, 1.5.

The training text is one continuous token stream. Evaluation follows dagzoo's window protocol:
the history of a token is truncated at its window start, and a token with m < n-1 tokens of
history is scored by the order-(m+1) model (raw counts on top), exactly the information an
autoregressive transformer sees with a BOS at the start of its window.

Every k-gram gets an integer id: its rank among the sorted unique keys
``id(prefix (k-1)-gram) * V + last token``. Lookups are ``np.searchsorted`` over those keys, so
building and scoring are a few ``np.unique``/``bincount``/``searchsorted`` calls per order and
never loop over n-grams in Python.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dagzoo.data.integrity import load_npz
from dagzoo.errors import DataError
from dagzoo.io import atomic_writer

FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)


def modified_kn_discounts(counts: np.ndarray) -> tuple[float, float, float]:
    """Chen & Goodman's D1, D2, D3+ from the counts of one order (zero counts are ignored)."""
    n1, n2, n3, n4 = (int(np.count_nonzero(counts == i)) for i in (1, 2, 3, 4))
    if n1 == 0 or n2 == 0 or n3 == 0:
        return FALLBACK_DISCOUNTS
    y = n1 / (n1 + 2 * n2)
    d = (1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3)
    if not all(0.0 <= di <= i for i, di in enumerate(d, start=1)):
        return FALLBACK_DISCOUNTS
    return d


def _discount_of(counts: np.ndarray, discounts: tuple[float, float, float]) -> np.ndarray:
    """D(c): 0 for unseen, D1, D2, D3+ for counts 1, 2, >= 3."""
    d1, d2, d3 = discounts
    return np.select([counts == 0, counts == 1, counts == 2], [0.0, d1, d2], default=d3)


@dataclass
class KNLevel:
    """Statistics of one order under one count type (raw or continuation)."""

    counts: np.ndarray  # a(h w) per unique k-gram id
    discounts: tuple[float, float, float]
    context_total: np.ndarray  # A(h) per (k-1)-gram id (a single entry for k = 1)
    context_backoff_mass: np.ndarray  # D1 N1(h) + D2 N2(h) + D3 N3+(h) per context id

    @classmethod
    def from_counts(cls, counts: np.ndarray, context_ids: np.ndarray, n_contexts: int) -> "KNLevel":
        counts = counts.astype(np.float64)
        discounts = modified_kn_discounts(counts)
        discount = _discount_of(counts, discounts)
        return cls(
            counts=counts,
            discounts=discounts,
            context_total=np.bincount(context_ids, weights=counts, minlength=n_contexts),
            context_backoff_mass=np.bincount(context_ids, weights=discount, minlength=n_contexts),
        )

    def discount_of(self, counts: np.ndarray) -> np.ndarray:
        return _discount_of(counts, self.discounts)


class KneserNeyLM:
    """An order-n interpolated modified Kneser-Ney model over a vocabulary of V token ids."""

    def __init__(self, order: int, vocab_size: int, keys: list[np.ndarray], raw: list[KNLevel], cont: list[KNLevel]):
        self.order = order
        self.vocab_size = vocab_size
        self.keys = keys  # keys[k-1]: sorted unique keys of the k-grams
        self.raw = raw  # raw[k-1]: level k with raw counts (k = 1..n)
        self.cont = cont  # cont[k-1]: level k with continuation counts (k = 1..n-1)

    # ------------------------------------------------------------------ building
    @classmethod
    def fit(cls, tokens: np.ndarray, order: int, vocab_size: int) -> "KneserNeyLM":
        tokens = np.asarray(tokens, dtype=np.int64)
        if order < 1:
            raise ValueError(f"order must be >= 1, got {order}")
        if tokens.size < order:
            raise DataError(f"the training stream has {tokens.size} tokens, fewer than the n-gram order {order}")
        if tokens.min() < 0 or tokens.max() >= vocab_size:
            raise DataError(f"token ids must lie in [0, {vocab_size}); got [{tokens.min()}, {tokens.max()}]")
        V = vocab_size
        n = tokens.size
        keys: list[np.ndarray] = []
        raw_counts: list[np.ndarray] = []
        prefix_ids: list[np.ndarray] = []  # per unique k-gram: id of its (k-1)-gram prefix (0 for k=1)
        suffix_ids: list[np.ndarray] = []  # per unique k-gram: id of its (k-1)-gram suffix (0 for k=1)
        ids_prev = None  # id of the (k-1)-gram starting at each position
        for k in range(1, order + 1):
            starts = n - k + 1
            if k == 1:
                gram_keys = tokens
            else:
                gram_keys = ids_prev[:starts] * V + tokens[k - 1 :]
            uniq, first, inverse, counts = np.unique(
                gram_keys, return_index=True, return_inverse=True, return_counts=True
            )
            keys.append(uniq)
            raw_counts.append(counts)
            if k == 1:
                prefix_ids.append(np.zeros(uniq.size, dtype=np.int64))
                suffix_ids.append(np.zeros(uniq.size, dtype=np.int64))
            else:
                prefix_ids.append(uniq // V)
                suffix_ids.append(ids_prev[first + 1])
            ids_prev = inverse.astype(np.int64)

        n_ctx = [1] + [keys[k - 2].size for k in range(2, order + 1)]  # contexts of level k
        raw = [KNLevel.from_counts(raw_counts[k - 1], prefix_ids[k - 1], n_ctx[k - 1]) for k in range(1, order + 1)]
        cont = []
        for k in range(1, order):
            # continuation count of a k-gram = number of distinct (k+1)-grams with it as suffix
            c = np.bincount(suffix_ids[k], minlength=keys[k - 1].size)
            cont.append(KNLevel.from_counts(c, prefix_ids[k - 1], n_ctx[k - 1]))
        return cls(order, vocab_size, keys, raw, cont)

    # ------------------------------------------------------------------ lookups
    def _lookup(self, k: int, prefix_ids: np.ndarray, last: np.ndarray) -> np.ndarray:
        """Ids of the k-grams (prefix id, last token); -1 where unseen or prefix is -1."""
        table = self.keys[k - 1]
        key = last if k == 1 else prefix_ids * self.vocab_size + last
        pos = np.searchsorted(table, key)
        pos_c = np.minimum(pos, table.size - 1)
        found = table[pos_c] == key
        if k > 1:
            found &= prefix_ids >= 0
        return np.where(found, pos_c, -1)

    def _gram_ids_by_start(self, stream: np.ndarray, max_len: int) -> list[np.ndarray]:
        """G[L][s] = id of the L-gram starting at s (L = 0..max_len; G[0] = 0); -1 if unseen/out of range."""
        n = stream.size
        G = [np.zeros(n, dtype=np.int64)]
        for L in range(1, max_len + 1):
            ids = np.full(n, -1, dtype=np.int64)
            m = n - L + 1
            if m > 0:
                ids[:m] = self._lookup(L, G[L - 1][:m], stream[L - 1 :])
            G.append(ids)
        return G

    @staticmethod
    def _interpolate(level: KNLevel, gram_ids, ctx_ids, p_lower):
        a = np.where(gram_ids >= 0, level.counts[np.maximum(gram_ids, 0)], 0.0)
        A = np.where(ctx_ids >= 0, level.context_total[np.maximum(ctx_ids, 0)], 0.0)
        mass = np.where(ctx_ids >= 0, level.context_backoff_mass[np.maximum(ctx_ids, 0)], 0.0)
        safe_A = np.where(A > 0, A, 1.0)
        p = (np.maximum(a - level.discount_of(a), 0.0) + mass * p_lower) / safe_A
        return np.where(A > 0, p, p_lower)

    # ------------------------------------------------------------------ scoring
    def log_probs(self, stream: np.ndarray, history: np.ndarray) -> np.ndarray:
        """Natural-log probability of stream[i] given min(history[i], n-1) preceding tokens.

        ``history[i]`` is how many tokens before i belong to the same evaluation window.
        """
        stream = np.asarray(stream, dtype=np.int64)
        m = np.minimum(np.asarray(history, dtype=np.int64), self.order - 1)
        if np.any(m > np.arange(stream.size)):
            raise ValueError("history reaches before the start of the stream")
        G = self._gram_ids_by_start(stream, self.order)
        idx = np.arange(stream.size)
        p = np.full(stream.size, 1.0 / self.vocab_size)
        for k in range(1, self.order + 1):
            active = (k - 1) <= m
            start = np.where(active, idx - (k - 1), 0)
            gram = G[k][start]
            ctx = G[k - 1][start] if k > 1 else np.zeros(stream.size, dtype=np.int64)
            top = m == k - 1
            p_k = self._interpolate(self.raw[k - 1], gram, ctx, p)
            if k < self.order:
                p_k = np.where(top, p_k, self._interpolate(self.cont[k - 1], gram, ctx, p))
            p = np.where(active, p_k, p)
        return np.log(p)

    def distributions(self, contexts: list[np.ndarray] | np.ndarray) -> np.ndarray:
        """P(. | context) for each context (a B x m array, all of one length m <= n-1): B x V."""
        ctx = np.atleast_2d(np.asarray(contexts, dtype=np.int64))
        B, m = ctx.shape
        m_eff = min(m, self.order - 1)
        ctx = ctx[:, m - m_eff :]
        V = self.vocab_size
        words = np.arange(V)
        p = np.full((B, V), 1.0 / V)
        for k in range(1, m_eff + 2):
            # context of level k: the last k-1 tokens
            h = ctx[:, m_eff - (k - 1) :]
            ctx_id = np.zeros(B, dtype=np.int64)
            for L in range(1, k):
                ctx_id = self._lookup(L, ctx_id, h[:, L - 1])
            gram = self._lookup(k, np.repeat(ctx_id, V), np.tile(words, B)).reshape(B, V)
            level = self.raw[k - 1] if k == m_eff + 1 else self.cont[k - 1]
            p = self._interpolate(level, gram, ctx_id[:, None].repeat(V, axis=1), p)
        return p

    # ------------------------------------------------------------------ persistence
    def save(self, path: Path) -> None:
        arrays = {}
        meta = {"order": self.order, "vocab_size": self.vocab_size, "raw_discounts": [], "cont_discounts": []}
        for k in range(1, self.order + 1):
            arrays[f"keys{k}"] = self.keys[k - 1]
            arrays[f"raw{k}"] = self.raw[k - 1].counts
            meta["raw_discounts"].append(self.raw[k - 1].discounts)
            if k < self.order:
                arrays[f"cont{k}"] = self.cont[k - 1].counts
                meta["cont_discounts"].append(self.cont[k - 1].discounts)
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        with atomic_writer(Path(path)) as f:
            np.savez_compressed(f, **arrays)

    @classmethod
    def load(cls, path: Path, redo: str = "rerun its training") -> "KneserNeyLM":
        z = load_npz(path, ("meta",), redo)
        try:
            meta = json.loads(bytes(z["meta"]).decode())
            order, V = int(meta["order"]), int(meta["vocab_size"])
        except (ValueError, TypeError, KeyError):
            raise DataError(f"{path}: its 'meta' array is not the model's description; {redo}") from None
        names = (
            [f"keys{k}" for k in range(1, order + 1)]
            + [f"raw{k}" for k in range(1, order + 1)]
            + [f"cont{k}" for k in range(1, order)]
        )
        if any(name not in z for name in names):
            raise DataError(f"{path} lacks the counts of an order-{order} model; {redo}")
        keys = [z[f"keys{k}"] for k in range(1, order + 1)]
        raw_counts = [z[f"raw{k}"] for k in range(1, order + 1)]
        cont_counts = [z[f"cont{k}"] for k in range(1, order)]
        n_ctx = [1] + [keys[k - 2].size for k in range(2, order + 1)]
        prefix = [np.zeros(keys[0].size, dtype=np.int64)] + [keys[k - 1] // V for k in range(2, order + 1)]
        raw = [KNLevel.from_counts(raw_counts[k], prefix[k], n_ctx[k]) for k in range(order)]
        cont = [KNLevel.from_counts(cont_counts[k], prefix[k], n_ctx[k]) for k in range(order - 1)]
        return cls(order, V, keys, raw, cont)

    def num_ngrams(self) -> int:
        return int(sum(k.size for k in self.keys))

    # ------------------------------------------------------------------ ARPA export
    def write_arpa(self, path: Path, token_names: list[str]) -> None:
        """Write the model as an ARPA backoff file.

        Listed probabilities are the interpolated ones (lower orders with continuation counts),
        backoff weights are gamma(h), so standard ARPA backoff reproduces this model for every
        token with a full (n-1)-token history. Whitespace in token names is written as <U+XXXX>.
        """
        if len(token_names) != self.vocab_size:
            raise ValueError("need one name per token id")
        names = [escape_token(t) for t in token_names]
        V = self.vocab_size
        # listed n-grams per order: order 1 lists every token of the vocabulary
        per_order = []
        for k in range(1, self.order + 1):
            if k == 1:
                gram_ids = self._lookup(1, np.zeros(V, dtype=np.int64), np.arange(V))
                ctx_ids = np.zeros(V, dtype=np.int64)
                p_lower = np.full(V, 1.0 / V)
                lasts = np.arange(V)
            else:
                keys = self.keys[k - 1]
                gram_ids = np.arange(keys.size)
                ctx_ids = keys // V
                lasts = keys % V
                p_lower = self._prob_of_suffix(k, gram_ids)
            level = self.raw[k - 1] if k == self.order else self.cont[k - 1]
            probs = self._interpolate(level, gram_ids, ctx_ids, p_lower)
            if k < self.order:
                nxt = self.raw[k] if k + 1 == self.order else self.cont[k]
                # this k-gram as the context of order k+1 (gram_ids is -1 for unseen unigrams)
                A = np.where(gram_ids >= 0, nxt.context_total[np.maximum(gram_ids, 0)], 0.0)
                mass = np.where(gram_ids >= 0, nxt.context_backoff_mass[np.maximum(gram_ids, 0)], 0.0)
                backoff = np.where(A > 0, mass / np.where(A > 0, A, 1.0), 1.0)
            else:
                backoff = None
            per_order.append((gram_ids, lasts, probs, backoff))
        words_of = self._words_of_ids()
        with atomic_writer(Path(path)) as raw:
            f = io.TextIOWrapper(raw, encoding="utf-8")
            f.write("\\data\\\n")
            f.write(f"ngram 1={V + 2}\n")
            for k in range(2, self.order + 1):
                f.write(f"ngram {k}={self.keys[k - 1].size}\n")
            for k, (_gram_ids, lasts, probs, backoff) in enumerate(per_order, start=1):
                f.write(f"\n\\{k}-grams:\n")
                if k == 1:
                    f.write("-99\t<s>" + ("\t0" if self.order > 1 else "") + "\n")
                    f.write("-99\t</s>\n")
                for j in range(probs.size):
                    words = names[int(lasts[j])] if k == 1 else " ".join(names[t] for t in words_of[k - 1][j])
                    line = f"{math.log10(probs[j]):.10g}\t{words}"
                    if backoff is not None:
                        line += f"\t{math.log10(backoff[j]):.10g}"
                    f.write(line + "\n")
            f.write("\n\\end\\\n")
            f.flush()
            f.detach()  # the raw file stays open for atomic_writer to sync and rename

    def _prob_of_suffix(self, k: int, gram_ids: np.ndarray) -> np.ndarray:
        """p_{k-1}(w | h') for every listed k-gram (h w): the listed prob of its suffix."""
        words = self._words_of_ids()[k - 1][gram_ids]  # (count, k)
        suffix = words[:, 1:]
        return self.distribution_of_sequences(suffix)

    def distribution_of_sequences(self, grams: np.ndarray) -> np.ndarray:
        """Lower-order (continuation) interpolated prob of the last token of each row given the rest."""
        grams = np.asarray(grams, dtype=np.int64)
        R, L = grams.shape
        p = np.full(R, 1.0 / self.vocab_size)
        for k in range(1, L + 1):
            part = grams[:, L - k :]
            ctx_id = np.zeros(R, dtype=np.int64)
            for j in range(k - 1):
                ctx_id = self._lookup(j + 1, ctx_id, part[:, j])
            gram = self._lookup(k, ctx_id, part[:, k - 1])
            level = self.cont[k - 1] if k < self.order else self.raw[k - 1]
            p = self._interpolate(level, gram, ctx_id, p)
        return p

    def _words_of_ids(self) -> list[np.ndarray]:
        """words[k-1][id] = the k tokens of the k-gram with that id."""
        if getattr(self, "_words_cache", None) is None:
            V = self.vocab_size
            words = [self.keys[0][:, None]]
            for k in range(2, self.order + 1):
                keys = self.keys[k - 1]
                words.append(np.concatenate([words[-1][keys // V], (keys % V)[:, None]], axis=1))
            self._words_cache = words
        return self._words_cache


def escape_token(token: str) -> str:
    return "".join(f"<U+{ord(c):04X}>" if c.isspace() else c for c in token) or "<empty>"
