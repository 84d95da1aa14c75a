"""Second-stage crisis classifier: TF-IDF n-grams + logistic regression, trained at first use.

Why: the phrase rules are precise but miss paraphrases (blind recall about 0.5, see
docs/detection-quality.md).  A linear model over character n-grams generalises to
wording no pattern lists, and is cheap enough to score every comment of a batch.

Training data is the *dev* split of tests/corpus/en.jsonl + fr.jsonl (exactly what
`monitor.rules.quality` calls dev), copied to `monitor/rules/data/crisis_dev.jsonl` so
the installed package can train without the test tree; held-out and blind lines are
never seen.  Nothing is pickled: the model is fitted deterministically in the process
on first use (< 2 s) and cached.

Features (on the engine's normalised `text` view): char_wb n-grams 2-5 (n-grams inside
space-padded words, as scikit-learn's ``char_wb``) and word 1-2 grams, hashed into
2**18 buckets, weighted by idf from the training set and L2-normalised.  They are
computed with numpy rather than scikit-learn's Python analyzers, which cost about
0.1 ms per comment and would cut the engine below 20,000 comments/s.  The norm is
taken over n-gram occurrences (sqrt of the sum of idf**2), which equals the exact L2
norm of the tf-idf vector when no n-gram repeats; training uses the same definition,
so the linear score is exact for what was trained.

Batching: the engine asks every rule's `model_input` for the whole batch before any
`detect`.  This detector uses that pass to queue its texts in the batch's shared memo,
and the first `detect` of the batch scores them all in one call.
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, cast

import numpy as np
from pydantic import BaseModel, Field, model_validator

from monitor.rules import patterns
from monitor.rules.detectors import Context, Detector, Match, Params, RuleEnv

_BITS = 18
_CHAR_BUCKETS = 1 << (_BITS - 1)  # char n-grams in [0, 2**17), words in [2**17, 2**18)
_MAX_CHARS = 1_000
_CHAR_N = (2, 5)
_C = 10.0  # inverse regularisation of the logistic regression
TRAINING_FILE = "crisis_train.jsonl"
IDIOMS_FILE = "crisis_idioms.txt"
_FORMAT = 2  # bump when features() changes: old weights would score garbage
_INPUT_KEY = -1  # this model's entry in Context.inputs (other detectors use their id())
_MIN_LETTERS = 8  # fewer letters ("ok!", "😂😂") give the model nothing to judge
_MEMO_KEY = "\x00crisis_model"  # cannot be a token of normalised text
_U = np.uint32


def training_rows() -> list[dict[str, Any]]:
    """The training rows shipped with the package: {"text", "lang", "crisis"}."""
    text = resources.files("monitor.rules").joinpath("data", TRAINING_FILE).read_text("utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def prepare(text: str) -> str:
    """What the model reads of a raw comment (training and evaluation)."""
    from monitor.rules.normalize import normalize

    return model_view(normalize(text).text.text)


def model_view(normalised: str) -> str:
    """What the model reads of the engine's normalised text: truncated, idioms blanked."""
    if len(normalised) > _MAX_CHARS:
        normalised = normalised[:_MAX_CHARS]
    return blank_idioms(normalised)


