"""Engine behaviour: evidence spans, one detection per rule, languages, batches, events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitor.model import (
    Audience,
    Author,
    Item,
    ItemKind,
    SettingsChange,
    Severity,
    Subject,
    SubjectKind,
)
from monitor.rules import RuleEngine, RulesSettings, patterns
from monitor.rules import programs as rule_programs
from monitor.rules.detectors import RuleEnv
from monitor.rules.pack import SHIPPED_PACKS, load_shipped_pack

ENGINE = RuleEngine.shipped()
T0 = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)


def subject(text: str, lang: str = "en", kind: SubjectKind = SubjectKind.COMMENT,
            author: str = "u1", at: datetime = T0, **kw: object) -> Subject:
    # each call is its own comment: the repetition window counts an item only once
    item = Item(platform="x", account_id="acc", kind=ItemKind(kind.value),
                external_id=f"{text[:20]}|{author}|{at.isoformat()}",
                author=Author(author), text=text, created_at=at) if kind.value in {
                    k.value for k in ItemKind} else None
    return Subject(kind=kind, account_id="acc", school_id="s", language=lang, text=text,
                   item=item, **kw)  # type: ignore[arg-type]


def ids(detections: list) -> set[str]:  # type: ignore[type-arg]
    return {d.rule_id for d in detections}


def test_evidence_is_a_span_of_the_original_text() -> None:
    text = "ok so... I want to k\u200bi\u200bll mysеlf (cyrillic e) tonight"
    (d,) = [d for d in ENGINE.evaluate(subject(text)) if d.rule_id == "crisis.self-harm.en"]
    assert d.evidence(text) == "k\u200bi\u200bll mysеlf"
    assert d.section == "9.0" and d.severity is Severity.URGENT and d.detector == "phrases"


def test_evidence_of_accented_french_and_phone() -> None:
    text = "Écoute: j’veux MOURIR… appelle le ７０５-５５５-０１４３"
    found = {d.rule_id: d.evidence(text) for d in ENGINE.evaluate(subject(text, "fr"))}
    assert found["crisis.self-harm.fr"] == "j’veux MOURIR"
    assert found["privacy.phone"] == "７０５-５５５-０１４３"


def test_same_rule_fires_once_per_subject() -> None:
    text = "i want to die. i want to die. kill myself. 705-555-0143 and 705-555-0199"
    found = [d.rule_id for d in ENGINE.evaluate(subject(text))]
    assert len(found) == len(set(found))
    assert {"crisis.self-harm.en", "privacy.phone"} <= set(found)


def test_idiom_elsewhere_does_not_hide_a_disclosure() -> None:
    text = "this homework is killing me and honestly i want to end my life"
    assert "crisis.self-harm.en" in ids(ENGINE.evaluate(subject(text)))


def test_crisis_is_not_reported_as_bad_language() -> None:
    found = ids(ENGINE.evaluate(subject("I want to kill myself")))
    assert "crisis.self-harm.en" in found
    assert "language.profanity.en" not in found


def test_crisis_rules_apply_across_languages() -> None:
    assert "crisis.self-harm.en" in ids(ENGINE.evaluate(subject("i want to kill myself", "fr")))
    assert "crisis.self-harm.fr" in ids(ENGINE.evaluate(subject("je veux mourir", "en")))
    # but word lists stay with their language ("con" or "bite" are English words too)
    assert "language.profanity.fr" not in ids(ENGINE.evaluate(subject("c'est de la merde", "en")))


def test_batch_equals_single() -> None:
    texts = ["great concert", "this is fucking stupid", "je veux mourir", "", "call 705-555-0143"]
    subjects = [subject(t, "fr" if "veux" in t else "en") for t in texts]
    engine = RuleEngine.shipped()
    batch = engine.evaluate_batch(subjects)
    single = [RuleEngine.shipped().evaluate(s) for s in subjects]
    assert [ids(b) for b in batch] == [ids(s) for s in single]
    assert engine.evaluate_batch([]) == []


def test_tags_settings_registry_health_hours_tone() -> None:
    tag = ENGINE.evaluate(subject("look at us @grade5", kind=SubjectKind.TAG))
    assert "tag.review" in ids(tag)
    change = (SettingsChange("audience", "private", "public"),)
    more_public = ENGINE.evaluate(subject(
        "audience: private -> public", kind=SubjectKind.SETTINGS_CHANGE, changes=change,
        audience_before=Audience.PRIVATE, audience_after=Audience.PUBLIC))
    by_id = {d.rule_id: d for d in more_public}
    assert by_id["privacy.more-public"].severity is Severity.URGENT
    assert by_id["privacy.more-public"].notify_owner_now
    assert by_id["privacy.settings-changed"].severity is Severity.DIGEST
    registry = ENGINE.evaluate(subject("Sam holds admin", kind=SubjectKind.REGISTRY,
                                       event={"reason": "not registered staff"}))
    assert ids(registry) == {"registry.non-staff-role"}
    health = ENGINE.evaluate(subject("token expired", kind=SubjectKind.ACCOUNT_HEALTH))
    assert ids(health) == {"health.not-monitored"}
    late = ENGINE.evaluate(subject("Forms due Friday", kind=SubjectKind.OWN_POST,
                                   within_office_hours=False))
    assert "hours.outside-office-hours" in ids(late)
    unset = ENGINE.evaluate(subject("Forms due Friday", kind=SubjectKind.OWN_POST))
    assert "hours.outside-office-hours" not in ids(unset)
    tone = ENGINE.evaluate(subject("Some parents are so lazy, this is ridiculous.",
                                   kind=SubjectKind.OWN_POST))
    assert "tone.own-post.en" in ids(tone)


def test_outside_links_respect_the_allowlist() -> None:
    engine = RuleEngine.from_settings(RulesSettings(allowed_domains=["dsb1.edu.on.ca"]),
                                      base_dir=__import__("pathlib").Path("."))
    ok = "forms at https://www.dsb1.edu.on.ca/forms and school.dsb1.edu.on.ca"
    assert "spam.outside-link" not in ids(engine.evaluate(subject(ok)))
    bad = "forms at https://dsb1-forms.example.xyz/login"
    found = [d for d in engine.evaluate(subject(bad)) if d.rule_id == "spam.outside-link"]
    assert found and found[0].evidence(bad) == "dsb1-forms.example.xyz"


def test_repeated_comment_and_burst_grouping() -> None:
    engine = RuleEngine.shipped()
    spam = "WIN a free iPhone, click the link in my bio!!"
    results = [engine.evaluate(subject(spam, at=T0 + timedelta(seconds=i)))
               for i in range(5)]
    scam = [i for i, r in enumerate(results) if "spam.scam.en" in ids(r)]
    assert scam == [0]  # the burst is grouped: only its first comment is reported
    repeated = [i for i, r in enumerate(results) if "spam.repeated" in ids(r)]
    assert repeated == [1]
    later = engine.evaluate(subject(spam, at=T0 + timedelta(hours=3)))
    assert "spam.scam.en" in ids(later)  # a new burst after the window
    other = engine.evaluate(subject(spam, author="u2", at=T0 + timedelta(seconds=9)))
    assert "spam.scam.en" in ids(other)


def test_congrats_from_many_parents_is_not_spam() -> None:
    engine = RuleEngine.shipped()
    for n in range(10):
        assert "spam.repeated" not in ids(engine.evaluate(subject("Congrats!!", author=f"p{n}")))


def test_repeat_window_is_bounded() -> None:
    from monitor.rules.recent import RecentWindow

    window = RecentWindow(window_seconds=60, capacity=100)
    for i in range(1000):
        window.observe(f"k{i}", "a", at=float(i))
    assert len(window) <= 100


def test_broken_detector_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = RuleEngine.shipped()
    target = next(c for c in engine.rules if c.rule.id == "privacy.email")

    def boom(ctx: object) -> list[object]:
        raise RuntimeError("bug")

    monkeypatch.setattr(target.detector, "detect", boom)
    found = ids(engine.evaluate(subject("mail a@b.com, i want to kill myself")))
    assert "crisis.self-harm.en" in found and "privacy.email" not in found


def test_env_is_shared_by_detectors() -> None:
    env = RuleEnv(allowed_domains=("example.org",))
    engine = RuleEngine([load_shipped_pack(n) for n in SHIPPED_PACKS], env=env)
    assert "spam.outside-link" not in ids(engine.evaluate(subject("see example.org/x")))


def test_a_second_stage_rule_is_dropped_where_the_first_stage_reported() -> None:
    from monitor.rules.pack import parse_pack

    pack = parse_pack("""
