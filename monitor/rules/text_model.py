"""Second-stage text classifier: hashed n-grams + one logistic regression per head.

Why: the phrase rules are precise but catch only about a quarter of the crisis and
bullying wordings their authors did not think of, and half of the spam (blind recall:
crisis 0.25 en, 0.21 fr; bullying 0.25, 0.24; spam 0.53, 0.50; see
docs/detection-quality.md).  A linear model over character and word n-grams, fitted on
labelled lines from many writers, generalises to such wording and is cheap enough to
score every comment of a batch.  Each category is a *head*: the n-grams of a text
are computed once and every head's score is one more column of the same lookup, so a
second head costs little.

Training rows are built by `monitor.rules.quality.model_training_rows` from
tests/corpus (the dev split and train/; never a held-out or blind line) and copied to
`data/text_model_train.jsonl`; the heads of `ROUND_HEADS` (crisis, personal
information) are also fitted on the tuning rounds' lines (`round_training_rows`,
`data/text_model_rounds.jsonl`; never a held-out round).  `benchmarks/text_model_cv.py
--write` fits them and writes `data/text_model.npz` (plain float arrays, no pickle).
At run time the weights are only loaded.  Known idioms (`data/crisis_idioms.txt`) are
blanked before the model reads a text, in training and at run time alike; the weights
record a digest of that list.

Features (on the engine's normalised `text` view): char_wb n-grams 2-5 (n-grams inside
space-padded words, as scikit-learn's ``char_wb``) and word 1-2 grams, hashed into
2**18 buckets, weighted by idf from the training set and L2-normalised.  They are
computed with numpy rather than scikit-learn's Python analyzers, which cost about
0.1 ms per comment, and scored with one scipy sparse product per kind of n-gram.  The norm is
taken over n-gram occurrences (sqrt of the sum of idf**2), which equals the exact L2
norm of the tf-idf vector when no n-gram repeats; training uses the same definition,
so the linear score is exact for what was trained.

Batching: the detector is `batched`: the engine calls `score_batch` once per batch with
the contexts it applies to; it scores every head at once and `detect` only reads the
score of its rule's head left in `Context.scores`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
from pydantic import BaseModel, Field, field_validator, model_validator

from monitor.rules import patterns
from monitor.rules.detectors import Context, Detector, Match, Params, Prefilter, RuleEnv
from monitor.rules.normalize import normalize

_BITS = 18
_CHAR_BUCKETS = 1 << (_BITS - 1)  # char n-grams in [0, 2**17), words in [2**17, 2**18)
_MAX_CHARS = 1_000
_BLOCK = 8_192
_CHAR_N = (2, 5)
_C = 10.0  # inverse regularisation of the logistic regression
# lbfgs's stopping tolerance.  scikit-learn's default (1e-4) stopped this fit wherever
# the rows happened to leave it: in session 8, dropping one training line ("facts") of
# 15,164 moved the crisis score of an unrelated comment from 0.24 to 0.40, and dropping
# six lines moved it the same way (17 iterations against 40).  At 1e-6 the fit runs to
# its optimum (about 95 iterations) and dropping those six lines moves that score by
# 0.001 (tests/test_rules_text_model.py checks the fit's stability).
_TOL = 1e-6
TRAINING_FILE = "text_model_train.jsonl"
ROUND_TRAINING_FILE = "text_model_rounds.jsonl"  # rows of ROUND_HEADS only
IDIOMS_FILE = "crisis_idioms.txt"
_FORMAT = 3  # bump when features() or the file layout changes: old weights would score garbage
Head = Literal["crisis", "bullying", "spam", "personal_information"]  # a corpus label each
HEADS: tuple[str, ...] = get_args(Head)  # one logistic regression each, in this order
# Heads also fitted on the tuning rounds' lines (ROUND_TRAINING_FILE), with the idf of the
# main rows so the other heads' weights and the shared norm stay what they were.  Why:
# private detail comes in more kinds than 550 training lines show, and the rounds hold
# 6,000; their ordinary comments, by some seventy writers, also teach the crisis head
# what a new writer's non-crisis posts look like (its urgent false alarms on held-out
# rounds fell by half).
ROUND_HEADS: tuple[str, ...] = ("crisis", "personal_information")
_MIN_LETTERS = 8  # fewer letters ("ok!", "😂😂") give the model nothing to judge
_U = np.uint32


def _data(name: str) -> Any:
    """A file of the package's `rules/data/` folder (works from a wheel as from a checkout)."""
    return resources.files("monitor.rules").joinpath("data", name)