def idiom_patterns() -> list[str]:
    """The patterns of `IDIOMS_FILE` (comments and blank lines dropped)."""
    text = resources.files("monitor.rules").joinpath("data", IDIOMS_FILE).read_text("utf-8")
    return [line.strip() for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def idioms_digest() -> str:
    """Recorded with the weights: they are only valid for the idioms they were fitted with."""
    return hashlib.sha256("\n".join(idiom_patterns()).encode("utf-8")).hexdigest()[:16]


@functools.cache
def _idiom_program() -> Any:
    return patterns.compile_any(idiom_patterns())


def _char_keys(padded: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(doc index, bucket) of every char_wb n-gram occurrence, n in 2..5, vectorised."""
    joined = "\n".join(padded)
    codes = np.frombuffer(joined.encode("utf-32-le"), dtype=_U)
    lengths = np.fromiter((len(p) + 1 for p in padded), dtype=np.int64, count=len(padded))
    doc = np.repeat(np.arange(len(padded), dtype=np.int64), lengths)[: len(codes)]
    sep = codes == 10
    space = codes == 32
    total = len(codes)
    docs, keys = [], []
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
            ok = ~bad
            mixed = (h[ok] ^ _U(n * 0x9E3779B1 & 0xFFFFFFFF)) * _U(0x85EBCA6B)
            keys.append((mixed >> _U(32 - _BITS + 1)).astype(np.int64))
            docs.append(doc[:m][ok])
    if not keys:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(docs), np.concatenate(keys)


_P = 1099511628211  # FNV-1 64-bit prime: odd, so it has an inverse modulo 2**64
_P_INV = pow(_P, -1, 1 << 64)
_U64 = np.uint64


def _word_keys(padded: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(doc index, bucket) of every word unigram and bigram (tokens of 2+ characters).

    A word's hash is a polynomial over its code points, read off prefix sums so every
    word of the batch is hashed in a few numpy passes (a Python loop over words cost
    about as much as the rest of the model).
    """
    joined = "\n".join(padded)
    codes = np.frombuffer(joined.encode("utf-32-le"), dtype=_U).astype(_U64)
    total = len(codes)
    lengths = np.fromiter((len(p) + 1 for p in padded), dtype=np.int64, count=len(padded))
    doc = np.repeat(np.arange(len(padded), dtype=np.int64), lengths)[:total]
    gap = np.ones(total + 2, dtype=bool)  # gap[i + 1]: codes[i] separates words
    gap[1:-1] = (codes == 32) | (codes == 10)
    edges = np.diff(gap.view(np.int8))
    starts = np.flatnonzero(edges == -1)
    ends = np.flatnonzero(edges == 1)
    keep = ends - starts > 1
    starts, ends = starts[keep], ends[keep]
    if not len(starts):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    with np.errstate(over="ignore"):
        power = np.cumprod(np.full(total, _P, dtype=_U64)) * _U64(_P_INV)  # P**i
        inverse = np.cumprod(np.full(total, _P_INV, dtype=_U64)) * _U64(_P)  # P**-i
        prefix = np.zeros(total + 1, dtype=_U64)
        np.cumsum(codes * power, out=prefix[1:])
        word = (prefix[ends] - prefix[starts]) * inverse[starts] + (ends - starts).astype(_U64)
        word_doc = doc[starts]
        same = word_doc[1:] == word_doc[:-1]
        pair = (word[:-1] * _U64(0x9E3779B97F4A7C15) + word[1:])[same]
        hashes = np.concatenate([word, pair]) * _U64(0xC2B2AE3D27D4EB4F)
    keys = (hashes >> _U64(64 - _BITS + 1)).astype(np.int64) + _CHAR_BUCKETS
    return np.concatenate([word_doc, word_doc[:-1][same]]), keys


def features(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(doc index, bucket) of every n-gram occurrence in already prepared texts."""
    padded = [" " + " ".join(t.split()) + " " for t in texts]
    cd, ck = _char_keys(padded)
    wd, wk = _word_keys(padded)
    return np.concatenate([cd, wd]), np.concatenate([ck, wk])


@dataclass(frozen=True)
class CrisisModel:
    """Fitted weights: score = sigmoid(bias + sum(w*idf) / sqrt(sum(idf**2)))."""

    weighted_idf: np.ndarray  # coef * idf per bucket
    idf_squared: np.ndarray
    bias: float

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """Crisis probability of each prepared text, in one vectorised pass."""
        if not texts:
            return np.zeros(0)
        doc, key = features(texts)
        n = len(texts)
        num = np.bincount(doc, weights=self.weighted_idf[key], minlength=n)
        den = np.sqrt(np.bincount(doc, weights=self.idf_squared[key], minlength=n))
        logit = self.bias + np.divide(num, den, out=np.zeros(n), where=den > 0)
        return 1.0 / (1.0 + np.exp(-logit))


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


def fit(texts: Sequence[str], labels: Sequence[int]) -> CrisisModel:
    """Fit on prepared texts; deterministic (lbfgs, no randomness)."""
    from sklearn.linear_model import LogisticRegression

    x, idf = _matrix(texts, None)
    clf = LogisticRegression(C=_C, class_weight="balanced", max_iter=1000)
    clf.fit(x, np.asarray(labels))
    coef = np.asarray(clf.coef_[0], dtype=np.float64)
    return CrisisModel(coef * idf, idf**2, float(clf.intercept_[0]))


WEIGHTS_FILE = "crisis_model.npz"


def save(fitted: CrisisModel, path: Path) -> None:
    """Write the weights as plain float32 arrays (np.load with allow_pickle=False reads them)."""
    np.savez_compressed(path, weighted_idf=fitted.weighted_idf.astype(np.float32),
                        idf_squared=fitted.idf_squared.astype(np.float32),
                        bias=np.asarray([fitted.bias]), version=np.asarray([_FORMAT]),
                        idioms=np.asarray([idioms_digest()]))


def load(source: Any) -> CrisisModel:
    """Read weights written by `save`; refuses a file of another feature format."""
    with np.load(source, allow_pickle=False) as data:
        if int(data["version"][0]) != _FORMAT:
            raise ValueError(f"crisis model weights have format {int(data['version'][0])}, "
                             f"this code reads format {_FORMAT}: run "
                             "benchmarks/crisis_model_cv.py --write")
        if str(data["idioms"][0]) != idioms_digest():
            raise ValueError(f"crisis model weights were fitted with other idioms than "
                             f"{IDIOMS_FILE}: run benchmarks/crisis_model_cv.py --write")
        return CrisisModel(data["weighted_idf"].astype(np.float64),
                           data["idf_squared"].astype(np.float64), float(data["bias"][0]))


def fit_training_rows() -> CrisisModel:
    """Fit on the shipped training rows: what `--write` saves and a test re-checks."""
    rows = training_rows()
    return fit([prepare(r["text"]) for r in rows], [int(r["crisis"]) for r in rows])


_lock = threading.Lock()
_model: CrisisModel | None = None


def model() -> CrisisModel:
    """The shipped weights, loaded once per process (no training at run time)."""
    global _model
    if _model is None:
        with _lock:
            if _model is None:
                with resources.files("monitor.rules").joinpath("data", WEIGHTS_FILE).open(
                        "rb") as f:
                    _model = load(f)
    return _model


def cross_validated_scores(folds: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold scores on the dev split (labels, scores), to choose the thresholds.

    Folds are grouped by the letters of the normalised text, so an evasion variant never
    sits in a different fold from the line it was made from (that would leak).
    """
    import re

    from sklearn.model_selection import StratifiedGroupKFold

    rows = training_rows()
    texts = [prepare(r["text"]) for r in rows]
    labels = np.asarray([int(r["crisis"]) for r in rows])
    groups = [re.sub(r"[^a-z]", "", t) for t in texts]
    out = np.zeros(len(rows))
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in splitter.split(texts, labels, groups):
        m = fit([texts[i] for i in train], labels[train])
        out[test] = m.scores([texts[i] for i in test])
    return labels, out


def blank_idioms(text: str) -> str:
    """The text with every idiom of `IDIOMS_FILE` replaced by a space."""
    program = _idiom_program()
    return program.sub(" ", text) if program.search(text) else text


class CrisisModelParams(Params):
    threshold: float = Field(ge=0.0, le=1.0)
    below: float | None = Field(default=None, ge=0.0, le=1.0)  # exclusive upper bound

    @model_validator(mode="after")
    def _order(self) -> CrisisModelParams:
        if self.below is not None and self.below <= self.threshold:
            raise ValueError("below must be greater than threshold")
        return self


@dataclass
class _Batch:
    pending: list[str] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)


class CrisisModelDetector(Detector, name="crisis_model"):
    """Crisis classifier (TF-IDF n-grams + logistic regression) score in [threshold, below)."""

    Params = CrisisModelParams

    def __init__(self, params: BaseModel, env: RuleEnv | None = None) -> None:
        super().__init__(params, env)
        assert isinstance(params, CrisisModelParams)
        self._params = params

    @staticmethod
    def _text(ctx: Context) -> str | None:
        """What the model reads, or None when too short to judge; once per subject.

        Kept under one key shared by every crisis_model rule (the urgent and the review
        rule read the same score), so the second rule costs a dictionary lookup.
        """
        inputs = ctx.inputs
        if _INPUT_KEY in inputs:
            return inputs[_INPUT_KEY]
        text = model_view(ctx.norm.text.text)
        result = text if sum(map(str.isalpha, text)) >= _MIN_LETTERS else None
        inputs[_INPUT_KEY] = result
        return result

    @staticmethod
    def _batch(ctx: Context) -> _Batch:
        memo = cast(dict[str, Any], ctx.memo)
        batch = memo.get(_MEMO_KEY)
        if batch is None:
            batch = memo[_MEMO_KEY] = _Batch()
        return cast(_Batch, batch)

    def model_input(self, ctx: Context) -> str | None:
        # queue the text for the batch's single scoring call; the profanity model gets nothing
        if _INPUT_KEY not in ctx.inputs:
            text = self._text(ctx)
            if text is not None:
                batch = self._batch(ctx)
                if text not in batch.scores:
                    batch.scores[text] = -1.0  # queued
                    batch.pending.append(text)
        return None

    def detect(self, ctx: Context) -> list[Match]:
        text = self._text(ctx)
        if text is None:
            return []
        batch = self._batch(ctx)
        score = batch.scores.get(text, -1.0)
        if score < 0.0:
            if text not in batch.scores:
                batch.pending.append(text)
            pending, batch.pending = batch.pending, []
            batch.scores.update(zip(pending, (float(s) for s in model().scores(pending)),
                                    strict=True))
            score = batch.scores[text]
        p = self._params
        if score < p.threshold or (p.below is not None and score >= p.below):
            return []
        view = ctx.norm.text
        return [ctx.match(view, 0, len(view.text), score)]
