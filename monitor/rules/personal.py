"""Personal-information detectors (section 5): contact details and identifiers of people.

They read the *folded* view — zero-width characters and full-width digits removed,
but digits and punctuation intact — because leetspeak decoding would turn a phone
number into letters.  Every pattern is RE2 (linear time), except a few Python `re`
substitutions with fixed-width lookarounds, which RE2 lacks (look-alike letters read as
digits, odd separators between digit groups, spaced-out letters joined), linear as well.
"""

from __future__ import annotations

from typing import Any

import phonenumbers
from pydantic import BaseModel, Field

from monitor.rules import patterns, readings
from monitor.rules.detectors import (
    Context,
    Detector,
    Match,
    Params,
    Prefilter,
    RuleEnv,
    in_domains,
)
from monitor.rules.normalize import normalize

# The school's own address or postal code, given so families can find it, is public:
# "the school address is 150 main st", "postal code for the school is L9T 4H7"
_SCHOOL_PLACE = (
    r"\b(?:school|ecole|office|bureau)(?:'?s)?\s+(?:mailing\s+)?(?:address|postal code"
    r"|adresse|code postal)\b|\b(?:address|adresse|postal code|code postal)\s+(?:for|of|de|du)"
    r"\s+(?:the\s+|la\s+|l'?\s*)?(?:school|ecole|office|bureau|commission scolaire"
    r"|conseil scolaire|gps)\b|\b(?:(?:the|our) school|(?:l'?|notre\s+|votre\s+)ecole|the gym"
    r"|le gymnase|l'?arena)"
    r"\s+(?:is\s+at|is\s+located\s+at|est\s+au|c'?est\s+au|est\s+situee?\s+au)\b"
)
_CONTEXT = 60  # characters before a hit searched for what makes it public


def _said_public(program: Any, text: str, start: int, end: int) -> bool:
    """Whether `program` (what makes a hit public) occurs in text[start - _CONTEXT:end]."""
    return patterns.found(program, text[max(0, start - _CONTEXT) : end])


def _digit_readings(text: str) -> list[str]:
    """The folded text, then (same length) with look-alike letters read as digits, when
    that reads differently."""
    other = readings.digitized(text)
    return [text] if other == text else [text, other]


class _RegexDetector(Detector):
    """Base: one RE2 program over the folded view; the first hit is the evidence.

    `public_before`, when set, is a pattern that makes a hit public (not reported) when
    it occurs in the hit or the `_CONTEXT` characters before it.
    """

    source: str = ""
    public_before: str = ""
    score: float = 1.0
    lookalike_digits = False  # also read look-alike letters among digits as digits
    spaced_out = False  # also read letters spaced out one at a time as words

    def __init__(self, params: BaseModel, env: RuleEnv | None = None) -> None:
        super().__init__(params, env)
        self._program = patterns.program(self.source)
        self._public = patterns.program(self.public_before) if self.public_before else None

    def prefilter(self) -> Prefilter:
        hints = ((readings.LOOKALIKE_HINT,) if self.lookalike_digits else ()) + (
            (readings.SPACED_OUT_HINT,) if self.spaced_out else ())
        return Prefilter("folded", (self.source, *hints))

    def detect(self, ctx: Context) -> list[Match]:
        view = ctx.norm.folded
        for text in _digit_readings(view.text) if self.lookalike_digits else [view.text]:
            for start, end in patterns.spans(self._program, text):
                if not self.is_public(text, start, end):
                    return [ctx.match(view, start, end, self.score)]
        return self._despaced(ctx)

    def _despaced(self, ctx: Context) -> list[Match]:
        view = ctx.norm.folded
        joined = readings.despaced(view.text) if self.spaced_out else None
        if joined is None:
            return []
        text, starts = joined
        for start, end in patterns.spans(self._program, text):
            if not self.is_public(text, start, end):
                o_start = starts[start]
                o_end = starts[end - 1] + 1 if end > start else o_start
                return [ctx.match(view, o_start, o_end, self.score)]
        return []

    def is_public(self, text: str, start: int, end: int) -> bool:
        return self._public is not None and _said_public(self._public, text, start, end)


