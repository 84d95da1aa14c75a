"""Personal-information detectors (section 5): contact details and identifiers of people.

They read the *folded* view — zero-width characters and full-width digits removed,
but digits and punctuation intact — because leetspeak decoding would turn a phone
number into letters.  Every pattern is RE2 (linear time).
"""

from __future__ import annotations

from typing import Any

import phonenumbers
import re2
from pydantic import BaseModel, Field

from monitor.rules import patterns
from monitor.rules.detectors import (
    Context,
    Detector,
    Match,
    Params,
    Prefilter,
    RuleEnv,
    in_domains,
)
from monitor.rules.patterns import options


def _program(source: str) -> Any:
    return re2.compile(source, options())


class _RegexDetector(Detector):
    """Base: one RE2 program over the folded view; the first hit is the evidence."""

    source: str = ""
    score: float = 1.0

    def __init__(self, params: BaseModel, env: RuleEnv | None = None) -> None:
        super().__init__(params, env)
        self._program = _program(self.source)

    def prefilter(self) -> Prefilter:
        return Prefilter("folded", (self.source,))

    def detect(self, ctx: Context) -> list[Match]:
        view = ctx.norm.folded
        m = self._program.search(view.text)
        return [ctx.match(view, m.start(), m.end(), self.score)] if m else []


_PROVIDERS = (
    r"gmail|hotmail|yahoo|outlook|icloud|live|msn|proton|protonmail|aol|rogers|bell"
    r"|sympatico|videotron|cogeco|shaw|telus|sapo|orange|free|laposte|gmx|yandex"
)
_TLDS = r"com|ca|net|org|edu|me|io|fr|qc|uk|co|pt|be|ch|info"
_AT = r"\(at\)|\[at\]|\{at\}|\sat\s|\(a\)|\sarobase?\s"
_DOT = r"\(dot\)|\[dot\]|\{dot\}|\sdot\s|\(\.\)|\(point\)|\spoint\s|\."
_EMAIL = (
    r"[a-z0-9._%+\-]+@[a-z0-9\-]+(?:\.[a-z0-9\-]+)*\.[a-z]{2,}"
    # spaced out to get past a platform's filter: "kpatel @ rogers . com"
    rf"|[a-z0-9._%+\-]+\s?@\s?[a-z0-9\-]+(?:\s?\.\s?[a-z0-9\-]+)*\s?\.\s?(?:{_TLDS})\b"
    rf"|[a-z0-9._\-]+\s*(?:{_AT})\s*[a-z0-9\-]+\s*(?:{_DOT})\s*(?:{_TLDS})\b"
    # "jenna dot mcd at gmail", "emmawilson2010 at gmail": a mail provider makes it one
    rf"|[a-z0-9._\-]{{3,}}\s*(?:@|{_AT})\s*(?:{_PROVIDERS})\b"
)


class EmailDetector(_RegexDetector, name="email_address"):
    """Email addresses, including 'name (at) gmail (dot) com' spellings."""

    source = _EMAIL

    def detect(self, ctx: Context) -> list[Match]:
        # an address on the board's own domains (allowed_domains) is a public staff or
        # office address, posted so families can reach the school: not personal
        view = ctx.norm.folded
        for start, end in patterns.spans(self._program, view.text):
            domain = view.text[start:end].rsplit("@", 1)[-1].strip()
            if not in_domains(domain, self.env.allowed_domains):
                return [ctx.match(view, start, end, self.score)]
        return []


_POSTAL = (
    r"\b[abceghjklmnprstvxy][0-9][abceghjklmnprstvwxyz][ \-]?[0-9][abceghjklmnprstvwxyz][0-9]\b"
)


class PostalCodeDetector(_RegexDetector, name="postal_code"):
    """Canadian postal codes (A1A 1A1), which locate a home to a few dozen houses."""

    source = _POSTAL


