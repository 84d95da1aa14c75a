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

import itertools
import re
from collections.abc import Iterator

import re2
from pydantic import BaseModel, Field, field_validator, model_validator

from monitor.rules import patterns
from monitor.rules.detectors import Context, Detector, Match, Params, Prefilter, RuleEnv
from monitor.rules.patterns import check_all
from monitor.rules.programs import options

# A run of capitalised words, or a title and a surname: "Kevin Albright", "Noor
# Al-Masri", "Declan O'Rourke", "Jasmine P.", "Mr. Lopes", "Ms Hoang".  \p{Lu}\p{Ll}
# takes accented names (Zoé Côté).  Case-sensitive: the capital letters are the signal.
_WORD = r"\p{Lu}(?:\p{Ll}+(?:['’-]\p{Lu}?\p{Ll}+)*|['’]\p{Lu}\p{Ll}+)"
_TITLE_WORDS = ("Mr", "Mrs", "Ms", "Miss", "Mx", "Dr", "Coach", "Mme", "Madame", "Monsieur",
                "Father", "Pastor", "Officer", "Principal", "Vice Principal", "VP", "Trustee",
                "Nurse")
_TITLE = "(?:" + "|".join(_TITLE_WORDS) + ")"
_NAME_RUN = (
    rf"\b{_TITLE}\.?\s+{_WORD}"
    rf"|\b{_WORD}(?:[ \t]+(?:{_WORD}|\p{{Lu}}\.\B))+"
)
# Other ways a comment points at one person: a personal handle (a dot, an underscore or
# digits: "@lily.chen.07", "@the_real_mia_k"; not "@BirchCreekPS"), a named child's
# relative ("Hailey's dad"), a relative's child by name ("my son Tyson", "our foster
# daughter Jasmine"), a family ("the Peterson kids"), a name with a homeroom
# ("Zainab from 7B") and given names in a list ("Liam, Sana and Oscar", "Carter & Eli")
_RELATIVES = (r"(?:dad|mom|mum|mother|father|parents|family|brother|sister|grandma|grandpa"
              r"|stepdad|stepmom|aunt|uncle)")
_CHILDREN = (r"(?:son|daughter|foster (?:daughter|son|kid|child)|stepson|stepdaughter|nephew"
             r"|niece|grandson|granddaughter|kid|child|little brother|little sister)")