_PROVIDERS = (
    r"g\s?mail|hot\s?mail|yahoo|outlook|icloud|live|msn|proton|protonmail|aol|rogers|bell"
    r"|sympatico|videotron|cogeco|shaw|telus|sapo|orange|free|laposte|gmx|yandex"
)
_TLDS = r"com|ca|net|org|edu|me|io|fr|qc|uk|co|pt|be|ch|info|c0m"
_AT = (
    r"\(at\)|\[at\]|\{at\}|\sat\s|\(a\)|\(@\)|\[@\]|\s?\[?(?:arobase?|arobas|arrobe|arroba)\]?\s"
    r"|\sa commercial\s|[({\[](?:chez|arobase?|arobas|arrobe|arroba)[)}\]]"
)
_DOT = (
    r"\(dot\)|\[dot\]|\{dot\}|\sdot\s|\(\.\)|\(point\)|\{point\}|\s\[?point\]?\s|\spunto\s|\spt\s|\."
)
_EMAIL = (
    r"[a-z0-9._%+\-]+@[a-z0-9\-]+(?:\.[a-z0-9\-]+)*\.(?:[a-z]{2,}|c0m)"
    # spaced out to get past a platform's filter: "kpatel @ rogers . com"
    rf"|[a-z0-9._%+\-]+\s?@\s?[a-z0-9\-]+(?:\s?\.\s?[a-z0-9\-]+)*\s?\.\s?(?:{_TLDS})\b"
    rf"|[a-z0-9._\-]+\s*(?:{_AT})\s*[a-z0-9\-]+\s*(?:{_DOT})\s*(?:{_TLDS})\b"
    # "jenna dot mcd at gmail", "emmawilson2010 at gmail": a mail provider makes it one
    rf"|[a-z0-9._\-]{{3,}}\s*(?:@|{_AT}|\s\(?chez\s)\s*(?:{_PROVIDERS})\b"
    # without the @: "ashley.m.rowe hotmail com", "emile_2011 sur yahoo.ca", "felix.dube a
    # gmail pt com"
    rf"|[a-z0-9._\-]{{3,}}\s+(?:{_PROVIDERS})\s+(?:{_TLDS})\b"
    rf"|[a-z0-9._\-]{{3,}}\s+(?:sur|on|a|à)\s+(?:{_PROVIDERS})\s*(?:{_DOT})\s*(?:{_TLDS})\b"
    # the provider named, the address given as a user name: "my gmail is karen.lebl4nc",
    # "mon gmail c'est mlabelle2011", "on my yahoo, it's mike_the_dad_73", "my email is
    # bcd.pham": a user name with a digit, a dot or an underscore
    rf"|\b(?:{_PROVIDERS}|e-?mail|courriel)(?:\s+address|\s+adresse)?,?\s*(?:\sis|\sit'?s|\sc'?est|:|=)"
    r"\s+(?:just\s+)?[a-z0-9]*(?:[0-9_]|[a-z0-9]\.[a-z0-9])[a-z0-9._\-]*"
    # one character at a time: "c h l o e 2 0 1 1 at hotmail"
    rf"|(?:[a-z0-9]\s){{3,}}[a-z0-9]\s*(?:@|{_AT})\s*(?:{_PROVIDERS})\b"
)
# A role mailbox ("principal.office@…", "athletics@…", "musique.stjean@…": a role
# first) is an office's public address, not a person's, whatever its domain
_ROLE_MAILBOXES = frozenset((
    "principal", "office", "info", "admin", "athletics", "reception", "attendance",
    "secretary", "contact", "library", "guidance", "registrar", "communications",
    "direction", "secretariat", "bureau", "accueil", "transportation", "frontdesk",
    "sports", "music", "musique", "bibliotheque", "arts",
))
_LOCAL_PART_SEPARATORS = patterns.program(r"[._\-+]")
# words that come before "at" in a sentence, never a mailbox name before "at gmail"
_NOT_LOCAL_PARTS = frozenset((
    "now", "me", "us", "them", "him", "her", "it", "you", "here", "there", "up", "out",
    "look", "is", "are", "was", "be", "open", "starts", "ends", "meet", "see", "visit",
    "go", "online", "site", "website", "click", "available", "sale", "info", "details",
))


class EmailDetector(_RegexDetector, name="email_address"):
    """Email addresses, including 'name (at) gmail (dot) com' spellings."""

    source = _EMAIL
    spaced_out = True

    def is_public(self, text: str, start: int, end: int) -> bool:
        # a role mailbox, or an address on the board's own domains (allowed_domains), is
        # a public staff or office address posted so families can reach the school
        hit = text[start:end]
        if "@" not in hit and hit.split(None, 1)[0] in _NOT_LOCAL_PARTS:
            return True  # "verify now at meta-support.co", "see you at 9.30 com…": no address
        local, _, domain = hit.rpartition("@")
        if _LOCAL_PART_SEPARATORS.split(local.strip())[0] in _ROLE_MAILBOXES:
            return True
        return bool(domain) and in_domains(domain.strip(), self.env.allowed_domains)


_POSTAL = (
    # a letter o may stand for a zero: "M6Z OV3" (the detector wants a real digit in it)
    r"\b[abceghjklmnprstvxy][0-9o][abceghjklmnprstvwxyz][ \-]?[0-9o][abceghjklmnprstvwxyz][0-9o]\b"
    # "K2P.1L4", "M5V / 3L9", "P0M, 1A0", "K7L then 3N6", "L 5 B 2 T 7"
    r"|\b[abceghjklmnprstvxy][0-9][abceghjklmnprstvwxyz]\s*(?:[.,/]\s*(?:(?:then|puis|apres|"
    r"après|c'?est|c)\s+){0,2}|\s(?:(?:then|puis|apres|après|c'?est|c)\s+){1,2})\s*"
    r"[0-9][abceghjklmnprstvwxyz][0-9]\b"
    r"|\b[abceghjklmnprstvxy] [0-9] [abceghjklmnprstvwxyz] [0-9] [abceghjklmnprstvwxyz] [0-9]\b"
)


class PostalCodeDetector(_RegexDetector, name="postal_code"):
    """Canadian postal codes (A1A 1A1), which locate a home to a few dozen houses."""

    source = _POSTAL
    public_before = _SCHOOL_PLACE

    def is_public(self, text: str, start: int, end: int) -> bool:
        # the o-for-zero shape must still hold a digit: "bob oxo" is no postal code
        return (not any(c.isdigit() for c in text[start:end])
                or super().is_public(text, start, end))


