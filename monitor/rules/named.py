"""A person named in full in the same comment as something private (section 5).

Why a detector of its own: independent annotators' idea of personal information is
mostly *something private about an identifiable person* — a named pupil's suspension,
IEP or lunch-account debt, a teacher's leave, a family's rent — and the private fact
takes a new shape in every comment, so phrase rules written from one round's misses
find a third of the next round's.  What does recur is the pairing: a person named in
full ("Kevin Albright", "Jasmine P.", "Mr. Lopes") and a topic word.  The phrase rules
cannot see a name, because they read lower-cased text; this detector finds names by
their capital letters in the text as posted, and topic words in the normalised text.

A name alone is not personal information (a school congratulates pupils by name every
day), and neither is a topic word alone ("the hospital fundraiser"): both must occur.
"""

from __future__ import annotations

import re2
from pydantic import BaseModel, Field, field_validator

from monitor.rules import patterns
from monitor.rules.detectors import Context, Detector, Match, Params, Prefilter, RuleEnv
from monitor.rules.programs import options

# A run of capitalised words, or a title and a surname: "Kevin Albright", "Noor
# Al-Masri", "Declan O'Rourke", "Jasmine P.", "Mr. Lopes", "Ms Hoang".  \p{Lu}\p{Ll}
# takes accented names (Zoé Côté).  Case-sensitive: the capital letters are the signal.
_WORD = r"\p{Lu}(?:\p{Ll}+(?:['’-]\p{Lu}?\p{Ll}+)*|['’]\p{Lu}\p{Ll}+)"
_TITLE = (r"(?:Mr|Mrs|Ms|Miss|Mx|Dr|Coach|Mme|Madame|Monsieur|Father|Pastor|Officer|Principal"
          r"|Vice Principal|VP|Trustee|Nurse)")
_NAME_RUN = (
    rf"\b{_TITLE}\.?\s+{_WORD}"
    rf"|\b{_WORD}(?:[ \t]+(?:{_WORD}|\p{{Lu}}\.\B))+"
)
# Other ways a comment points at one person: a personal handle (a dot, an underscore or
# digits: "@lily.chen.07", "@the_real_mia_k"; not "@BirchCreekPS"), a named child's
# relative ("Hailey's dad"), a relative's child by name ("my son Tyson", "our foster
# daughter Jasmine"), a family ("the Peterson kids") and a name with a homeroom
# ("Zainab from 7B")
_RELATIVES = (r"(?:dad|mom|mum|mother|father|parents|family|brother|sister|grandma|grandpa"
              r"|stepdad|stepmom|aunt|uncle)")
_CHILDREN = (r"(?:son|daughter|foster (?:daughter|son|kid|child)|stepson|stepdaughter|nephew"
             r"|niece|grandson|granddaughter|kid|child|little brother|little sister)")
_REFERENCE = (
    r"@[A-Za-z0-9]+(?:[._][A-Za-z0-9]+)+|@[A-Za-z]+[0-9]{2,}\b"
    rf"|\b\p{{Lu}}\p{{Ll}}+['’]s\s+{_RELATIVES}\b"
    rf"|\b(?:[Mm]y|[Oo]ur|[Hh]er|[Hh]is)\s+{_CHILDREN}\s+\p{{Lu}}\p{{Ll}}+"
    r"|\b[Tt]he\s+\p{Lu}\p{Ll}+\s+(?:kids|family|boys|girls|twins|children)\b"
    r"|\b\p{Lu}\p{Ll}+\s+(?:from|in)\s+(?:[0-9]{1,2}[A-Z]|(?:Rm|Room|Gr|Grade)\.?\s?[0-9]{1,3})\b"
)
# a handle with one of these words is an office's, a team's or a school's, not a person's
_ORG_WORDS = frozenset(("school", "office", "nurse", "dept", "department", "board", "club",
                        "team", "library", "athletics", "guidance", "admin", "official",
                        "council", "ps", "ss", "ci", "hs", "dsb", "class", "room", "teacher",
                        "principal", "pta", "news", "info"))