_REFERENCE = (
    r"@[A-Za-z0-9]+(?:[._][A-Za-z0-9]+)+|@[A-Za-z]+[0-9]{2,}\b"
    rf"|\b\p{{Lu}}\p{{Ll}}+['’]s\s+{_RELATIVES}\b"
    rf"|\b(?:[Mm]y|[Oo]ur|[Hh]er|[Hh]is)\s+{_CHILDREN}\s+\p{{Lu}}\p{{Ll}}+"
    r"|\b[Tt]he\s+\p{Lu}\p{Ll}+\s+(?:kids|family|boys|girls|twins|children)\b"
    r"|\b\p{Lu}\p{Ll}+\s+(?:from|in)\s+(?:[0-9]{1,2}[A-Za-z]|(?:[Rr]m|[Rr]oom|[Gg]r|[Gg]rade)\.?\s?[0-9]{1,3})\b"
    r"|\b\p{Lu}\p{Ll}+(?:,\s*|\s+(?:and|&)\s+)\p{Lu}\p{Ll}+\b"
)
# Capitalised words that are not names: sentence openers, greetings, days and months,
# school, place and platform words (a rule's `not_names` adds its own)
NOT_NAMES = frozenset(w.casefold() for w in (
    "Help", "Phone", "Guidance", "Services", "Service", "Support", "Health", "Mental",
    "Wellness", "Program", "Programs", "Resources", "Youth", "Crisis", "Hotline",
    "The", "This", "That", "These", "Those", "There", "Their", "They", "Them", "Then", "Than",
    "My", "Our", "Your", "His", "Her", "Its", "We", "You", "He", "She", "It", "I", "A", "An",
    "And", "But", "Or", "So", "If", "When", "While", "What", "Who", "Why", "How", "Where",
    "Which", "Just", "Also", "Please", "Pls", "Thank", "Thanks", "Thankyou", "Congrats",
    "Congratulations", "Happy", "Hello", "Hi", "Hey", "Dear", "Good", "Great", "Big", "Huge",
    "Special", "Welcome", "Reminder", "Attention", "Update", "Important", "Note", "Fyi",
    "Heads", "Shoutout", "Shout", "Today", "Tonight", "Tomorrow", "Yesterday", "Monday",
    "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday", "January", "February",
    "March", "April", "May", "June", "July", "August", "September", "October", "November",
    "December", "Christmas", "Easter", "Halloween", "Thanksgiving", "Remembrance", "Canada",
    "Ontario", "Toronto", "Ottawa", "Grade", "Gr", "Room", "Rm", "Bus", "Route", "School",
    "Schools", "Public", "Secondary", "Catholic", "Elementary", "Middle", "High", "Collegiate",
    "Institute", "Academy", "Street", "St", "Road", "Rd", "Avenue", "Ave", "Drive", "Lane",
    "Crescent", "Cres", "Way", "Court", "Park", "Lake", "Lakeshore", "Valley", "Mount", "Hill",
    "Hills", "Centre", "Center", "Hospital", "Clinic", "Church", "Children", "Children's",
    "Aid", "Society", "Family", "Families", "Parents", "Parent", "Students", "Student",
    "Staff", "Teacher", "Teachers", "Principal", "Vice", "Office", "Library", "Gym",
    "Cafeteria", "Team", "Club", "Council", "Board", "District", "Trip", "Fair", "Concert",
    "Tournament", "Game", "Games", "Science", "Math", "French", "English", "Music", "Art",
    "Drama", "Band", "Choir", "History", "Geography", "Spring", "Fall", "Winter", "Summer",
    "Open", "House", "Night", "Day", "Week", "Month", "Year", "Lost", "Found", "Best",
    "Western", "Hot", "Lunch", "Book", "Books", "Fines", "Overdue", "Alert", "Alerts", "New",
    "Old", "North", "South", "East", "West", "Top", "First", "Last", "Next", "All", "Every",
    "Everyone", "Anyone", "Someone", "Nobody", "No", "Yes", "Not", "Is", "Are", "Was", "Were",
    "Will", "Can", "Could", "Would", "Should", "Did", "Do", "Does", "Has", "Have", "Had",
    "Let", "Lets", "Let's", "Omg", "Lol", "Lmao", "Ok", "Okay", "Wow", "Ugh", "Btw", "Tbh",
    "Ngl", "Fr", "Mom", "Dad", "Mum", "Grandma", "Grandpa", "Nana", "Papa", "Aunt", "Uncle",
    "Kids", "Boys", "Girls", "Junior", "Senior", "Varsity", "Terry", "Fox", "Tim", "Hortons",
    "Walmart", "Costco", "Google", "Classroom", "Instagram", "Facebook", "Tiktok", "Snapchat",
    "Snap", "Twitter", "Linkedin", "Whatsapp", "Tinder", "Cas", "Cmha", "Opp", "Police",
    "Ipad", "Iep", "Ossd", "Ece", "Ea", "Sk", "Jk", "Pa", "Pd", "Pe", "Ap", "Ib", "Esl", "Fsl",
    "Oen", "Ohip", "Ss", "Ps", "Ci", "Dsb", "Pto", "Pta", "Hs", "Ms", "Mr", "Mrs", "Dr",
    "Prof", "Coach", "Go", "Get", "Come", "See", "Check", "Tell", "Ask", "Call", "Text",
    "Send", "Bring", "Remember", "Don't", "Dont", "Can't", "Cant", "Isn't", "Im", "I'm", "Ive",
    "I've", "Ill", "I'll", "Guys", "Folks", "Everybody", "Bless", "God", "Jesus", "Lord",
    "Father", "Sister", "Brother", "Saint", "Lady", "Holy", "Cross", "Trinity", "Sacred",
    "Heart", "Mary", "Joseph", "Hwy", "Highway", "Line", "Concession", "Sideroad", "County",
    "Township", "Region", "City", "Town", "Village", "Chi", "Miigwech", "Buy", "Sale", "Free",
    "Win", "Official", "Giveaway", "Market", "Square", "Sq", "Assaulted", "Women's",
    "Helpline", "Nurse", "Former", "Cheap", "Discreet", "Fast", "Shipping", "Order", "Click",
    "Visit", "Apply", "Register", "Join", "Follow", "Like", "Share",
))


# a handle with one of these words is an office's, a team's or a school's, not a person's
_ORG_WORDS = frozenset(("school", "office", "nurse", "dept", "department", "board", "club",
                        "team", "library", "athletics", "guidance", "admin", "official",
                        "council", "ps", "ss", "ci", "hs", "dsb", "class", "room", "teacher",
                        "principal", "pta", "news", "info"))
_LIST = re.compile(r",|&|\sand\s")  # a reference that lists given names: each must be a name
# compiled once for every rule and engine that uses the detector (they hold no rule's data)
_NAMES = re2.compile(_NAME_RUN, options(case_sensitive=True))
_REFERENCES = re2.compile(_REFERENCE, options(case_sensitive=True))
# a title inside a run of capitalised words ("Thanks Mr", "Isn't Mr"): where the name starts
_INNER_TITLE = re.compile(rf"\s{_TITLE}\b")
_FRAMES = frozenset(("my", "our", "her", "his", "the"))  # words around a reference
_TITLES = frozenset(w.casefold() for title in _TITLE_WORDS for w in title.split())


def _tokens(run: str) -> list[str]:
    return [t.rstrip(".,") for t in run.split()]