_STREET_EN = (
    r"street|st|avenue|ave|road|rd|drive|dr|crescent|cres|court|ct|boulevard|blvd|lane|ln"
    r"|crt|way|place|pl|circle|trail|trl|terrace|highway|hwy|concession|sideroad"
)
# Ontario's concession lines and fire routes ("1001 2nd Line", "340 Fire Route 12A"),
# never "the 5 minute line" or "a new route"
_CONCESSION = (
    r"(?:[0-9]{1,2}(?:st|nd|rd|th)|first|second|third|fourth|fifth|sixth|seventh|eighth"
    r"|ninth|tenth) line|(?:fire|county|regional) route"
)
_STREET_FR = (
    r"rue|avenue|av|boulevard|boul|bd|chemin|ch|route|rang|place|croissant|promenade|allee"
    r"|montee|cote|impasse"
)
# house numbers: "3301-B", "12a"; and in words from ten to ninety-nine ("fourteen Old
# Mill Road"; not "one": "one more drive" is no address)
_UNITS = r"one|two|three|four|five|six|seven|eight|nine"
_HOUSE_WORDS = (
    rf"(?:ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen"
    rf"|(?:twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)(?:[\s\-](?:{_UNITS}))?"
    rf"|(?:vingt|trente|quarante|cinquante|soixante)"
    rf"(?:[\s\-](?:et[\s\-])?(?:un|deux|trois|quatre|cinq|six|sept|huit|neuf))?"
    rf"|dix|onze|douze|treize|quatorze|quinze|seize)"
)
_HOUSE = rf"(?:[0-9]{{1,5}}(?:-?[a-z])?|{_HOUSE_WORDS})"
# Endings of street names ("cedarvale", "ridgeview", "carlton") and words that end
# two-word ones ("spruce hill"): with a house number before them, a street
_STREET_ENDINGS = (
    r"view|wood|woods|brook|vale|dale|crest|ridge|grove|haven|glen|meadows?|bury|ford|hurst"
    r"|croft|wick|worth|mere|moor|shire|ton|field|stone|hill|way"
)
_STREET_WORDS = r"hill|view|ridge|grove|glen|woods|meadows|heights|gardens"
_RANKING = patterns.program(r"^[0-9]{1,2}(?:e|er|re|eme|ieme|nd|rd|th)\s+place\b")
_NOT_STREETS = frozenset((
    "anyway", "halfway", "hallway", "doorway", "subway", "runway", "midway", "railway",
    "badminton", "cotton", "button", "carton", "skeleton", "outfield", "midfield", "infield",
    "battlefield", "downhill", "uphill", "firewood", "hollywood", "plywood", "driftwood",
    "milestone", "gemstone", "keystone", "headstone", "limestone", "overview", "preview",
    "review", "interview", "rewrite", "kingdom", "minecraft", "freedom", "wisdom",
    # "number 7 on the team", "numéro 12 sur la liste": no street after "on"
    "the", "his", "her", "their", "our", "your", "my", "les", "son", "ses", "mon", "mes",
    "notre", "votre", "leur", "monday", "tuesday", "wednesday", "thursday", "friday",
    "saturday", "sunday", "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi",
    "dimanche", "team", "roster", "list", "liste", "jersey", "chandail", "waitlist",
))
# A business, venue or public building named just before an address: its address is
# public ("thanks to Luigi's Pizzeria at 45 Main St", "Centre communautaire, 1055 rue
# Laurier"), unless the words around say someone lives there
_BUSINESS_BEFORE = patterns.program(
    r"\b(?:pizzeria|pizza|restaurant|cafe|clinic|clinique|hardware|sportsplex|arena|centre"
    r"|center|theatre|caisse|inc|ltd|store|magasin|pharmacy|pharmacie|library|bibliotheque"
    r"|church|eglise|legion|hall|salle|community|communautaire|plaza|mall|hotel|dentist"
    r"|dental|ymca|bank|banque|museum|musee|studio|dealership|bakery|boulangerie"
    r"|depanneur|gymnase|gym|ecole|school|bureaux|offices)\b"
)
_HOME_WORDS = patterns.program(
    r"\b(?:live|lives|living|house|place|apartment|apt|maison|habite|habitons|reste"
    r"|restons|chez (?:nous|moi|eux|elle|lui|sa|son|ses|ma|mon|mes)|our|my|mon|ma|notre"
    r"|grandma'?s?|grandpa'?s?|grand-mere|grand-pere|aunt'?s?|tante)\b"
)
_BUSINESS_CONTEXT = 30
_ADDRESS = (
    rf"\b{_HOUSE},?\s+(?:(?:[a-z][a-z'.\-]*|[0-9]{{1,2}}(?:st|nd|rd|th))\s+){{1,3}}"
    rf"(?:{_STREET_EN})\b\.?"
    rf"|\b{_HOUSE},?\s+(?:{_CONCESSION})\b"
    # the number named as such: "civic number 2281", "townhouse 22", "number 12 on birch",
    # "birch cres, number 12", "maplewood drive. number 87", "rue laurier, numéro 221",
    # "the last house on fernhill, #19", "lot 14, concession 6"
    r"|\b(?:civic|house|door)\s+(?:number|no\.?|#)\s*[0-9]{1,5}\b"
    r"|\btownhouse\s*#?\s*[0-9]{1,4}\b|\bmaisons? de ville\b[^.!?\n]{0,30}\bunite\s*[0-9]{1,4}\b"
    r"|\b(?:number|numero|no\.)\s*[0-9]{1,5}\s+(?:on|sur)\s+[a-z]{3,}"
    rf"|\b(?:{_STREET_EN}|{_STREET_FR})\b\.?,?\s+(?:number|numero|no\.?|#)\s*[0-9]{{1,5}}\b"
    rf"|\b(?:{_STREET_FR})\s+[a-z'\-]{{3,}}(?:\s[a-z'\-]+)?,\s*(?:numero|no\.?|#)\s*[0-9]{{1,5}}\b"
    r"|\b(?:house|maison)\s+(?:on|sur)\s+[a-z'\-]{3,},?\s*#\s*[0-9]{1,5}\b"
    r"|\blot\s+[0-9]{1,3},?\s+(?:concession|con\.?|conc\.?)\s+[0-9]{1,2}\b"
    rf"|\b{_HOUSE},?\s+(?:{_STREET_FR})\.?\s+[a-z'\-]+"
    rf"|\b[0-9]{{1,5}}(?:-?[a-z])?,\s+[0-9]{{1,2}}e\s+(?:{_STREET_FR})\b"
    # "the corner of Elm and 3rd Ave", "au coin de King pis Notre-Dame"
    rf"|\bcorner of [a-z0-9'\-]+(?:\s[a-z]+)?\s(?:and|&)\s[a-z0-9'\-]+\s(?:{_STREET_EN})\b"
    r"|\b(?:apt|apartment|unit|app|appartement|suite)\.?\s*#?\s*[0-9]{1,4}\b"
    r"|\b(?:p\.?o\.?\s*box|c\.?p\.?|case postale|rr|r\.r\.)\s*#?\s*[0-9]{1,5}\b"
    # a house number and a street name without "street": "moved to 3 birch hollow",
    # "my house 316 fox run", "ur address is 12 hickory", "habite au 312"
    r"|\b(?:address(?:\s+is)?|adresse(?:\s+c'?est|\s+est)?|habite\s+au|reste\s+au)"
    r"\s+[0-9]{1,5}[a-z]?,?\s+[a-z][a-z'\-]{2,}"
    r"|\b(?:lives?\s+at|living\s+at|moved\s+to|drops?\s+(?:\w+\s+)?(?:off\s+)?at"
    r"|(?:my|his|her|their|our|ur|your|'s)\s+(?:house|place|home)(?:\s+at)?)"
    r"\s+[0-9]{1,5}[a-z]?,?\s+[a-z][a-z'\-]{2,}\s+[a-z][a-z'\-]{2,}"
    # where someone lives, named by a home word: "brought him home to 33 brookside",
    # "blocked my driveway at 211 elm", "la maison bleue au 305 dollard"
    r"|\b(?:home to|driveway at|(?:maison|chez (?:nous|moi|eux))[^.!?\n]{0,20}?\bau)"
    r"\s+[0-9]{1,5}[a-z]?,?\s+[a-z][a-z'\-]{2,}"
    # a house number and a street whose name sounds like one, after "at", "to", "on" or a
    # comma: "connor at 271 ridgeview", "lucy h, 14 willowbrook", "my place, 1 spruce hill"
    rf"|(?:\b(?:at|to|on|is)\s+|,\s*)[0-9]{{1,5}}[a-z]?\s+(?:[a-z]{{3,}}\s+(?:{_STREET_WORDS})"
    rf"|[a-z]{{2,}}(?:{_STREET_ENDINGS}))\b"
)