_STREET_EN = (
    r"street|st|avenue|ave|road|rd|drive|dr|crescent|cres|court|ct|boulevard|blvd|lane|ln"
    r"|way|place|pl|circle|trail|terrace|highway|hwy|concession|sideroad"
)
_STREET_FR = r"rue|avenue|av|boulevard|boul|bd|chemin|ch|route|rang|place|croissant|promenade|allee"
_ADDRESS = (
    rf"\b[0-9]{{1,5}}[a-z]?,?\s+(?:[a-z][a-z'.\-]*\s+){{1,3}}(?:{_STREET_EN})\b\.?"
    rf"|\b[0-9]{{1,5}}[a-z]?,?\s+(?:{_STREET_FR})\.?\s+[a-z'\-]+"
    r"|\b(?:apt|apartment|unit|app|appartement|suite)\.?\s*#?\s*[0-9]{1,4}\b"
    r"|\b(?:p\.?o\.?\s*box|c\.?p\.?|case postale|rr|r\.r\.)\s*#?\s*[0-9]{1,5}\b"
    # a house number and a street name without "street": "moved to 3 birch hollow",
    # "my house 316 fox run", "ur address is 12 hickory", "habite au 312"
    r"|\b(?:address(?:\s+is)?|adresse(?:\s+c'?est|\s+est)?|habite\s+au|reste\s+au)"
    r"\s+[0-9]{1,5}[a-z]?,?\s+[a-z][a-z'\-]{2,}"
    r"|\b(?:lives?\s+at|living\s+at|moved\s+to|drops?\s+(?:\w+\s+)?(?:off\s+)?at"
    r"|(?:my|his|her|their|our|ur|your|'s)\s+(?:house|place|home)(?:\s+at)?)"
    r"\s+[0-9]{1,5}[a-z]?,?\s+[a-z][a-z'\-]{2,}\s+[a-z][a-z'\-]{2,}"
)


class StreetAddressDetector(_RegexDetector, name="street_address"):
    """Street addresses (123 Pine Street, 45 rue Principale, apt 4, PO Box 12)."""

    source = _ADDRESS
    score = 0.9


_OEN = r"(?:^|[^0-9\-])([0-9]{3}[ \-][0-9]{3}[ \-][0-9]{3}|[0-9]{9})(?:[^0-9\-]|$)"
# A school's own student or permanent-code number, named as such: "student #48120",
# "my student number is 3048812", "numéro d'élève 2045871", "no élève 7781234",
# Quebec's permanent code (four letters, eight digits).  Bare five-digit numbers are
# everywhere (scores, prices), so the words around them are what makes them identifiers.
_SCHOOL_ID = (
    r"\b(?:student|id|health|ohip)\s*(?:number|no\.?|num|id|#|card(?:\s*number)?)(?:[^0-9\n]{0,25})"
    r"\b([0-9][0-9\-]{3,11}[0-9])\b"
    r"|\b(?:num(?:ero)?|no\.?|#|carte|fiche|dossier)\s*(?:d\W?\s*|de\s+|du\s+)?"
    r"(?:eleve|etudiant|etudiante|fiche|dossier)(?:[^0-9\n]{0,25})\b([0-9][0-9\-]{3,11}[0-9])\b"
    r"|\b(?:matricule|code\s*perm(?:anent)?)(?:[^0-9\n]{0,25})\b([0-9][0-9\-]{3,11}[0-9]|[a-z]{4}\s?[0-9]{4}\s?[0-9]{4})\b"
    r"|\b([a-z]{4}[0-9]{8})\b"
)


class StudentNumberDetector(Detector, name="student_number"):
    """Student identifiers: Ontario Education Numbers, and student or permanent-code numbers."""

    def __init__(self, params: BaseModel, env: RuleEnv | None = None) -> None:
        super().__init__(params, env)
        self._program = re2.compile(_OEN, options(capture=True))
        self._school_id = re2.compile(_SCHOOL_ID, options(capture=True))

    def prefilter(self) -> Prefilter:
        return Prefilter("folded", (_OEN, _SCHOOL_ID))

    def detect(self, ctx: Context) -> list[Match]:
        view = ctx.norm.folded
        m = self._program.search(view.text)
        if m:
            return [ctx.match(view, m.start(1), m.end(1))]
        m = self._school_id.search(view.text)
        if m:
            group = next(g for g in (1, 2, 3, 4) if m.group(g))
            return [ctx.match(view, m.start(group), m.end(group))]
        return []


