"""Fuzzy phrase matching on tokens: normalisation (case, punctuation, numbers spelled out) and a
word-level Smith-Waterman local alignment whose token match is character similarity.

    best_alignments(normalize("my favourite colour"), normalize("so my favorite color is blue"), 3, 0.35)

Both sides are normalised the same way (`normalize`): case and punctuation dropped, numbers, amounts and
clock times spelled out ("$49" and "forty-nine dollars" are the same tokens), contractions expanded ("it's"
is "it is"), British spellings made American by a small table of suffix patterns (-our/-or, -ise/-ize,
-yse/-yze, -re/-er, -ogue/-og, -lled/-led) and words (grey/gray). Then stopwords weigh less and tokens
match by character similarity, so ASR spelling variants, a misspelled or loosely paraphrased quote still
land. This is the one phrase matcher: `ground`, `chat`, `transcribe --search` (through
`transcript.search_words`, which adds words' times) and `edit` (`edit.sources.find_phrases`) use it.
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
        "oh am"
    ).split()
)
_NUMBER = re.compile(r"^\d+(?:[.,]\d+)*(?:st|nd|rd|th)?$")
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})$")
# Currency signs before an amount and what is said after it ("$49" is "forty nine dollars").
_CURRENCY = {
    "$": ("dollar", "dollars"),
    "£": ("pound", "pounds"),
    "€": ("euro", "euros"),
    "¥": ("yen", "yen"),
}
_AMOUNT = re.compile(r"^([$£€¥])(\d+(?:,\d{3})*)(?:\.(\d{2}))?$")

# Contractions, spoken either way ("it's" / "it is"): expanded on both sides. A possessive "'s" stays a
# word of its own ("john's" -> "johns"): only pronouns and question words take "is".
_WHOLE_CONTRACTIONS = {
    "won't": "will not", "can't": "can not", "cannot": "can not", "shan't": "shall not", "ain't": "is not",
    "let's": "let us", "y'all": "you all",
}  # fmt: skip
_CONTRACTION_ENDINGS = (("n't", "not"), ("'re", "are"), ("'ve", "have"), ("'ll", "will"), ("'m", "am"),
                        ("'d", "would"))  # fmt: skip
_IS_WORDS = frozenset("it that what there here he she who where how when why this".split())

# British -> American spelling, applied to every token on both sides so either spelling finds the other.
# Patterns of common suffixes; the stem lengths keep short words out ("four", "your", "hour", "rogue").
_SPELLING_PATTERNS = tuple(
    (re.compile(pattern), repl)
    for pattern, repl in (
        (r"^([a-z]{2,})our(s|ed|ing|ite|ites|able|ably|ful|less|er|ers|ist|ists|y)?$", r"\1or\2"),  # colour
        (r"^([a-z]{3,})is(e|es|ed|ing|er|ers|ation|ations)$", r"\1iz\2"),  # realise, organisation
        (r"^([a-z]{3,})ys(e|es|ed|ing)$", r"\1yz\2"),  # analyse
        (r"^([a-z]+[tbg])re(s?)$", r"\1er\2"),  # centre, fibre, meagre
        (r"^([a-z]+[tbg])red$", r"\1ered"),  # centred
        (r"^([a-z]{3,})ogue(s?)$", r"\1og\2"),  # dialogue, catalogue
        (r"^([a-z]*[aeiou][^aeiou]+[aeiou])ll(ed|ing|er|ers)$", r"\1l\2"),  # travelled, cancelling
    )
)
_SPELLING_WORDS = {
    "grey": "gray", "programme": "program", "programmes": "programs", "cheque": "check", "tyre": "tire",
    "tyres": "tires", "defence": "defense", "offence": "offense", "licence": "license", "pretence": "pretense",
    "pyjamas": "pajamas", "aluminium": "aluminum", "aeroplane": "airplane", "jewellery": "jewelry",
    "mould": "mold", "plough": "plow", "ageing": "aging", "judgement": "judgment", "whilst": "while",
    "kerb": "curb", "ok": "okay",
}  # fmt: skip


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


def _amount_words(sign: str, units: str, cents: str | None) -> list[str]:
    """'$', '49', '99' -> forty nine dollars and ninety nine cents (a whole amount: no cents)."""
    one, many = _CURRENCY[sign]
    tokens = [*_number_words(units), one if units == "1" else many]
    if cents and int(cents):
        tokens += ["and", *_number_words(str(int(cents))), "cent" if int(cents) == 1 else "cents"]
    return tokens


def _clock_words(hours: str, minutes: str) -> list[str]:
    """'7:30' -> seven thirty; '7:05' -> seven oh five; '7:00' -> seven oclock."""
    if int(minutes) == 0:
        return [*_number_words(hours), "oclock"]
    return [*_number_words(hours), *(["oh"] if minutes[0] == "0" else []), *_number_words(str(int(minutes)))]


def _spelling(token: str) -> str:
    """The American spelling of a British one (the same word otherwise)."""
    if token in _SPELLING_WORDS:
        return _SPELLING_WORDS[token]
    for pattern, repl in _SPELLING_PATTERNS:
        if pattern.match(token):
            return pattern.sub(repl, token)
    return token


def _expand_contraction(raw: str) -> str:
    """A contraction spelled out ("it's": it is, "don't": do not, "let's": let us); anything else as is."""
    if raw in _WHOLE_CONTRACTIONS:
        return _WHOLE_CONTRACTIONS[raw]
    for ending, words in _CONTRACTION_ENDINGS:
        if raw.endswith(ending) and len(raw) > len(ending):
            return f"{raw[: -len(ending)]} {words}"
    if raw.endswith("'s") and raw[:-2] in _IS_WORDS:
        return f"{raw[:-2]} is"
    return raw


def normalize(text: str) -> list[str]:
    """Lower-cased tokens, so that the ways one thing is written compare equal: punctuation dropped,
    hyphenated words split, numbers, amounts ("$49": forty nine dollars), percentages and clock times
    spelled out, contractions expanded ("it's": it is), British spellings made American ("colour": color)."""
    text = text.lower().replace("’", "'").replace("‘", "'").replace("&", " and ").replace("%", " percent")
    tokens: list[str] = []
    for raw in re.split(r"[\s\-–—/]+", text):
        tokens.extend(_word_tokens(raw))
    return tokens


def _word_tokens(raw: str) -> list[str]:
    """The tokens of one whitespace-separated word."""
    bare = re.sub(r"^[^\w$£€¥']+|[^\w']+$", "", raw).strip("'")
    amount, clock = _AMOUNT.match(bare), _CLOCK.match(bare)
    if amount:
        return _amount_words(*amount.groups())
    if clock:
        return _clock_words(*clock.groups())
    tokens: list[str] = []
    for part in _expand_contraction(bare).split():
        token = re.sub(r"[^\w']", "", part).replace("'", "").replace("_", "")
        if not token:
            continue
        number = re.sub(r"[^\w.,]", "", part).strip(".,")
        if token[0].isdigit() and _NUMBER.match(number):
            tokens.extend(_number_words(number))
        else:
            tokens.append(_spelling(token))
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