# Words of an address that say what kind of street it is, not which: a board's public
# address is recognised by its house number and the other words of its street's name
_STREET_TYPES = frozenset((
    "st", "street", "ave", "av", "avenue", "rd", "road", "dr", "drive", "cres", "crescent",
    "blvd", "boulevard", "boul", "bd", "ln", "lane", "ct", "crt", "court", "way", "pl",
    "place", "pkwy", "parkway", "hwy", "highway", "cir", "circle", "terr", "terrace",
    "trail", "sq", "square", "e", "w", "n", "s", "east", "west", "north", "south", "est",
    "ouest", "nord", "sud", "rue", "chemin", "ch", "route", "rang", "croissant",
    "promenade", "allee", "montee", "cote", "impasse", "de", "du", "des", "la", "le", "l",
    "the", "unit", "suite", "bureau",
))
_ADDRESS_WORDS = patterns.program(r"[a-z0-9]+")


def _house_and_street(text: str) -> tuple[str, list[str]] | None:
    """The first word holding a digit (its digits only) and the words after it."""
    words = [text[a:b] for a, b in patterns.spans(_ADDRESS_WORDS, text)]
    at = next((i for i, w in enumerate(words) if w[0].isdigit()), None)
    if at is None:
        return None
    return "".join(c for c in words[at] if c.isdigit()), words[at + 1:]