_MONTHS = (
    r"jan|january|feb|february|mar|march|apr|april|may|jun|june|jul|july|aug|august"
    r"|sep|sept|september|oct|october|nov|november|dec|december"
    r"|janv|janvier|fev|fevr|fevrier|mars|avr|avril|mai|juin|juil|juillet|aout"
    r"|septembre|octobre|novembre|decembre"
)
_DATE = (
    r"[0-9]{1,2}[/.\-][0-9]{1,2}[/.\-](?:19|20)?[0-9]{2}"
    r"|(?:19|20)[0-9]{2}[/.\-][0-9]{1,2}[/.\-][0-9]{1,2}"
    rf"|(?:{_MONTHS})\.?\s+[0-9]{{1,2}}(?:st|nd|rd|th)?(?:,?\s*(?:19|20)[0-9]{{2}})?"
    rf"|[0-9]{{1,2}}(?:er|st|nd|rd|th)?\s+(?:{_MONTHS})\.?(?:,?\s*(?:19|20)[0-9]{{2}})?"
)
_BIRTH = (
    r"\b(?:born|dob|d\.o\.b\.?|date of birth|birth\s*date|birthday|bday|b-day|ddn"
    r"|nee?s?|date de naissance|anniversaire|fete|turn(?:s|ed)?\s+[0-9]{1,2}"
    r"|[0-9]{1,2}\s+ans\s+(?:aujourd\W?hui|le))\b"
    rf"[^.!?\n]{{0,40}}?\b(?:{_DATE})"
)


class BirthdateDetector(_RegexDetector, name="birthdate"):
    """A date of birth: a date within a few words of born/DOB/birthday/né le/date de naissance."""

    source = _BIRTH


class PhoneParams(Params):
    region: str = Field(default="CA", pattern=r"^[A-Z]{2}$")


_PHONE_HINT = r"[0-9](?:[\s().\-+*/_]{0,3}[0-9]){6}"
# "416/555/0128", "705*555*0141": separators the matcher does not know, made dashes
# (same length, so spans still map back to the original)
_PHONE_SEPARATORS = str.maketrans("*/_", "---")


# Youth and family helplines posted by schools and students alike: public numbers, never
# a person's personal information (the board adds its own in [rules] public_phone_numbers)
HELPLINES = (
    "1-800-668-6868", "686868",  # Kids Help Phone / Jeunesse, J'écoute
    "988", "211", "911", "811",
    "1-800-263-2266",  # Tel-jeunes
    "1-866-925-5454",  # Good2Talk
    "1-855-242-3310",  # Hope for Wellness
    "1-888-505-1010",  # Interligne
    "1-800-363-9010",  # SOS violence conjugale
    "1-800-361-5085",  # Ligne Parents
    "1-866-277-3553",  # 1 866 APPELLE
    "1-800-463-5060",  # Centre antipoison du Québec
    "1-800-268-9017",  # Ontario Poison Centre
)


def _national(number: str) -> str:
    digits = "".join(c for c in number if c.isdigit())
    return digits[1:] if len(digits) == 11 and digits.startswith("1") else digits


class PhoneDetector(Detector, name="phone_number"):
    """Phone numbers the phonenumbers library accepts as possible in the region (default CA)."""

    Params = PhoneParams

    def __init__(self, params: BaseModel, env: RuleEnv | None = None) -> None:
        super().__init__(params, env)
        self._public = frozenset(_national(n) for n in (*HELPLINES,
                                                         *self.env.public_phone_numbers))

    def prefilter(self) -> Prefilter:
        return Prefilter("folded", (_PHONE_HINT,))

    def detect(self, ctx: Context) -> list[Match]:
        assert isinstance(self.params, PhoneParams)
        view = ctx.norm.folded
        # the matcher is slow; a phone is never that far in
        text = view.text[:20_000].translate(_PHONE_SEPARATORS)
        for m in phonenumbers.PhoneNumberMatcher(
            text, self.params.region, leniency=phonenumbers.Leniency.POSSIBLE, max_tries=50
        ):
            digits = sum(c.isdigit() for c in m.raw_string)
            if _national(m.raw_string) in self._public:
                continue
            if digits >= 10 or (digits == 7 and "-" in m.raw_string):
                return [ctx.match(view, m.start, m.end)]
        return []
