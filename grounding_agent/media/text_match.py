"""Fuzzy phrase matching on tokens: normalisation (case, punctuation, numbers spelled out) and a
word-level Smith-Waterman local alignment whose token match is character similarity.

    best_alignments(normalize("my favourite colour"), normalize("so my favorite color is blue"), 3, 0.35)

favourite/favorite and colour/color match, "7" is "seven", and stopwords weigh less, so ASR spelling
variants, a misspelled or loosely paraphrased quote still land. Knows nothing of words' times: see
`transcript.search_words`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

import numpy as np

__all__ = ["STOPWORDS", "align", "best_alignments", "normalize", "similarity"]

# --- words -> tokens (normalisation) -----------------------------------------------------------------

# Low-weight words: a quote still matches when these differ ("let us go" vs "let's go").
STOPWORDS = frozenset(
    (
        "a an the and or but of to in on at for with is are was were be been it its this that these "
        "those i you he she we they me him her us them my your his our their so do does did just um uh "
        "oh"
    ).split()
)
_NUMBER = re.compile(r"^\d+(?:[.,]\d+)*(?:st|nd|rd|th)?$")


@functools.lru_cache(maxsize=4096)
def _number_words(token: str) -> tuple[str, ...]:
    from num2words import num2words

    ordinal = token[-2:] in ("st", "nd", "rd", "th")
    digits = token[:-2] if ordinal else token
    try:
        value = float(digits.replace(",", "")) if "." in digits else int(digits.replace(",", ""))
        words = num2words(value, to="ordinal" if ordinal and isinstance(value, int) else "cardinal")
    except (ValueError, OverflowError, NotImplementedError):
        return (token,)
    return tuple(w for w in re.split(r"[\s,\-]+", words.lower()) if w and w != "and")


def normalize(text: str) -> list[str]:
    """Lower-cased tokens: punctuation and apostrophes dropped, hyphenated words split, numbers spelled out."""
    text = text.lower().replace("’", "'").replace("‘", "'")
    tokens: list[str] = []
    for raw in re.split(r"[\s\-–—/]+", text):
        token = re.sub(r"[^\w']", "", raw).replace("'", "").replace("_", "")
        if not token:
            continue
        number = re.sub(r"[^\w.,]", "", raw).strip(".,")
        if token[0].isdigit() and _NUMBER.match(number):
            tokens.extend(_number_words(number))
        else:
            tokens.append(token)
    return tokens


# --- fuzzy word-level local alignment -----------------------------------------------------------------

MATCH_SIMILARITY = 0.75  # character similarity at which two tokens count as the same word
MISMATCH = -0.5  # a query token aligned to a different word
SKIP_QUERY = 0.5  # a query token not said (times its weight)
SKIP_SPOKEN = 0.3  # a spoken token the query does not have
STOPWORD_WEIGHT = 0.35


def similarity(query_tokens: Sequence[str], spoken_tokens: Sequence[str]) -> np.ndarray:
    """(len(query), len(spoken)) similarity in [0, 1]; one- and two-letter words must match exactly."""
    from rapidfuzz import fuzz, process

    q_vocab, s_vocab = sorted(set(query_tokens)), sorted(set(spoken_tokens))
    sim = process.cdist(q_vocab, s_vocab, scorer=fuzz.ratio, dtype=np.float32) / 100.0
    q_len = np.array([len(t) for t in q_vocab])[:, None]
    s_len = np.array([len(t) for t in s_vocab])[None, :]
    sim = np.where((np.minimum(q_len, s_len) <= 2) & (sim < 1.0), 0.0, sim)
    qi = {t: i for i, t in enumerate(q_vocab)}
    si = {t: i for i, t in enumerate(s_vocab)}
    return sim[np.ix_([qi[t] for t in query_tokens], [si[t] for t in spoken_tokens])]


def align(query_tokens: Sequence[str], spoken_tokens: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Smith-Waterman local alignment of the query against the spoken tokens.

    Returns:
        H: (m+1, n+1) alignment scores (H[i, j]: best alignment of a suffix of query[:i] ending at
            spoken[j-1]); the best score is at most the sum of the query's weights.
        weights: (m,) the query tokens' weights (content words 1, stopwords STOPWORD_WEIGHT).
    """
    m, n = len(query_tokens), len(spoken_tokens)
    weights = np.array([STOPWORD_WEIGHT if t in STOPWORDS else 1.0 for t in query_tokens])
    gain = similarity(query_tokens, spoken_tokens)
    gain = np.where(gain >= MATCH_SIMILARITY, gain, MISMATCH) * weights[:, None]
    H = np.zeros((m + 1, n + 1))
    steps = np.arange(n + 1) * SKIP_SPOKEN
    for i in range(1, m + 1):
        best = np.maximum(
            0.0, np.maximum(H[i - 1, :-1] + gain[i - 1], H[i - 1, 1:] - SKIP_QUERY * weights[i - 1])
        )
        row = np.concatenate([[0.0], best])
        # Skipping spoken tokens: H[i, j] = max_k<=j row[k] - SKIP_SPOKEN * (j - k), a running maximum.
        H[i] = np.maximum(0.0, np.maximum.accumulate(row + steps) - steps)
    return H, weights


def _traceback(H: np.ndarray, gain_of, weights: np.ndarray, i: int, j: int) -> list[tuple[int, int]]:
    """From cell (i, j) back to where the alignment starts: the matched (query token, spoken token) pairs."""
    matched = []
    while i > 0 and j > 0 and H[i, j] > 1e-9:
        h = H[i, j]
        g = gain_of(i - 1, j - 1)
        if g > 0 and abs(h - (H[i - 1, j - 1] + g)) < 1e-9:
            matched.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif abs(h - (H[i, j - 1] - SKIP_SPOKEN)) < 1e-9:
            j -= 1
        elif abs(h - (H[i - 1, j] - SKIP_QUERY * weights[i - 1])) < 1e-9:
            i -= 1
        else:  # a mismatch step
            i, j = i - 1, j - 1
    matched.reverse()
    return matched


def best_alignments(
    q_tokens: Sequence[str], s_tokens: Sequence[str], top_k: int, min_score: float
) -> list[tuple[float, int, int]]:
    """The best non-overlapping alignments of the query in the spoken tokens, best first, as
    (score in [0, 1], first spoken token, last spoken token); scores below `min_score` are left out.

    The score is the alignment's over the query's total weight: 1.0 when every query token was said in
    order (up to spelling). Query tokens left unmatched at either end were most likely said but misheard
    ("that was fast" heard as "that was it"): the span takes as many neighbouring spoken tokens.
    """
    H, weights = align(q_tokens, s_tokens)
    sim = similarity(q_tokens, s_tokens)
    total = float(weights.sum())

    def gain_of(qi: int, sj: int) -> float:
        s = sim[qi, sj]
        return float((s if s >= MATCH_SIMILARITY else MISMATCH) * weights[qi])

    best_i, column_best = H.argmax(axis=0), H.max(axis=0)
    out: list[tuple[float, int, int]] = []
    for j in np.argsort(-column_best, kind="stable"):
        score = float(column_best[j]) / total
        if score < min_score or len(out) >= top_k:
            break
        matched = _traceback(H, gain_of, weights, int(best_i[j]), int(j))
        if not matched:
            continue
        (q_first, first), (q_last, last) = matched[0], matched[-1]
        first = max(0, first - q_first)
        last = min(len(s_tokens) - 1, last + len(q_tokens) - 1 - q_last)
        if not any(first <= b and a <= last for _, a, b in out):
            out.append((min(1.0, score), first, last))
    return out
