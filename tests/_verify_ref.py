"""Independent float64 reference of the sampling transforms, and the chi-square helper, for the verify tests.

Written from SSD_SPEC section 5 with NumPy only (no ssdcore code), so the tests compare the C++/CUDA
implementation against a second implementation of the definitions:
  logits / T -> top-k (first k in the order logit desc, index asc) -> top-p (shortest prefix of that order
  whose probability reaches top_p) -> softmax; Saguaro: the first F tokens of q scaled by C, renormalised.
"""
from __future__ import annotations

import numpy as np
from scipy import stats

ALPHA = 1e-4  # chi-square rejection threshold (tests use fixed seeds, so they are deterministic)


def token_order(logits: np.ndarray) -> np.ndarray:
    """Indices sorted by logit descending, ties by index ascending."""
    return np.lexsort((np.arange(len(logits)), -np.asarray(logits, dtype=np.float64)))


def transform(logits, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
              saguaro_c: float = 1.0, fanout: int = 0, margin: float = 1e-5) -> np.ndarray:
    """The transformed distribution of one logits row (float64). Refuses ambiguous top-p instances (the
    cumulative mass within `margin` of top_p), where float32 rounding could legitimately flip the cut."""
    l = np.asarray(logits, dtype=np.float64)
    v = len(l)
    order = token_order(l)
    if temperature == 0:
        p = np.zeros(v)
        p[order[0]] = 1.0
        return p
    keep = np.zeros(v, dtype=bool)
    keep[order[: (top_k if 0 < top_k < v else v)]] = True
    w = np.where(keep, np.exp((l - l.max()) / temperature), 0.0)
    p = w / w.sum()
    if top_p < 1.0:
        cum = np.cumsum(p[order])
        n = int(np.searchsorted(cum, top_p)) + 1  # first prefix with cum >= top_p
        n = min(n, int(keep.sum()))
        near = np.abs(cum[: int(keep.sum())] - top_p)
        assert near.min() > margin, f"ambiguous top-p instance (cumulative mass within {margin} of top_p)"
        keep[:] = False
        keep[order[:n]] = True
        p = np.where(keep, p, 0.0)
        p /= p.sum()
    if saguaro_c < 1.0 and fanout > 0:
        top = np.zeros(v, dtype=bool)
        top[order[:fanout]] = True
        scaled = np.where(top, p * saguaro_c, p)
        if scaled.sum() > 0:
            p = scaled / scaled.sum()
    return p


def chi_square_pvalue(counts: np.ndarray, probs: np.ndarray, min_expected: float = 5.0) -> float:
    """Goodness of fit of `counts` to `probs` (cells with expected < min_expected pooled). A count on a
    zero-probability cell is an outright failure (p-value 0)."""
    counts = np.asarray(counts, dtype=np.float64).ravel()
    probs = np.asarray(probs, dtype=np.float64).ravel()
    n = counts.sum()
    if counts[probs <= 0].sum() > 0:
        return 0.0
    expected = n * probs
    big = expected >= min_expected
    obs = list(counts[big])
    exp = list(expected[big])
    small_exp = expected[~big & (probs > 0)].sum()
    if small_exp > 0:
        obs.append(counts[~big & (probs > 0)].sum())
        exp.append(small_exp)
    if len(exp) < 2:
        return 1.0
    stat = float(sum((o - e) ** 2 / e for o, e in zip(obs, exp)))
    return float(stats.chi2.sf(stat, len(exp) - 1))


def power_against_shift(vocab: int, n: int, alpha: float = ALPHA) -> float:
    """Power of the chi-square test (uniform p over `vocab` tokens, n samples) against moving a probability
    mass of 1/(4V) from one token to another: noncentrality 2 n delta^2 V."""
    delta = 1.0 / (4 * vocab)
    df = vocab - 1
    lam = 2 * n * delta**2 * vocab
    crit = stats.chi2.isf(alpha, df)
    return float(stats.ncx2.sf(crit, df, lam))