pack: board
rules:
  - id: first.stage
    section: "9.0"
    category: crisis
    severity: urgent
    applies_to: [comment]
    detector: {type: phrases, params: {patterns: ['\\bbridge tonight\\b']}}
    message: m
    action: a
  - id: second.stage
    section: "9.0"
    category: crisis
    severity: urgent
    applies_to: [comment]
    suppressed_by: [crisis]
    detector: {type: phrases, params: {patterns: ['\\bbridge\\b']}}
    message: m
    action: a
""", "board.yaml")
    engine = RuleEngine([pack])
    assert ids(engine.evaluate(subject("going to the bridge tonight"))) == {"first.stage"}
    assert ids(engine.evaluate(subject("the bridge was closed"))) == {"second.stage"}


def test_profanity_model_gives_the_library_s_own_probabilities() -> None:
    # the engine computes alt-profanity-check's model with numpy (LinearProfanityModel);
    # on every corpus and training line, and on edge texts, it must agree with the library
    import json
    from pathlib import Path

    from profanity_check import predict_prob
    from profanity_check import profanity_check as library

    from monitor.rules.profanity import LinearProfanityModel, classify

    root = Path(__file__).resolve().parent.parent
    texts = ["have a great day", "this is fucking stupid", "you absolute idiot", "merci", "",
             "!!!", "the the the", "FUCK fuck Fuck", "École ÉCOLE", "POLICYWATCHNEXTTEXT",
             "a\nb\n\nshit", "😂 bitch 😂"]
    for name in ("tests/corpus/en.jsonl", "tests/corpus/fr.jsonl",
                 "monitor/rules/data/text_model_train.jsonl"):
        lines = (root / name).read_text(encoding="utf-8").splitlines()
        texts += [json.loads(line)["text"] for line in lines if line.strip()]
    assert LinearProfanityModel.from_library(library.vectorizer, library.model) is not None
    got = classify(texts)
    want = [float(p) for p in predict_prob(texts)]
    assert len(got) == len(want)
    assert max(abs(a - b) for a, b in zip(got, want, strict=True)) < 1e-12


def test_public_numbers_and_board_addresses_are_not_personal_information(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = RulesSettings(public_phone_numbers=["613-744-5713"],
                             allowed_domains=["cepeo.on.ca"])
    engine = RuleEngine.from_settings(settings, base_dir=tmp_path)

    def personal(text: str) -> set[str]:
        return {d.rule_id for d in engine.evaluate(subject(text))
                if d.category == "personal_information"}

    assert personal("call the office at 613 744 5713 before 8:30") == set()
    assert personal("kids help phone 1-800-668-6868 or text 686868") == set()
    assert personal("questions? write to mme.gagnon@cepeo.on.ca") == set()
    assert personal("call me at 613-555-0199 tonight") == {"privacy.phone"}
    assert personal("write to jamie.lee@gmail.com") == {"privacy.email"}
    with pytest.raises(ValueError, match="not a phone number"):
        RulesSettings(public_phone_numbers=["the office"])


def _personal(text: str, lang: str = "en") -> dict[str, str]:
    """Personal-information rule id -> evidence, as the shipped packs see `text`."""
    return {d.rule_id: d.evidence(text) for d in ENGINE.evaluate(subject(text, lang))
            if d.category == "personal_information"}


@pytest.mark.parametrize("text", [
    "one two three four five six seven eight nine ten, count with us!",
    "the office number is 905-555-0100 ext 0 not 0101",
    "the transportation consortium is at 1-877-555-0100 if a bus is late",
    "the school's fax is 905 555 0102",
    "texto 514 600-1002 c'est tel-jeunes",
])
def test_counting_office_lines_and_toll_free_numbers_are_not_personal(text: str) -> None:
    assert "privacy.phone" not in _personal(text)


@pytest.mark.parametrize("text", [
    "we play on 4 badminton courts at 3",
    "the school address is 150 main st w for the gps",
    "L'école est au 1800 rue Principale, stationnement derrière",
    "2e place au tournoi provincial, bravo les filles",
    "postal code for the school is L9T 4H7",
    "one more drive for the food bank this friday",
    "a 3 way tie for first place",
    "the 5 minute line at the canteen was long",
])
def test_public_places_are_not_addresses(text: str) -> None:
    assert not {"privacy.street-address", "privacy.postal-code"} & set(_personal(text))


def test_spaced_and_role_emails() -> None:
    assert "privacy.email" in _personal("c h l o e 2 0 1 1 at hotmail, my email")
    assert "privacy.email" not in _personal("email principal.office@lakeside-ps.ca instead")
    assert "privacy.email" not in _personal("tryouts: athletics@northridge-ss.ca")
    assert "privacy.email" in _personal("email chloe.office.fan@gmail.com")  # not a role


def test_birthdate_with_a_pupils_birth_year_across_a_sentence() -> None:
    found = _personal("omg ur birthday is the same as mine!! nov 3 2011 we r twins")
    assert found["privacy.birthdate"].endswith("nov 3 2011")
    assert "privacy.birthdate" in _personal("nov 3 2011 is her birthday")
    assert "privacy.birthdate" not in _personal("the birthday party was great!! nov 3 1987")


def test_health_and_custody_of_a_child() -> None:
    assert "privacy.health.en" in _personal("ben in grade 2 has a severe peanut allergy")
    assert "privacy.health.en" not in _personal("pizza lunch is $4.50 a slice this year")
    custody = [d for d in ENGINE.evaluate(subject(
        "reminder lucas's father is NOT allowed to pick him up, there is a court order"))
        if d.rule_id == "privacy.custody.en"]
    assert custody and custody[0].severity is Severity.URGENT


@pytest.mark.parametrize(("text", "rule", "evidence"), [
    ("my cell 519 five five five 0164, thanks", "privacy.phone",
     "519 five five five 0164"),
    ("call nine oh five five five five oh one six two", "privacy.phone",
     "nine oh five five five five oh one six two"),
    ("my num is 647 five5five 0102 lol", "privacy.phone",
     "647 five5five 0102"),
    ("appelle au six un trois, cinq cinq cinq, zéro un quatre deux", "privacy.phone",
     "six un trois, cinq cinq cinq, zéro un quatre deux"),
    ("07700 900 318 is my uk mobile", "privacy.phone",
     "07700 900 318"),
    ("his cell is 0020 100 555 0134 from egypt", "privacy.phone",
     "0020 100 555 0134"),
    ("lost dog, pls call 7O5 555 O189", "privacy.phone",
     "7O5 555 O189"),
    ("ya it's 905•555•0186", "privacy.phone",
     "905•555•0186"),
    ("message me, four-one-six, triple five, oh-one-six-four", "privacy.phone",
     "four-one-six, triple five, oh-one-six-four"),
    ("my number's 416-555-01123 text me", "privacy.phone",
     "416-555-01123"),
    ("connor at 271 ridgeview better watch out", "privacy.street-address",
     "at 271 ridgeview"),
    ("secret santa is lucy h, 14 willowbrook, she likes cats", "privacy.street-address",
     ", 14 willowbrook"),
    ("she walks home to 240 cedarvale alone", "privacy.street-address",
     "home to 240 cedarvale"),
    ("come get it at my place, 1 spruce hill", "privacy.street-address",
     ", 1 spruce hill"),
    ("carpool pickup is 3301-B Lakeshore Blvd W at 7:15", "privacy.street-address",
     "3301-B Lakeshore Blvd"),
    ("we're at fourteen Old Mill Road now", "privacy.street-address",
     "fourteen Old Mill Road"),
    ("1001 2nd Line W, farmhouse at the end of the lane", "privacy.street-address",
     "1001 2nd Line"),
    ("the yellow house at the corner of Elm and 3rd Ave, that's us", "privacy.street-address",
     "corner of Elm and 3rd Ave"),
    ("the form keeps rejecting K2P.1L4", "privacy.postal-code", "K2P.1L4"),
    ("postal code M5V / 3L9, the new condo", "privacy.postal-code", "M5V / 3L9"),
    ("Its L 5 B 2 T 7 for the home postal code", "privacy.postal-code", "L 5 B 2 T 7"),
    ("oen 55 4321 098 i think??", "privacy.student-number", "55 4321 098"),
    ("my student ID is S0412587 and my card wont scan", "privacy.student-number", "S0412587"),
    ("b. Jan 30 '10, for the registration form", "privacy.birthdate", "b. Jan 30 '10"),
    ("questions → n.abernathy(@)bell.net", "privacy.email", "n.abernathy(@)bell.net"),
    ("mi correo es lucia.fernandez arroba gmail punto com", "privacy.email",
     "lucia.fernandez arroba gmail punto com"),
    ("thanks to whoever brought him home to 33 Brookside", "privacy.street-address",
     "home to 33 Brookside"),
    ("c'est la maison bleue au 305 Dollard, rentre par la porte de côté",
     "privacy.street-address", "maison bleue au 305 Dollard"),
    ("happy bday Priya, sweet 16 !!! 05/07/2009 the best day", "privacy.birthdate",
     "bday Priya, sweet 16 !!! 05/07/2009"),
    ("the lunch program needs his date of birth?? It's 2014-12-02", "privacy.birthdate",
     "date of birth?? It's 2014-12-02"),
    # pi_dev4: evasion variants (look-alike letters, odd separators, pieces, words)
    ("Text me at 4l6-SSS-Ol23 and I'll drop it off", "privacy.phone", "4l6-SSS-Ol23"),
    ("my number changed!! it's now 416^555^0186", "privacy.phone", "416^555^0186"),
    ("it's 613 + 555 + 0176, leave a message", "privacy.phone", "613 + 555 + 0176"),
    ("text me for the gift 647\n555\n0121", "privacy.phone", "647\n555\n0121"),
    ("First 3 are 905 then 555 then 0147, ask for Dana", "privacy.phone",
     "905 then 555 then 0147"),
    ("textez-moi au six cent treize, cinq cinq cinq, zéro cent quarante-deux svp",
     "privacy.phone", "six cent treize, cinq cinq cinq, zéro cent quarante-deux"),
    ("mom's cell: four one six, five fifty-five, oh one two four", "privacy.phone",
     "four one six, five fifty-five, oh one two four"),
    ("Emmett, DOB: o1/1o/2o17, grade 1", "privacy.birthdate", "DOB: o1/1o/2o17"),
    ("it's Maddie's bday, she'll be 7 on the 22nd of October", "privacy.birthdate",
     "'ll be 7 on the 22nd of October"),
    ("his OEN is 3O4 l92 876 if that helps", "privacy.student-number", "3O4 l92 876"),
    ("OEN four five two, one one eight, nine zero three — can you check", "privacy.student-number",
     "four five two, one one eight, nine zero three"),
    ("my postal code is M6Z OV3 for the jersey", "privacy.postal-code", "M6Z OV3"),
    ("ashley.m.rowe hotmail com — for the grad committee", "privacy.email",
     "ashley.m.rowe hotmail com"),
    ("my gmail is karen.lebl4nc so reach out there", "privacy.email", "gmail is karen.lebl4nc"),
    ("d a n n y p 1 2 at o u t l o o k dot com — Danny's dad", "privacy.email",
     "d a n n y p 1 2 at o u t l o o k dot com"),
    ("drop it at 4 0 2  W i l l o w  L a n e, thanks", "privacy.street-address",
     "drop it at 4 0 2  W i l l o w  L a n e"),
    ("the yellow house at number 12 on Birch, that's where Owen lives",
     "privacy.street-address", "number 12 on Birch"),
    ("We live on Maplewood Drive. Number 87, drop off the mittens", "privacy.street-address",
     "Drive. Number 87"),
    ("our farm is at Lot 14, Concession 6, just past the church", "privacy.street-address",
     "Lot 14, Concession 6"),
    ("on reste au quarante-deux, rue Lajoie, la maison brune", "privacy.street-address",
     "quarante-deux, rue Lajoie"),
    ("mon email c'est juste emile_2011 sur yahoo.ca", "privacy.email",
     "emile_2011 sur yahoo.ca"),
    ("le code de chez nous commence par K2C, après c 3P4", "privacy.postal-code",
     "K2C, après c 3P4"),
    ("inscription: Gabrielle Sauvé, 2010-03-14, groupe 302", "privacy.birthdate", "2010-03-14"),
])
def test_shapes_of_personal_information(text: str, rule: str, evidence: str) -> None:
    assert _personal(text)[rule] == evidence


@pytest.mark.parametrize("text", [
    "Thank you Luigi's Pizzeria at 45 Main St for sponsoring the carnival",
    "Merci à la Pizzeria Luigi au 45 rue Main pour les 30 pizzas",
    "School voicemail is 416-555-0110, press 1 for attendance",
    "he is number 7 on the team this year",
    "one two three four five six seven eight nine ten, count with us!",
    "class 4b and 2b go to the gym at 10:30, then 5b at 11:15",
    "Giveaway! tag 3 friends and follow @win.big.canada to enter",
    "the 2026-03-14 pi day bake sale starts at 3:14",
])
def test_look_alikes_of_the_fourth_round_are_not_personal(text: str) -> None:
    assert not {r for r in _personal(text) if r.startswith("privacy.")}


def test_a_business_address_is_still_personal_where_someone_lives_there() -> None:
    found = _personal("we live above the bakery, 12 Queen St, come by anytime")
    assert found["privacy.street-address"] == "12 Queen St"


def test_a_school_anniversary_is_not_a_birthdate() -> None:
    assert "privacy.birthdate" not in _personal("happy 10th anniversary! founded may 3 2014")


def test_a_second_engine_shares_the_first_ones_compiled_programs() -> None:
    # an RE2 program builds its automaton as it matches: a reload must not start cold,
    # so engines built from the same packs share the process's compiled programs
    first = RuleEngine.shipped()
    programs, sets = patterns.program.cache_info(), rule_programs.search_set.cache_info()
    second = RuleEngine.shipped()
    assert patterns.program.cache_info().misses == programs.misses
    assert patterns.program.cache_info().hits > programs.hits + 10
    assert rule_programs.search_set.cache_info().misses == sets.misses
    assert {id(getattr(c.detector, "_program", None)) for c in first.rules} == {
        id(getattr(c.detector, "_program", None)) for c in second.rules}


def test_the_boards_own_addresses_are_not_a_home(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = RulesSettings(public_addresses=["250 Riverside Dr.", "6880, rue Drouin"])
    engine = RuleEngine.from_settings(settings, base_dir=tmp_path)
    plain = RuleEngine.from_settings(RulesSettings(), base_dir=tmp_path)

    def personal(text: str, which: RuleEngine = engine) -> set[str]:
        return {d.rule_id for d in which.evaluate(subject(text))
                if d.category == "personal_information"}

    open_house = "Open House is Thursday from 6-8pm at 250 Riverside Dr. Everyone welcome!"
    assert personal(open_house, plain) == {"privacy.street-address"}
    assert personal(open_house) == set()
    assert personal("Portes ouvertes jeudi au 6880 rue Drouin, entrée principale") == set()
    # the same number on another street, or another number on the same street, is a home
    assert personal("party at 250 Birchmount Rd tonight") == {"privacy.street-address"}
    assert personal("party at 252 Riverside Dr tonight") == {"privacy.street-address"}
    with pytest.raises(ValueError, match="'the school' is not a street address"):
        RulesSettings(public_addresses=["the school"])
