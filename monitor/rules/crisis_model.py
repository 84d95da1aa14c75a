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

import itertools
import json
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, cast

import numpy as np
from pydantic import BaseModel, Field, model_validator

from monitor.rules.detectors import Context, Detector, Match, Params, RuleEnv

_BITS = 18
_CHAR_BUCKETS = 1 << (_BITS - 1)  # char n-grams in [0, 2**17), words in [2**17, 2**18)
_MAX_CHARS = 1_000
_CHAR_N = (2, 5)
_C = 10.0  # inverse regularisation of the logistic regression
_MEMO_KEY = "\x00crisis_model"  # cannot be a token of normalised text
_U = np.uint32


def training_rows() -> list[dict[str, Any]]:
    """The dev split (en + fr) shipped with the package: {"text", "lang", "crisis"}."""
    text = resources.files("monitor.rules").joinpath("data", "crisis_dev.jsonl").read_text("utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def prepare(text: str) -> str:
    """What the model reads: the engine's normalised text view, truncated."""
    from monitor.rules.normalize import normalize

    return normalize(text).text.text[:_MAX_CHARS]


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


def _word_keys(padded: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(doc index, bucket) of every word unigram and bigram (tokens of 2+ characters)."""
    docs: list[int] = []
    keys: list[int] = []
    for i, text in enumerate(padded):
        words = [w for w in text.split() if len(w) > 1]
        grams = words + [f"{a} {b}" for a, b in itertools.pairwise(words)]
        docs.extend([i] * len(grams))
        keys.extend(zlib.crc32(g.encode("utf-8")) for g in grams)
    k = np.asarray(keys, dtype=np.int64) % _CHAR_BUCKETS + _CHAR_BUCKETS
    return np.asarray(docs, dtype=np.int64), k


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


_lock = threading.Lock()
_model: CrisisModel | None = None


def model() -> CrisisModel:
    """The model fitted on the shipped dev split, once per process."""
    global _model
    if _model is None:
        with _lock:
            if _model is None:
                rows = training_rows()
                _model = fit([prepare(r["text"]) for r in rows], [int(r["crisis"]) for r in rows])
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


class CrisisModelParams(Params):
    threshold: float = Field(ge=0.0, le=1.0)
    below: float | None = Field(default=None, ge=0.0, le=1.0)  # exclusive upper bound
    min_letters: int = Field(default=8, ge=0)

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

    def _text(self, ctx: Context) -> str | None:
        text = ctx.norm.text.text[:_MAX_CHARS]
        letters = sum(c.isalpha() for c in text)
        return text if letters >= self._params.min_letters else None

    @staticmethod
    def _batch(ctx: Context) -> _Batch:
        memo = cast(dict[str, Any], ctx.memo)
        batch = memo.get(_MEMO_KEY)
        if batch is None:
            batch = memo[_MEMO_KEY] = _Batch()
        return cast(_Batch, batch)

    def model_input(self, ctx: Context) -> str | None:
        # queue the text for the batch's single scoring call; the profanity model gets nothing
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
        if batch.scores.get(text, -1.0) < 0.0:
            if text not in batch.pending:
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