def public_address_key(address: str) -> tuple[str, frozenset[str]] | None:
    """(house number, street-name words) of an address, or None without both.

    "250 Riverside Dr." -> ("250", {"riverside"}); "6880, rue Drouin" -> ("6880",
    {"drouin"}): what a comment must repeat for its address to be the board's.
    """
    parts = _house_and_street(normalize(address).folded.text)
    if parts is None:
        return None
    number, after = parts
    names = frozenset(w for w in after if w not in _STREET_TYPES and not w[0].isdigit())
    return (number, names) if names else None


class StreetAddressDetector(_RegexDetector, name="street_address"):
    """Street addresses (123 Pine Street, 45 rue Principale, apt 4, PO Box 12)."""

    source = _ADDRESS
    public_before = _SCHOOL_PLACE
    score = 0.9
    lookalike_digits = True
    spaced_out = True

    def __init__(self, params: BaseModel, env: RuleEnv | None = None) -> None:
        super().__init__(params, env)
        keys = (public_address_key(a) for a in self.env.public_addresses)
        self._board_addresses = tuple(k for k in keys if k is not None)

    def _is_boards(self, hit: str) -> bool:
        """Whether the hit repeats one of the board's public addresses ([rules]
        public_addresses): its house number and a word of that street's name."""
        parts = _house_and_street(hit)
        if parts is None:
            return False
        number, after = parts
        return any(number == n and not street.isdisjoint(after)
                   for n, street in self._board_addresses)

    def is_public(self, text: str, start: int, end: int) -> bool:
        # "on 4 badminton courts", "2e place au tournoi": words that only look like streets
        hit = text[start:end]
        if self._board_addresses and self._is_boards(hit):
            return True
        words = hit.split()
        if not words or words[-1].strip(".,") in _NOT_STREETS or patterns.found(_RANKING, hit):
            return True
        if start >= 2 and text[start - 1] == ":" and text[start - 2].isdigit():
            return True  # the minutes of a time: "8:05 is way too early"
        before = text[max(0, start - _BUSINESS_CONTEXT) : start]
        if patterns.found(_BUSINESS_BEFORE, before) and not patterns.found(
                _HOME_WORDS, text[max(0, start - _CONTEXT) : end]):
            return True
        return super().is_public(text, start, end)


_OEN = r"(?:^|[^0-9\-])([0-9]{3}[ \-][0-9]{3}[ \-][0-9]{3}|[0-9]{9})(?:[^0-9\-]|$)"
# A school's own student or permanent-code number, named as such: "student #48120",
# "my student number is 3048812", "numéro d'élève 2045871", "no élève 7781234",
# Quebec's permanent code (four letters, eight digits).  Bare five-digit numbers are
# everywhere (scores, prices), so the words around them are what makes them identifiers.
_SCHOOL_ID = (
    r"\b(?:student|stu\.?|id|health|ohip)\s*(?:number|no\.?|num|id|#|card(?:\s*number)?)"
    r"(?:[^0-9\n]{0,25})\b([a-z]?/?[0-9][0-9\-/ ]{3,11}[0-9])\b"
    # the OEN named as such, its nine digits grouped any way: "oen 55 4321 098"
    r"|\b(?:oen|niso|ontario education number|ed number|education number"
    r"|numero d'immatriculation)\b[^0-9]{0,20}((?:[0-9][\s\-./]{0,3}){8}[0-9])\b"
    r"|\b(?:num(?:ero)?|no\.?|#|carte|fiche|dossier)\s*(?:d\W?\s*|de\s+|du\s+)?"
    r"(?:eleve|etudiant|etudiante|fiche|dossier)(?:[^0-9\n]{0,25})\b([0-9][0-9\- ]{3,11}[0-9])\b"
    r"|\b(?:matricule|code\s*perm(?:anent)?)(?:[^0-9\n]{0,25})\b([0-9][0-9\-]{3,11}[0-9]|[a-z]{4}\s?[0-9]{4}\s?[0-9]{4})\b"
    r"|\b([a-z]{4}[0-9]{8})\b"
)


_OEN_WORDS = (
    r"\b(?:oen|niso|ontario education number|numero d'immatriculation(?: scolaire)?"
    r"(?: de l'?\s*ontario)?)\b[^0-9\n]{0,20}?\b((?:(?:zero|oh|one|two|three|four|five|six"
    r"|seven|eight|nine|un|deux|trois|quatre|cinq|sept|huit|neuf)[\s,.\-]{1,3}){8}"
    r"(?:zero|oh|one|two|three|four|five|six|seven|eight|nine|un|deux|trois|quatre|cinq"
    r"|sept|huit|neuf))\b"
)