_FRAMES = frozenset(("my", "our", "her", "his", "the"))  # words around a reference
_TITLES = frozenset(("mr", "mrs", "ms", "miss", "mx", "dr", "coach", "mme", "madame",
                     "monsieur", "father", "pastor", "officer", "principal", "vice", "vp",
                     "trustee", "nurse"))


def _tokens(run: str) -> list[str]:
    return [t.rstrip(".,") for t in run.split()]


class NamedPersonParams(Params):
    # RE2 patterns on the normalised text (lower case, accents folded): the private topics
    topics: list[str] = Field(min_length=1)
    # capitalised words that are not names: sentence openers, days, months, places
    not_names: list[str] = []
    exclude: list[str] = []
    score: float = Field(default=0.8, ge=0.0, le=1.0)

    @field_validator("topics", "exclude")
    @classmethod
    def _check(cls, values: list[str]) -> list[str]:
        for value in values:
            patterns.check(value)
        return values


class NamedPersonDetector(Detector, name="named_person"):
    """A person named in full (First Last, First L., Mr. Last) in a comment with a private topic."""

    Params = NamedPersonParams

    def __init__(self, params: BaseModel, env: RuleEnv | None = None) -> None:
        super().__init__(params, env)
        assert isinstance(params, NamedPersonParams)
        self._params = params
        self._topics = patterns.compile_any(params.topics)
        self._exclude = patterns.compile_any(params.exclude) if params.exclude else None
        self._names = re2.compile(_NAME_RUN, options(case_sensitive=True))
        self._references = re2.compile(_REFERENCE, options(case_sensitive=True))
        self._not_names = frozenset(w.casefold() for w in params.not_names)

    def prefilter(self) -> Prefilter:
        # most comments hold no topic word: the engine's Set pass skips them
        return Prefilter("text", tuple(patterns.rewrite(p) for p in self._params.topics))

    def _name_span(self, text: str) -> tuple[int, int] | None:
        """The first run of capitalised words that is a person's name, or None.

        A run is trimmed of words that are not names ("Congrats Marcus Hill" -> "Marcus
        Hill"); what is left must be two words or more, or a title and a surname.  Then
        the other references to one person (`_REFERENCE`).
        """
        # lone surrogates cannot be encoded for RE2; "?" keeps every offset in place
        clean = text.encode("utf-8", "replace").decode("utf-8") if not text.isascii() else text
        for start, end in patterns.spans(self._names, clean):
            words = _tokens(clean[start:end])
            folded = [w.casefold() for w in words]
            if folded[0] in _TITLES:
                surname = [w for w in folded if w not in _TITLES]
                if surname and surname[0] not in self._not_names:
                    return start, end
                continue
            kept = [w for w in folded if w not in self._not_names and w not in _FRAMES]
            if len(kept) >= 2 and folded[-1] not in self._not_names:
                return start, end
        for start, end in patterns.spans(self._references, clean):
            # "the Monday kids", "Happy's family": the capitalised word must be a name
            words = [w.removesuffix("'s").removesuffix("’s").casefold()
                     for w in clean[start:end].split() if w[:1].isupper()]
            words = [w for w in words if w not in _FRAMES]
            if clean[start] == "@":
                parts = re2.split(r"[._0-9]+", clean[start + 1:end].casefold())
                if not _ORG_WORDS.intersection(parts):
                    return start, end
            elif not any(w in self._not_names for w in words):
                return start, end
        return None

    def detect(self, ctx: Context) -> list[Match]:
        view = ctx.norm.text
        if patterns.first_unexcluded(self._topics, self._exclude, view.text) is None:
            return []
        span = self._name_span(ctx.subject.text or "")
        return [Match(self._params.score, *span)] if span else []