class NamedPersonParams(Params):
    # RE2 patterns on the normalised text (lower case, accents folded): the private topics;
    # one of them must occur anywhere in the comment
    topics: list[str] = []
    # RE2 patterns (case-insensitive) that must start right after a full name in the text
    # as posted: what makes a name alone identify a pupil ("Marcus Adeyemi (Gr 12)")
    after: list[str] = []
    # capitalised words that are not names, besides NOT_NAMES (a board's own place names)
    not_names: list[str] = []
    # RE2 patterns on the normalised text: a topic word they overlap does not count ("terry
    # fox" for cancer, "no fines")
    exclude: list[str] = []
    score: float = Field(default=0.8, ge=0.0, le=1.0)

    _check = field_validator("topics", "after", "exclude")(check_all)

    @model_validator(mode="after")
    def _something_to_pair(self) -> NamedPersonParams:
        if not self.topics and not self.after:
            raise ValueError("give topics, after, or both: a name alone is not personal "
                             "information")
        return self


# how far after a name an `after` pattern may start: "Marcus Adeyemi (Gr 12)", "Jasmine
# Okoro, Gr 11"
_AFTER_GAP = 3


class NamedPersonDetector(Detector, name="named_person"):
    """A person named in full (First Last, First L., Mr. Last) with a private topic or a grade."""

    Params = NamedPersonParams

    def __init__(self, params: BaseModel, env: RuleEnv | None = None) -> None:
        super().__init__(params, env)
        assert isinstance(params, NamedPersonParams)
        self._params = params
        self._topics = patterns.compile_any(params.topics) if params.topics else None
        self._after = patterns.compile_any(params.after) if params.after else None
        self._exclude = patterns.compile_any(params.exclude) if params.exclude else None
        self._not_names = NOT_NAMES | {w.casefold() for w in params.not_names}

    def prefilter(self) -> Prefilter:
        # most comments hold no topic word: the engine's Set pass skips them.  `after`
        # alone reads the folded view, where "(8A)" keeps its digit ("8a" is not leet)
        if self._params.topics:
            return Prefilter("text", tuple(map(patterns.rewrite, self._params.topics)))
        return Prefilter("folded", tuple(map(patterns.rewrite, self._params.after)))

    def _name_spans(self, clean: str, *, titled: bool = True) -> Iterator[tuple[int, int]]:
        """Each run of capitalised words that is a person's name.

        A run is trimmed of words that are not names ("Congrats Marcus Hill" -> "Marcus
        Hill"); what is left must be two words or more, or a title and a surname (not
        with `titled=False`).
        """
        for start, end in patterns.spans(_NAMES, clean):
            folded = [w.casefold() for w in _tokens(clean[start:end])]
            inner = (_INNER_TITLE.search(clean, start, end)
                     if titled and folded[0] not in _TITLES else None)
            if inner is not None:
                # "Thanks Mr. Patel", "Isn't Mr. Patel's": a capitalised word before the
                # title took it into its run, and the surname after the title's dot was
                # left out; the name is the run that starts at the title
                at = inner.start() + 1
                found = next(patterns.spans(_NAMES, clean[at:]), None)
                if found is not None and found[0] == 0:
                    start, end = at, at + found[1]
                    folded = [w.casefold() for w in _tokens(clean[start:end])]
            if folded[0] in _TITLES:
                surname = [w for w in folded if w not in _TITLES]
                if titled and surname and surname[0] not in self._not_names:
                    yield start, end
                continue
            kept = [w for w in folded if w not in self._not_names and w not in _FRAMES]
            if len(kept) >= 2 and folded[-1] not in self._not_names:
                yield start, end

    def _reference_spans(self, clean: str) -> Iterator[tuple[int, int]]:
        """The other references to one person (`_REFERENCE`)."""
        for start, end in patterns.spans(_REFERENCES, clean):
            if clean[start] == "@":
                parts = re2.split(r"[._0-9]+", clean[start + 1:end].casefold())
                if not _ORG_WORDS.intersection(parts):
                    yield start, end
                continue
            # "the Monday kids", "Happy's family": the capitalised word must be a name
            words = [w.removesuffix("'s").removesuffix("’s").casefold()
                     for w in clean[start:end].split() if w[:1].isupper()]
            names = [w for w in words if w not in _FRAMES] or [""]
            if not _LIST.search(clean[start:end]):
                names = names[:1]  # the rest is a room or a relative: "Tyler in Rm 7"
            if not self._not_names.intersection(names):
                yield start, end

    def _followed(self, clean: str, end: int) -> bool:
        assert self._after is not None
        tail = clean[end:end + _AFTER_GAP + 40]
        return any(s <= _AFTER_GAP for s, _ in patterns.spans(self._after, tail))

    def detect(self, ctx: Context) -> list[Match]:
        if self._topics is not None and patterns.first_unexcluded(
                self._topics, self._exclude, ctx.norm.text.text) is None:
            return []
        text = ctx.subject.text or ""
        # lone surrogates cannot be encoded for RE2; "?" keeps every offset in place
        clean = text if text.isascii() else text.encode("utf-8", "replace").decode("utf-8")
        spans: Iterator[tuple[int, int]]
        if self._after is not None:
            # a pupil: not "Ms. Patel (Grade 3 teacher)"
            spans = (s for s in self._name_spans(clean, titled=False)
                     if self._followed(clean, s[1]))
        else:
            spans = itertools.chain(self._name_spans(clean), self._reference_spans(clean))
        span = next(spans, None)
        return [Match(self._params.score, *span)] if span else []