class StudentNumberDetector(Detector, name="student_number"):
    """Student identifiers: Ontario Education Numbers, and student or permanent-code numbers."""

    def __init__(self, params: BaseModel, env: RuleEnv | None = None) -> None:
        super().__init__(params, env)
        self._program = patterns.program(_OEN, capture=True)
        self._school_id = patterns.program(_SCHOOL_ID, capture=True)
        self._oen_words = patterns.program(_OEN_WORDS, capture=True)
        self._digit_token = patterns.program(readings.DIGIT_TOKEN)

    def prefilter(self) -> Prefilter:
        return Prefilter("folded", (_OEN, _SCHOOL_ID, _OEN_WORDS, readings.LOOKALIKE_HINT))

    def detect(self, ctx: Context) -> list[Match]:
        view = ctx.norm.folded
        # look-alike letters read as digits too: "oen is 3O4 l92 876" (same length)
        for text in _digit_readings(view.text):
            m = self._program.search(text)
            if m:
                return [ctx.match(view, m.start(1), m.end(1))]
            m = self._school_id.search(text)
            if m:
                group = next(g for g in range(1, len(m.groups()) + 1) if m.group(g))
                return [ctx.match(view, m.start(group), m.end(group))]
        return self._spelled_oen(ctx)

    def _spelled_oen(self, ctx: Context) -> list[Match]:
        """An OEN named as such and spelled out: "oen four five two, one one eight…"."""
        view = ctx.norm.folded
        for m in self._oen_words.finditer(view.text):
            run = view.text[m.start(1) : m.end(1)]
            tokens = [run[a:b] for a, b in patterns.spans(self._digit_token, run)]
            if len(readings.spelled_digits(tokens)) == 9:
                return [ctx.match(view, m.start(1), m.end(1))]
        return []


_MONTHS = (
    r"jan|january|feb|february|mar|march|apr|april|may|jun|june|jul|july|aug|august"
    r"|sep|sept|september|oct|october|nov|november|dec|december"
    r"|janv|janvier|fev|fevr|fevrier|mars|avr|avril|mai|juin|juil|juillet|aout"
    r"|septembre|octobre|novembre|decembre"
)
_MONTHS_SHORT = r"jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec"
_DATE = (
    r"[0-9]{1,2}[/.\-·][0-9]{1,2}[/.\-·](?:19|20)?[0-9]{2}"
    r"|[0-9]{1,2} [0-9]{1,2} (?:19|20)[0-9]{2}"
    rf"|(?:{_MONTHS_SHORT})\.?\s+[0-9]{{1,2}}(?:st|nd|rd|th)?,?\s*'[0-9]{{2}}"
    r"|(?:19|20)[0-9]{2}[/.\-][0-9]{1,2}[/.\-][0-9]{1,2}"
    rf"|(?:{_MONTHS})\.?\s+[0-9]{{1,2}}(?:st|nd|rd|th)?(?:,?\s*(?:19|20)[0-9]{{2}})?"
    rf"|[0-9]{{1,2}}(?:er|st|nd|rd|th)?\s+(?:{_MONTHS})\.?(?:,?\s*(?:19|20)[0-9]{{2}})?"
)
_BIRTH_WORDS = (
    r"born|dob|d\.o\.b\.?|date of birth|birth\s*date|birthday|bday|b-day|ddn"
    r"|nee?s?|date de naissance|anniversaire|fete|les [0-9]{1,2} ans de|sweet 16"
    r"|happy [0-9]{1,2}(?:st|nd|rd|th)\s+(?:b-?day|birthday|to)"
)
# a full date whose year is a pupil's birth year (2005-2023)
_BIRTH_YEAR_DATE = (
    rf"(?:(?:(?:{_MONTHS})\.?\s+[0-9]{{1,2}}(?:st|nd|rd|th)?|[0-9]{{1,2}}(?:er|st|nd|rd|th)?\s+"
    rf"(?:{_MONTHS})\.?),?\s*20(?:0[5-9]|1[0-9]|2[0-3])"
    r"|[0-9]{1,2}[/.\-][0-9]{1,2}[/.\-]20(?:0[5-9]|1[0-9]|2[0-3])"
    r"|20(?:0[5-9]|1[0-9]|2[0-3])-[0-9]{2}-[0-9]{2})"
)
_BIRTH = (
    rf"\bb\.\s*(?:{_DATE})"  # "b. Jan 30 '10"
    rf"|\b(?:{_BIRTH_WORDS}|turn(?:s|ed)?\s+[0-9]{{1,2}}"
    r"|[0-9]{1,2}\s+ans\s+(?:aujourd\W?hui|le))\b"
    rf"[^.!?\n]{{0,40}}?\b(?:{_DATE})"
    # with a birth year, the date may sit in the next sentence or before the word:
    # "ur birthday is the same as mine!! nov 3 2011", "nov 3 2011 is her birthday"
    rf"|\b(?:{_BIRTH_WORDS})\b[^\n]{{0,60}}?\b{_BIRTH_YEAR_DATE}\b"
    rf"|\b{_BIRTH_YEAR_DATE}\b[^\n]{{0,40}}?\b(?:{_BIRTH_WORDS})\b"
    # an age and the day it is reached: "she'll be 7 on the 22nd of october", "turns 9
    # next tuesday the 14th", "fête ses 9 ans mardi prochain le 14"
    rf"|\b(?:turns?|turning|'ll be|will be|fete ses|aura)\s+[0-9]{{1,2}}(?:\s+ans)?\s+(?:on\s+)?"
    rf"(?:(?:the\s+|le\s+)?[0-9]{{1,2}}(?:st|nd|rd|th|er)?\s+(?:of\s+)?(?:{_MONTHS})\b"
    # "he'll be 9 on the 22nd", "turning 13 on dec 2nd"
    rf"|the\s+[0-9]{{1,2}}(?:st|nd|rd|th)\b|(?:{_MONTHS})\.?\s+[0-9]{{1,2}}(?:st|nd|rd|th)?\b"
    r"|(?:next\s+|this\s+|ce\s+)?(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday"
    r"|lundi|mardi|mercredi|jeudi|vendredi|samedi|dimanche)(?:\s+prochain)?,?\s+(?:the\s+|le\s+)?"
    r"[0-9]{1,2}(?:st|nd|rd|th|er)?\b)"
    # "le 28 févr j'aurai 13 ans", "10 ans depuis le 6 décembre"
    rf"|\b(?:{_DATE})\b[^.!?\n]{{0,20}}?\b(?:j'?\s?aurai|il aura|elle aura)\s+[0-9]{{1,2}}\s+ans\b"
    rf"|\b[0-9]{{1,2}} ans depuis le [0-9]{{1,2}}(?:er)?\s+(?:{_MONTHS})\b"
    # a full numeric date in a current pupil's birth years (2007-2021) needs no birthday
    # word: school events of those years are rarely given as "2010-03-14" or "14/03/2010"
    r"|\b20(?:0[7-9]|1[0-9]|2[01])-[01][0-9]-[0-3][0-9]\b"
    r"|\b[0-3]?[0-9][/.][01]?[0-9][/.]20(?:0[7-9]|1[0-9]|2[01])\b"
    # the year in words: "born on the twenty-first of january two thousand fourteen"
    rf"|\b(?:born|nee?s?)\b[^.!?\n]{{0,40}}?\b(?:{_MONTHS})\b[^.!?\n]{{0,12}}?"
    r"\b(?:two thousand|deux mille)\b"
)


