"""Inappropriate language (section 8): word lists plus the alt-profanity-check model.

Why both: the word lists are precise and cover French and Franco-Ontarian swearing the
English model has never seen; the model catches creative English the lists miss.
Why `ignore`: the model scores *offensiveness*, so "I want to kill myself" or "I hate
Mondays" come out at 0.9.  A crisis disclosure must be reported as duty of care (9.0),
not as bad language (8.0), so each rule masks the vocabulary it does not own (violence,
death, insults) before the model sees the text.  Category separation is a rule decision.

The model is called once per batch by the engine (`model_input` + `classify`), which
is 400 times faster than one call per comment.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, field_validator

from monitor.rules import patterns
from monitor.rules.detectors import Context, Detector, Match, Params, Prefilter, RuleEnv
from monitor.rules.patterns import check_all

_MAX_MODEL_CHARS = 5_000
_VOWELS = frozenset("aeiouy")
_SUFFIX = r"(?:s|es|ed|er|ers|in|ing|ings|y|ie|ies|head|heads|face|hole|holes)?"
_lock = threading.Lock()
_predict: Any = None


def classify(texts: Sequence[str]) -> list[float]:
    """Model probabilities for many texts in one call (imports the model on first use)."""
    global _predict
    if not texts:
        return []
    if _predict is None:
        with _lock:
            if _predict is None:
                _predict = _load_predictor()
    return [float(p) for p in _predict(list(texts))]


def _load_predictor() -> Any:
    """alt-profanity-check's model as arrays (`LinearProfanityModel`), or, should a
    release ship a model of another shape, its own vectorizer and model."""
    from profanity_check import profanity_check as library

    linear = LinearProfanityModel.from_library(library.vectorizer, library.model)
    if linear is not None:
        return linear.predict

    def predict(texts: list[str]) -> Any:
        return library.model.predict_proba(library.vectorizer.transform(texts))[:, 1]

    return predict


_SEPARATOR = "\nPOLICYWATCHNEXTTEXT\n"
_SEPARATOR_ID = -2


class LinearProfanityModel:
    """alt-profanity-check's tf-idf + calibrated linear SVMs, computed with numpy.

    Why: the shipped model is a word tf-idf (`TfidfVectorizer`, unigrams, l2 norm)
    feeding five sigmoid-calibrated `LinearSVC`s whose probabilities are averaged.
    scikit-learn's vectorizer runs a chain of Python calls per word and then builds
    sparse matrices; the same arithmetic over the batch's word ids in numpy costs a
    fraction (tests/test_rules_engine.py checks the probabilities against the library's
    `predict_prob` on the whole corpus).
    p = mean_k sigmoid(-(a_k * (w_k . x + b_k) + c_k)), x = counts * idf / ||counts * idf||.
    """

    def __init__(self, vocabulary: dict[str, int], idf: Any, coef: Any, intercept: Any,
                 slope: Any, offset: Any, token_pattern: str) -> None:
        self._ids = {**vocabulary, _SEPARATOR.strip(): _SEPARATOR_ID}
        self._idf = np.asarray(idf, dtype=np.float64)
        self._coef = np.ascontiguousarray(np.asarray(coef, dtype=np.float64).T)  # (V, K)
        self._intercept = np.asarray(intercept, dtype=np.float64)
        self._slope = np.asarray(slope, dtype=np.float64)
        self._offset = np.asarray(offset, dtype=np.float64)
        self._tokens = re.compile(token_pattern)

    @classmethod
    def from_library(cls, vectorizer: Any, model: Any) -> LinearProfanityModel | None:
        """The arrays of the library's fitted objects; None unless they have exactly the
        shape this class computes (then the caller uses the library itself)."""
        try:
            params = vectorizer.get_params()
            members = model.calibrated_classifiers_
            if not (params["analyzer"] == "word" and params["ngram_range"] == (1, 1)
                    and params["lowercase"] and params["norm"] == "l2"
                    and params["use_idf"] and not params["sublinear_tf"]
                    and not params["binary"] and params["preprocessor"] is None
                    and params["tokenizer"] is None and model.method == "sigmoid"
                    and list(model.classes_) == [0, 1]):
                return None
            coef, intercept, slope, offset = [], [], [], []
            for member in members:
                (calibrator,) = member.calibrators
                coef.append(member.estimator.coef_[0])
                intercept.append(member.estimator.intercept_[0])
                slope.append(calibrator.a_)
                offset.append(calibrator.b_)
            return cls(dict(vectorizer.vocabulary_), vectorizer.idf_, coef, intercept,
                       slope, offset, params["token_pattern"])
        except (AttributeError, KeyError, TypeError, ValueError):
            return None

    def predict(self, texts: list[str]) -> Any:
        """Probability of the positive class for each text."""
        n = len(texts)
        # one regex pass over the whole batch: the texts are lower-cased first, so the
        # upper-case separator can neither occur in them nor be in the vocabulary
        tokens = self._tokens.findall(_SEPARATOR.join([t.lower() for t in texts]))
        ids = np.fromiter(map(self._ids.get, tokens, itertools.repeat(-1)), dtype=np.int64,
                          count=len(tokens))
        doc = np.cumsum(ids == _SEPARATOR_ID)
        keep = ids >= 0
        doc, term = doc[keep], ids[keep]
        size = len(self._idf)
        # tf counts per (text, word): the l2 norm squares the count, not each occurrence
        pairs, counts = np.unique(doc * size + term, return_counts=True)
        doc, term = pairs // size, pairs % size
        value = counts * self._idf[term]
        norm = np.sqrt(np.bincount(doc, weights=value * value, minlength=n))
        heads = self._coef.shape[1]
        dot = np.empty((n, heads))
        weighted = self._coef[term] * value[:, np.newaxis]
        for k in range(heads):
            dot[:, k] = np.bincount(doc, weights=weighted[:, k], minlength=n)
        dot = np.divide(dot, norm[:, np.newaxis], out=np.zeros_like(dot),
                        where=norm[:, np.newaxis] > 0)
        decision = dot + self._intercept
        proba = 1.0 / (1.0 + np.exp(self._slope * decision + self._offset))
        proba[(proba > 1.0) & (proba <= 1.0 + 1e-5)] = 1.0
        return proba.mean(axis=1)


def word_pattern(word: str) -> str:
    """A list word as a stretch- and mask-tolerant pattern: 'fuck' -> f+[u*]+c+k+.

    Runs are already squashed by normalisation; this catches the doubled letters that
    remain and masked vowels ("f*ck", "sh*t").  A trailing '*' in the list allows any
    word ending ("enfoir*").
    """
    word = patterns.fold_pattern(word.strip().lower())
    prefix_only = word.endswith("*")
    word = word.rstrip("*")
    out = []
    for i, ch in enumerate(word):
        if ch == " ":
            out.append(r"\s*")
        elif ch == "'":
            out.append(r"['\s]?")
        elif ch.isalnum():
            esc = re.escape(ch)
            out.append(f"[{esc}*]+" if i and ch in _VOWELS else f"{esc}+")
        else:
            out.append(re.escape(ch))
    ending = r"[a-z]*" if prefix_only else _SUFFIX
    return rf"\b{''.join(out)}{ending}\b"


class ProfanityParams(Params):
    threshold: float = Field(default=0.9, ge=0.0, le=1.0)
    model: bool = True
    words: list[str] = []
    ignore: list[str] = []
    exclude: list[str] = []

    _check = field_validator("ignore", "exclude")(check_all)


class ProfanityDetector(Detector, name="profanity"):
    """Word list (stretch/mask tolerant) plus alt-profanity-check probability >= threshold."""

    Params = ProfanityParams

    def __init__(self, params: BaseModel, env: RuleEnv | None = None) -> None:
        super().__init__(params, env)
        assert isinstance(params, ProfanityParams)
        self._params = params
        self._words_src = tuple(word_pattern(w) for w in params.words)
        self._words = (
            patterns.program("|".join(f"(?:{w})" for w in self._words_src))
            if params.words else None
        )
        self._ignore = patterns.compile_any(params.ignore) if params.ignore else None
        self._exclude = patterns.compile_any(params.exclude) if params.exclude else None
        # with the model the rule runs on every comment, so the engine's Set pass tells
        # whether the word list or the masked vocabulary can match at all
        self._hints: dict[str, Prefilter] = {}
        if params.model and self._words_src:
            self._hints["words"] = Prefilter("text", self._words_src)
        if params.model and params.ignore:
            self._hints["ignore"] = Prefilter("text", tuple(map(patterns.rewrite, params.ignore)))

    def prefilter(self) -> Prefilter | None:
        if self._params.model or not self._words_src:
            return None
        return Prefilter("text", self._words_src)

    def hints(self) -> dict[str, Prefilter]:
        return dict(self._hints)

    def model_input(self, ctx: Context) -> str | None:
        if not self._params.model:
            return None
        key = id(self)
        if key in ctx.inputs:
            return ctx.inputs[key]
        text = ctx.norm.text.text[:_MAX_MODEL_CHARS]
        if self._ignore is not None and ctx.may_match(self, "ignore"):
            text = patterns.blank(self._ignore, text)
        result = text if any(map(str.isalpha, text)) else None
        ctx.inputs[key] = result
        return result

    def detect(self, ctx: Context) -> list[Match]:
        view = ctx.norm.text
        if self._words is not None and ctx.may_match(self, "words"):
            span = patterns.first_unexcluded(self._words, self._exclude, view.text)
            if span is not None:
                return [ctx.match(view, *span)]
        key = self.model_input(ctx)
        if key is None:
            return []
        prob = ctx.probabilities.get(key)
        if prob is None:
            prob = classify([key])[0]
            ctx.probabilities[key] = prob
        if prob < self._params.threshold:
            return []
        return [ctx.match(view, 0, len(view.text), prob)]