def training_rows() -> list[dict[str, Any]]:
    """The training rows shipped with the package: {"text", "lang", <one bool per head>}."""
    return _rows(TRAINING_FILE)


def round_training_rows() -> list[dict[str, Any]]:
    """The tuning rounds' rows shipped with the package: {"text", "lang", "round", <one
    bool per head of ROUND_HEADS>}."""
    return _rows(ROUND_TRAINING_FILE)


def head_rows(head: str) -> list[dict[str, Any]]:
    """Every row a head is fitted on."""
    rows = training_rows()
    return rows + round_training_rows() if head in ROUND_HEADS else rows


def _rows(name: str) -> list[dict[str, Any]]:
    text = _data(name).read_text("utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def prepare(text: str) -> str:
    """What the model reads of a raw comment (training and evaluation)."""
    return model_view(normalize(text).text.text)


def model_view(normalised: str, *, may_hold_idiom: bool | None = None) -> str:
    """What the model reads of the engine's normalised text: truncated, idioms blanked.

    `may_hold_idiom` is what the caller already knows of the idiom gate (the engine's
    Set pass: False, no gate string is in the text; True, one may be); None: look.
    """
    if len(normalised) > _MAX_CHARS:
        normalised = normalised[:_MAX_CHARS]
    if may_hold_idiom is None:
        return blank_idioms(normalised)
    return patterns.blank(_idiom_program(), normalised) if may_hold_idiom else normalised


def idiom_patterns() -> list[str]:
    """The patterns of `IDIOMS_FILE` (comments and blank lines dropped)."""
    text = _data(IDIOMS_FILE).read_text("utf-8")
    return [line.strip() for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def idioms_digest() -> str:
    """Recorded with the weights: they are only valid for the idioms they were fitted with."""
    return hashlib.sha256("\n".join(idiom_patterns()).encode("utf-8")).hexdigest()[:16]


@functools.cache
def _idiom_program() -> Any:
    return patterns.compile_any(idiom_patterns())


def _codes(padded: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Code points of the texts joined by newlines, and the text index of each."""
    codes = np.frombuffer("\n".join(padded).encode("utf-32-le"), dtype=_U)
    lengths = np.fromiter((len(p) + 1 for p in padded), dtype=np.int64, count=len(padded))
    return codes, np.repeat(np.arange(len(padded), dtype=np.int64), lengths)[: len(codes)]


_NULL = 1 << _BITS  # the bucket of a position that starts no n-gram: weight 0 when scoring


def _char_chunks(codes: np.ndarray, doc: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per n in 2..5: (doc index, bucket) of every position, `_NULL` where no char_wb
    n-gram starts (it would cross a word or text boundary).

    Positions are not compacted: a null bucket costs a zero weight when scoring, and
    compaction cost more than the gather it saves.
    """
    sep = codes == 10
    space = codes == 32
    total = len(codes)
    chunks = []
    h = codes.copy()
    bad = sep.copy()
    lo, hi = _CHAR_N
    with np.errstate(over="ignore"):
        for n in range(2, hi + 1):
            m = total - n + 1
            if m <= 0:
                break
            h = h[:m] * _U(16777619) ^ codes[n - 1 : n - 1 + m]
            bad = bad[:m] | sep[n - 1 : n - 1 + m]
            if n > 2:  # an inner character may not be a space: n-grams stay inside words
                bad = bad | space[n - 2 : n - 2 + m]
            if n < lo:
                continue
            bucket = ((h ^ _U(n * 0x9E3779B1 & 0xFFFFFFFF)) * _U(0x85EBCA6B)) >> _U(32 - _BITS + 1)
            key = bucket.astype(np.intp)
            key[bad] = _NULL
            chunks.append((doc[:m], key))
    return chunks


_P = 1099511628211  # FNV-1 64-bit prime: odd, so it has an inverse modulo 2**64
_P_INV = pow(_P, -1, 1 << 64)
_U64 = np.uint64


def _powers(total: int) -> tuple[np.ndarray, np.ndarray]:
    """P**i and P**-i modulo 2**64 for i < total, grown on demand and kept."""
    global _POWERS
    if len(_POWERS[0]) < total:
        size = max(total, 2 * len(_POWERS[0]))
        with np.errstate(over="ignore"):
            _POWERS = (np.cumprod(np.full(size, _P, dtype=_U64)) * _U64(_P_INV),
                       np.cumprod(np.full(size, _P_INV, dtype=_U64)) * _U64(_P))
    return _POWERS[0][:total], _POWERS[1][:total]


_POWERS: tuple[np.ndarray, np.ndarray] = (np.zeros(0, _U64), np.zeros(0, _U64))


def _word_keys(codes32: np.ndarray, doc: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(doc index, bucket) of every word unigram, then of every bigram (tokens of 2+
    characters).

    A word's hash is a polynomial over its code points, read off prefix sums so every
    word of the batch is hashed in a few numpy passes (a Python loop over words cost
    about as much as the rest of the model).
    """
    codes = codes32.astype(_U64)
    total = len(codes)
    gap = np.ones(total + 2, dtype=bool)  # gap[i + 1]: codes[i] separates words
    gap[1:-1] = (codes == 32) | (codes == 10)
    edges = np.diff(gap.view(np.int8))
    starts = np.flatnonzero(edges == -1)
    ends = np.flatnonzero(edges == 1)
    keep = ends - starts > 1
    starts, ends = starts[keep], ends[keep]
    if not len(starts):
        return [(np.zeros(0, np.int64), np.zeros(0, np.int64))] * 2
    with np.errstate(over="ignore"):
        power, inverse = _powers(total)
        prefix = np.zeros(total + 1, dtype=_U64)
        np.cumsum(codes * power, out=prefix[1:])
        word = (prefix[ends] - prefix[starts]) * inverse[starts] + (ends - starts).astype(_U64)
        word_doc = doc[starts]
        same = word_doc[1:] == word_doc[:-1]
        pair = (word[:-1] * _U64(0x9E3779B97F4A7C15) + word[1:])[same]
        hashes = np.concatenate([word, pair]) * _U64(0xC2B2AE3D27D4EB4F)
    keys = (hashes >> _U64(64 - _BITS + 1)).astype(np.int64) + _CHAR_BUCKETS
    return [(word_doc, keys[: len(word)]), (word_doc[:-1][same], keys[len(word) :])]


def _chunks(texts: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(doc index, bucket) per kind of n-gram; within a chunk, doc indices never decrease."""
    codes, doc = _codes([" " + " ".join(t.split()) + " " for t in texts])
    return [*_char_chunks(codes, doc), *_word_keys(codes, doc)]


def features(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(doc index, bucket) of every n-gram occurrence in already prepared texts."""
    chunks = _chunks(texts)
    doc = np.concatenate([d for d, _ in chunks])
    key = np.concatenate([k for _, k in chunks])
    real = key != _NULL
    return doc[real], key[real]


@dataclass(frozen=True)
class TextModel:
    """Fitted weights: score[h] = sigmoid(bias[h] + sum(w[h]*idf) / sqrt(sum(idf**2)))."""

    heads: tuple[str, ...]
    weighted_idf: np.ndarray  # (heads, buckets): coef * idf per head and bucket
    idf_squared: np.ndarray  # (buckets,)
    bias: np.ndarray  # (heads,)
    # one row per bucket, a column per head and idf**2 last, a zero row at `_NULL`: one
    # sparse product serves every head
    _table: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        columns = np.vstack([self.weighted_idf, self.idf_squared[np.newaxis, :]])
        table = np.zeros((columns.shape[1] + 1, columns.shape[0]))
        table[:-1] = columns.T
        object.__setattr__(self, "_table", table)

    def head(self, name: str) -> int:
        """Column of a head in what `scores` returns."""
        return self.heads.index(name)

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """Probability per prepared text (rows) and head (columns).

        Blocks bound the working arrays' memory for a very large call; below that, the
        larger the block, the less each text pays of the per-call overhead.
        """
        if len(texts) <= _BLOCK:
            return self._scores(texts)
        return np.concatenate([self._scores(texts[i : i + _BLOCK])
                               for i in range(0, len(texts), _BLOCK)])

    def _scores(self, texts: Sequence[str]) -> np.ndarray:
        """Each chunk of n-grams as a sparse (texts x buckets) count matrix, times the
        table: scipy's CSR product sums every head's column in one C pass, twice as fast
        as a numpy gather and a bincount per column.  A chunk's doc indices never
        decrease, so the row pointers are the cumulative counts (no sort)."""
        from scipy.sparse import csr_matrix

        width = len(self.heads)
        if not texts:
            return np.zeros((0, width))
        n = len(texts)
        table = self._table
        sums = np.zeros((n, width + 1))
        indptr = np.zeros(n + 1, dtype=np.int64)
        for doc, key in _chunks(texts):
            np.cumsum(np.bincount(doc, minlength=n), out=indptr[1:])
            counts = csr_matrix((np.ones(len(key)), key, indptr), shape=(n, len(table)))
            sums += counts @ table
        den = np.sqrt(sums[:, width])
        ratio = np.divide(sums[:, :width], den[:, np.newaxis], out=np.zeros((n, width)),
                          where=den[:, np.newaxis] > 0)
        return 1.0 / (1.0 + np.exp(-(self.bias[np.newaxis, :] + ratio)))


def _matrix(texts: Sequence[str], idf: np.ndarray | None) -> tuple[Any, np.ndarray]:
    from scipy.sparse import csr_matrix

    doc, key = features(texts)
    counts = csr_matrix((np.ones(len(key)), (doc, key)), shape=(len(texts), 1 << _BITS))
    counts.sum_duplicates()
    if idf is None:
        df = np.bincount(counts.indices, minlength=1 << _BITS)
        idf = np.log((1 + len(texts)) / (1 + df)) + 1.0
    norm = np.sqrt(np.bincount(doc, weights=idf[key] ** 2, minlength=len(texts)))
    norm[norm == 0] = 1.0
    x = counts.multiply(idf[np.newaxis, :]).multiply(1.0 / norm[:, np.newaxis]).tocsr()
    return x, idf


def fit(texts: Sequence[str], labels: Mapping[str, Sequence[int]],
        idf: np.ndarray | None = None) -> TextModel:
    """Fit one head per entry of `labels` on prepared texts; deterministic (lbfgs).

    The heads share the idf of all the texts (or `idf`, given), so one feature pass
    serves them all.
    """
    from sklearn.linear_model import LogisticRegression

    x, idf = _matrix(texts, idf)
    coefs, biases = [], []
    for name in labels:
        clf = LogisticRegression(C=_C, class_weight="balanced", max_iter=1000, tol=_TOL)
        clf.fit(x, np.asarray(labels[name]))
        coefs.append(np.asarray(clf.coef_[0], dtype=np.float64) * idf)
        biases.append(float(clf.intercept_[0]))
    return TextModel(tuple(labels), np.vstack(coefs), idf**2, np.asarray(biases))


WEIGHTS_FILE = "text_model.npz"


def save(fitted: TextModel, path: Path) -> None:
    """Write the weights as plain arrays (np.load with allow_pickle=False reads them)."""
    np.savez_compressed(path, heads=np.asarray(fitted.heads),
                        weighted_idf=fitted.weighted_idf.astype(np.float32),
                        idf_squared=fitted.idf_squared.astype(np.float32),
                        bias=np.asarray(fitted.bias, dtype=np.float64),
                        version=np.asarray([_FORMAT]), idioms=np.asarray([idioms_digest()]))


def load(source: Any) -> TextModel:
    """Read weights written by `save`; refuses a file of another feature format."""
    with np.load(source, allow_pickle=False) as data:
        if int(data["version"][0]) != _FORMAT:
            raise ValueError(f"text model weights have format {int(data['version'][0])}, "
                             f"this code reads format {_FORMAT}: run "
                             "benchmarks/text_model_cv.py --write")
        if str(data["idioms"][0]) != idioms_digest():
            raise ValueError(f"text model weights were fitted with other idioms than "
                             f"{IDIOMS_FILE}: run benchmarks/text_model_cv.py --write")
        return TextModel(tuple(str(h) for h in data["heads"]),
                         data["weighted_idf"].astype(np.float64),
                         data["idf_squared"].astype(np.float64),
                         data["bias"].astype(np.float64))


def head_labels(rows: Sequence[dict[str, Any]],
                heads: Sequence[str] = HEADS) -> dict[str, list[int]]:
    """The 0/1 label of each head for each training row."""
    return {name: [int(bool(r[name])) for r in rows] for name in heads}


def fit_training_rows() -> TextModel:
    """Fit on the shipped training rows: what `--write` saves and a test re-checks.

    The main heads are fitted on the main rows alone, then ROUND_HEADS on the main rows
    and the rounds' rows with the main rows' idf: the norm every head shares is then the
    one the main heads were fitted with.
    """
    rows = training_rows()
    texts = [prepare(r["text"]) for r in rows]
    main = fit(texts, head_labels(rows, [h for h in HEADS if h not in ROUND_HEADS]))
    rounds = round_training_rows()
    more = fit(texts + [prepare(r["text"]) for r in rounds],
               head_labels(rows + rounds, ROUND_HEADS), idf=np.sqrt(main.idf_squared))
    heads = list(main.heads + more.heads)
    order = [heads.index(h) for h in HEADS]
    return TextModel(HEADS, np.vstack([main.weighted_idf, more.weighted_idf])[order],
                     main.idf_squared, np.concatenate([main.bias, more.bias])[order])


_lock = threading.Lock()
_model: TextModel | None = None


def model() -> TextModel:
    """The shipped weights, loaded once per process (no training at run time)."""
    global _model
    if _model is None:
        with _lock:
            if _model is None:
                with _data(WEIGHTS_FILE).open("rb") as f:
                    _model = load(f)
    return _model


def cross_validated_scores(head: str, folds: int = 5, seed: int = 0,
                           fraction: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold scores of one head on the rows it is fitted on (labels, scores), to
    choose its thresholds; in the order of `head_rows(head)`.

    Folds are grouped by the letters of the normalised text, so an evasion variant never
    sits in a different fold from the line it was made from (that would leak); a tuning
    round's rows are grouped by round, so each is scored as a new writer's lines.
    `fraction` < 1 fits each fold on a seeded sample of its training part: the learning
    curve that says whether more data would still help.  Each fold has its own idf (the
    shipped ROUND_HEADS reuse the main rows' idf; the difference is the same in every
    fold).
    """
    from sklearn.model_selection import StratifiedGroupKFold

    rows = head_rows(head)
    texts = [prepare(r["text"]) for r in rows]
    labels = np.asarray(head_labels(rows, [head])[head])
    groups = [r.get("round") or re.sub(r"[^a-z]", "", t) for r, t in zip(rows, texts, strict=True)]
    out = np.zeros(len(rows))
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    sample = np.random.default_rng(seed)
    for train, test in splitter.split(texts, labels, groups):
        if fraction < 1.0:
            train = sample.permutation(train)[: int(len(train) * fraction)]
        m = fit([texts[i] for i in train], {head: labels[train]})
        out[test] = m.scores([texts[i] for i in test])[:, 0]
    return labels, out


# Every idiom of IDIOMS_FILE contains one of these strings; most comments contain none,
# and looking for them costs a third of a call into RE2.  The text is the engine's
# normalised view (lower case, accents folded).  A new idiom without one of them fails
# tests/test_rules_text_model.py::test_idiom_gate_covers_every_idiom.
IDIOM_GATE = ("die", "dying", "dead", "deceased", "kill", "murder", "wan", "mort", "mour",
              "meur", "crev", "tue", "reveil", "lever")


_NOT_LETTERS = bytes(b for b in range(128) if not chr(b).isalpha())


def _letters(text: str) -> int:
    if text.isascii():  # the common case, counted in C
        return len(text.encode("ascii").translate(None, _NOT_LETTERS))
    return sum(map(str.isalpha, text))


# one search for any of them: half the cost of fourteen `in` tests (literals only, so
# `re` is linear here)
_IDIOM_HINT = Prefilter("text", tuple(map(re.escape, IDIOM_GATE)))
_IDIOM_GATE_PROGRAM = re.compile("|".join(_IDIOM_HINT.patterns))


def may_hold_idiom(text: str) -> bool:
    return _IDIOM_GATE_PROGRAM.search(text) is not None


def blank_idioms(text: str) -> str:
    """The text with every idiom of `IDIOMS_FILE` replaced by a space."""
    if not may_hold_idiom(text):
        return text
    program = _idiom_program()
    return patterns.blank(program, text)


class ScoreBand(Params):
    """Scores in [threshold, below) fire; `below` None: no upper bound."""

    threshold: float = Field(ge=0.0, le=1.0)
    below: float | None = Field(default=None, ge=0.0, le=1.0)  # exclusive upper bound

    @model_validator(mode="after")
    def _order(self) -> ScoreBand:
        if self.below is not None and self.below <= self.threshold:
            raise ValueError("below must be greater than threshold")
        return self

    def bounds(self) -> tuple[float, float]:
        return self.threshold, self.below if self.below is not None else float("inf")


class TextModelParams(ScoreBand):
    head: Head = "crisis"
    # a band per subject language, where cross-validation gives that language its own
    # threshold (text_model_cv.py prints one per language); other languages use the
    # rule's own threshold and below
    by_language: dict[str, ScoreBand] = {}
    # patterns (folded view) that make a comment the model scored in band not the rule's
    # business: what a shape detector already judged public, such as the school's own
    # voicemail number, which the model, reading "number" next to digits, cannot tell
    # from a family's
    exclude: list[str] = []

    _check = field_validator("exclude")(patterns.check_all)


class TextModelDetector(Detector, name="text_model"):
    """Classifier score of one head (crisis, bullying, spam, privacy) in a band, per language."""

    Params = TextModelParams
    batched = True

    def __init__(self, params: BaseModel, env: RuleEnv | None = None) -> None:
        super().__init__(params, env)
        assert isinstance(params, TextModelParams)
        self._params = params
        # read on every comment: plain attributes, not the params model's
        self._head: str = params.head
        self._bounds = params.bounds()
        self._by_language = {lang: band.bounds() for lang, band in params.by_language.items()}
        self._exclude = patterns.compile_any(params.exclude) if params.exclude else None

    def hints(self) -> dict[str, Prefilter]:
        # the idiom gate's strings, found by the engine's Set pass instead of a search
        return {"idioms": _IDIOM_HINT}

    def _text(self, ctx: Context) -> str | None:
        """What the model reads, or None when too short to judge."""
        text = model_view(ctx.norm.text.text, may_hold_idiom=ctx.may_match(self, "idioms"))
        return text if _letters(text) >= _MIN_LETTERS else None

    def score_batch(self, contexts: Sequence[Context]) -> None:
        # every head is scored at once, under the head's name: the other text_model rules
        # of the batch then cost one dictionary lookup per context
        todo: dict[str, list[Context]] = {}
        for ctx in contexts:
            if HEADS[0] in ctx.scores:
                continue
            text = self._text(ctx)
            if text is None:
                ctx.scores.update(dict.fromkeys(HEADS))
            else:
                todo.setdefault(text, []).append(ctx)
        if not todo:
            return
        fitted = model()
        for text, row in zip(todo, fitted.scores(list(todo)).tolist(), strict=True):
            scores = dict(zip(fitted.heads, row, strict=True))  # the columns, in order
            for ctx in todo[text]:
                ctx.scores.update(scores)

    def detect(self, ctx: Context) -> list[Match]:
        if self._head not in ctx.scores:  # called outside a batch
            self.score_batch([ctx])
        score = ctx.scores[self._head]
        if score is None:
            return []
        low, high = self._by_language.get(ctx.subject.language, self._bounds)
        if not low <= score < high:
            return []
        if self._exclude is not None and patterns.found(self._exclude, ctx.norm.folded.text):
            return []
        view = ctx.norm.text
        return [ctx.match(view, 0, len(view.text), score)]