class BirthdateDetector(_RegexDetector, name="birthdate"):
    """A date of birth: a date within a few words of born/DOB/birthday/né le/date de naissance."""

    source = _BIRTH
    lookalike_digits = True


class PhoneParams(Params):
    region: str = Field(default="CA", pattern=r"^[A-Z]{2}$")


_PHONE_HINT = (
    r"[0-9](?:[\s().\-+*/_•·~^|:\\]{0,3}[0-9]){6}"
    # with look-alike letters inside ("4l6-sss-ol23"), but digits at both ends
    r"|[0-9](?:[\s().\-+*/_•·~^|:\\]{0,3}[0-9olisbz]){5,}[\s().\-+*/_•·~^|:\\]{0,3}[0-9]"
)
# "416/555/0128", "705*555*0141": separators the matcher does not know, made dashes
# (same length, so spans still map back to the original)
_PHONE_SEPARATORS = str.maketrans("*/_•·", "-----")


# Youth and family helplines posted by schools and students alike: public numbers, never
# a person's personal information (the board adds its own in [rules] public_phone_numbers)
HELPLINES = (
    "1-800-668-6868", "686868",  # Kids Help Phone / Jeunesse, J'écoute
    "988", "211", "911", "811",
    "1-800-263-2266", "514-600-1002",  # Tel-jeunes (call, text)
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


# Digits spelled out to get past a platform's filter (`readings.spelled_digits`)
_SPELLED = (rf"\b(?:(?:{readings.SPELLED_TOKEN})(?:[\s,.\-]|\bet\b){{0,4}}){{6,}}"
            rf"(?:{readings.SPELLED_TOKEN})\b")
# A number that is clearly given as a phone number though it has a digit too many or
# too few ("my number's 416-555-01123", "tel maison : 613-555-01466")
_NAMED_NUMBER = (
    r"\b(?:number'?s?|num|cell|phone|call|text|txt|tel|ph|mobile|reach me|numero|appelle[rz]?)"
    r"\b[^0-9\n]{0,20}([0-9]{3}[\s.\-]?[0-9]{2,4}[\s.\-]?[0-9]{3,5})\b"
)
# Numbers from abroad that the CA matcher rejects: "+44 7700 900318", "0020 100 555 0134"
# (international prefix), "07700 900 318" (a national number with a trunk 0)
_INTERNATIONAL = r"(?:\+|\b00)[1-9](?:[\s.\-]?[0-9]){7,13}\b|\b0[1-9](?:[\s.\-]?[0-9]){8,10}\b"
# An office line posted for families is public: toll-free numbers, fax numbers and the
# school's own office, reception or secretariat.  Not "school" alone ("call me after
# school at …" is a parent's own number), nor an extension (a parent's work line).
_PUBLIC_BEFORE = (
    r"\b(?:fax|telecopieur|(?:school|school's|the|front|main) office|office number"
    r"|school(?:'s)? (?:number|phone|line|voicemail)|numero de l'?ecole|joindre l'?ecole"
    r"|reception|secretariat"
    r"|switchboard|consortium|service de garde|(?:call|phone) the school|appelez l'?ecole)\b"
)
# ...unless the writer gives the number as their own just before it: "can someone from
# the office call me back asap 416-555-0137", "if the office needs me, my work line is"
_OWN_BEFORE = (
    r"\b(?:call me|text me|reach me|call me back|my (?:cell|number|phone|work line|line|work"
    r" number)|rappelez-moi|appelez-moi|mon (?:cell|numero|telephone))\b[^0-9\n]{0,25}$"
)
# A number given in pieces: "416 555 oops my kid hit enter 0193", "first 3 are 905 then
# 555 then 0147", "les 3 premiers c'est 613, après c'est 555 pis à la fin 0176"; a phone
# word before it and a valid number in the region make it one
_SPLIT_NUMBER = (
    r"\b(?:number|num|cell|phone|call|text|txt|tel|reach me|numero|appelle[rz]?|textez"
    r"|first|premiers)\b[^\n]{0,20}?\b([0-9]{3})\b[^0-9\n]{1,30}\b([0-9]{3})\b"
    r"[^0-9\n]{1,30}\b([0-9]{4})\b"
)


# North American toll-free area codes (read off the digits: parsing the number again
# to ask phonenumbers for its type cost more than the rest of the detector)
_TOLL_FREE = frozenset(("800", "833", "844", "855", "866", "877", "888"))


class PhoneDetector(Detector, name="phone_number"):
    """Phone numbers: possible in the region (default CA), spelled out, or from abroad."""

    Params = PhoneParams

    def __init__(self, params: BaseModel, env: RuleEnv | None = None) -> None:
        super().__init__(params, env)
        self._public_numbers = frozenset(_national(n) for n in (*HELPLINES,
                                                         *self.env.public_phone_numbers))
        self._spelled = patterns.program(_SPELLED)
        self._token = patterns.program(readings.SPELLED_TOKEN)
        self._named_number = patterns.program(_NAMED_NUMBER, capture=True)
        self._split_number = patterns.program(_SPLIT_NUMBER, capture=True)
        self._international = patterns.program(_INTERNATIONAL)
        self._public_before = patterns.program(_PUBLIC_BEFORE)
        self._own_before = patterns.program(_OWN_BEFORE)

    def prefilter(self) -> Prefilter:
        return Prefilter("folded", (_PHONE_HINT, _SPELLED, _SPLIT_NUMBER))

    def _is_public(self, text: str, start: int, number: str) -> bool:
        national = _national(number)
        if national in self._public_numbers or (len(national) == 10
                                                and national[:3] in _TOLL_FREE):
            return True
        if patterns.found(self._own_before, text[max(0, start - 50) : start]):
            return False
        return _said_public(self._public_before, text, start, start)

    @property
    def _region(self) -> str:
        assert isinstance(self.params, PhoneParams)
        return self.params.region

    def detect(self, ctx: Context) -> list[Match]:
        view = ctx.norm.folded
        # the matcher is slow; a phone is never that far in
        text = readings.digitized(view.text[: readings.SECOND_READING_CHARS])
        text = readings.digit_separators(text.translate(_PHONE_SEPARATORS))
        for m in phonenumbers.PhoneNumberMatcher(
            text, self._region, leniency=phonenumbers.Leniency.POSSIBLE, max_tries=50
        ):
            digits = sum(c.isdigit() for c in m.raw_string)
            if self._is_public(text, m.start, m.raw_string):
                continue
            if digits >= 10 or (digits == 7 and "-" in m.raw_string):
                return [ctx.match(view, m.start, m.end)]
        return (self._spelled_out(ctx, text) or self._from_abroad(ctx, text)
                or self._named(ctx, text) or self._in_pieces(ctx, text))

    def _in_pieces(self, ctx: Context, text: str) -> list[Match]:
        for m in self._split_number.finditer(text):
            number = m.group(1) + m.group(2) + m.group(3)
            try:
                valid = phonenumbers.is_valid_number(phonenumbers.parse(number, self._region))
            except phonenumbers.NumberParseException:
                continue
            if valid and not self._is_public(text, m.start(1), number):
                return [ctx.match(ctx.norm.folded, m.start(1), m.end(3), 0.8)]
        return []

    def _spelled_out(self, ctx: Context, text: str) -> list[Match]:
        for start, end in patterns.spans(self._spelled, text):
            run = text[start:end]
            tokens = [run[a:b] for a, b in patterns.spans(self._token, run)]
            if all(t.isdigit() for t in tokens):
                continue  # plain digits: the matcher above already judged them
            digits = readings.spelled_digits(tokens)
            if "123456" in digits or "987654" in digits:
                continue  # counting out loud ("one two three four…ten"), not a number
            number = digits[:11] if digits.startswith("1") else digits[:10]
            try:
                possible = phonenumbers.is_possible_number(phonenumbers.parse(number, self._region))
            except phonenumbers.NumberParseException:
                continue
            if possible and not self._is_public(text, start, number):
                return [ctx.match(ctx.norm.folded, start, end, 0.9)]
        return []

    def _named(self, ctx: Context, text: str) -> list[Match]:
        for m in self._named_number.finditer(text):
            digits = sum(c.isdigit() for c in m.group(1))
            if 9 <= digits <= 12 and not self._is_public(text, m.start(1), m.group(1)):
                return [ctx.match(ctx.norm.folded, m.start(1), m.end(1), 0.8)]
        return []

    def _from_abroad(self, ctx: Context, text: str) -> list[Match]:
        for start, end in patterns.spans(self._international, text):
            if not self._is_public(text, start, text[start:end]):
                return [ctx.match(ctx.norm.folded, start, end, 0.8)]
        return []
