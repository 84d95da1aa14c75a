"""Rendering digests and alerts: escaping, masking, links, inlined CSS, templates overrides."""

from __future__ import annotations

import dataclasses
import unicodedata
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2 import UndefinedError

from reports.render import (
    RenderedMessage,
    message_id_for,
    render_digest,
    render_urgent,
    section_title,
)
from reports.safety import excerpt, header_fragment, safe_link
from reports.views import (
    AccountDigest,
    AccountHealthView,
    DigestView,
    FindingView,
    SectionGroup,
    UrgentView,
)

EVIL_AUTHOR = "Mallory <script>alert('a')</script>\r\nBcc: evil@x \u202egnp.exe"
CRISIS_TEXT = (
    "I can't do this anymore <script>steal()</script> text me at 705-268-7443 "
    "or write to kid.name@example.com, I live near P3A 1B2"
)


def finding(**overrides: object) -> FindingView:
    base = FindingView(
        id=1,
        account_id="grade5-x",
        account_handle="@grade5class",
        platform="x",
        subject_kind="comment",
        section="9.0",
        category="crisis",
        severity="urgent",
        rule_id="duty-of-care.crisis",
        message="A student may be in crisis",
        action="Contact the student's principal right away.",
        text=CRISIS_TEXT,
        evidence_start=0,
        evidence_end=24,
        author=EVIL_AUTHOR,
        url="https://x.com/someone/status/123",
        created_at=datetime(2024, 5, 1, 17, 30, tzinfo=UTC),
    )
    return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]


def digest(language: str = "en") -> DigestView:
    crisis = finding()
    privacy = finding(
        id=2,
        section="5.0",
        severity="digest",
        subject_kind="reply",
        message="A reply shares personal information",
        action="Document the reply, then hide or delete it.",
        text="Call my mom at (613) 555-0199 tonight",
        evidence_start=15,
        evidence_end=29,
        author="Parent <b>bold</b>",
        url="https://evil.example/phish?u=x.com",
    )
    return DigestView(
        recipient="teacher@school.example",
        school_id="central",
        school_name="Central Public School",
        language=language,
        period_end=datetime(2024, 5, 2, 11, 0, tzinfo=UTC),
        accounts=[
            AccountDigest(
                account_id="grade5-x",
                handle="@grade5class",
                platform="x",
                sections=[
                    SectionGroup("9.0", "9.0 Duty of Care", [crisis]),
                    SectionGroup("5.0", "5.0 Privacy and Confidentiality", [privacy]),
                ],
            )
        ],
        health=[
            AccountHealthView(
                "grade5-x", "@grade5class", "x", "auth", "token expired <i>x</i>", None
            )
        ],
        timezone="America/Toronto",
    )


def urgent(language: str = "en", **overrides: object) -> UrgentView:
    base = UrgentView(
        recipient="principal@school.example",
        school_id="central",
        school_name="Central Public School",
        language=language,
        findings=[finding()],
        ack_url="https://policywatch.board.example/ack/abc123",
    )
    return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]


class Page(HTMLParser):
    """Every start tag with its attributes, and the decoded text."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text_parts: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text_parts.append(data)

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.text_parts).split())

    def names(self) -> set[str]:
        return {tag for tag, _ in self.tags}

    def hrefs(self) -> list[str]:
        return [a["href"] or "" for tag, a in self.tags if tag == "a" and "href" in a]


def assert_no_pii(*bodies: str) -> None:
    for body in bodies:
        assert "705-268-7443" not in body
        assert "555-0199" not in body
        assert "kid.name@example.com" not in body
        assert "P3A 1B2" not in body
        assert "[phone]" in body and "[email]" in body


@pytest.mark.parametrize("language", ["en", "fr"])
def test_digest_escapes_masks_and_links_safely(language: str) -> None:
    rendered = render_digest(digest(language))
    page = Page(rendered.html)

    assert "script" not in page.names()
    assert "b" not in page.names() and "i" not in page.names()
    assert "<script>steal()</script>" in page.text  # shown as text, not run
    assert "Mallory <script>alert('a')</script>" in page.text
    assert "&lt;script&gt;" in rendered.html
    assert "<script" not in rendered.html

    assert_no_pii(rendered.html, rendered.text)
    assert "[postal code]" in rendered.text

    assert page.hrefs() == ["https://x.com/someone/status/123"]
    assert "evil.example" not in rendered.html and "evil.example" not in rendered.text
    assert "https://x.com/someone/status/123" in rendered.text

    for body in (rendered.text, page.text):
        assert "\u202e" not in body
        assert "13:30 EDT" in body  # 17:30 UTC in the school's time zone
    assert "\r" not in rendered.text
    assert not any(unicodedata.category(ch) == "Cf" for ch in rendered.text)


def test_digest_english_wording_and_grouping() -> None:
    rendered = render_digest(digest("en"))
    assert rendered.subject == "policywatch daily digest — Central Public School — 2 findings"
    text = rendered.text
    assert text.index("@grade5class") < text.index("9.0 Duty of Care")
    assert text.index("9.0 Duty of Care") < text.index("5.0 Privacy and Confidentiality")
    assert "What to do: Contact the student's principal right away." in text
    assert "Account health" in text and "sign-in failed" in text
    page = Page(rendered.html)
    assert "9.0 Duty of Care" in page.text
    assert "5.0 Privacy and Confidentiality" in page.text
    assert "token expired <i>x</i>" in page.text


def test_digest_french_wording() -> None:
    rendered = render_digest(digest("fr"))
    assert rendered.subject == "policywatch résumé quotidien — Central Public School — 2 constats"
    page = Page(rendered.html)
    for body in (rendered.text, page.text):
        assert "9.0 Devoir de diligence" in body
        assert "5.0 Vie privée et confidentialité" in body
        assert "État des comptes" in body
        assert "À faire" in body
    assert ("html", {"lang": "fr"}) in page.tags


@pytest.mark.parametrize("language", ["en", "fr"])
def test_html_is_self_contained_with_inlined_css(language: str) -> None:
    for rendered in (render_digest(digest(language)), render_urgent(urgent(language))):
        page = Page(rendered.html)
        assert "link" not in page.names()
        assert "img" not in page.names()
        styled = [tag for tag, attrs in page.tags if attrs.get("style")]
        assert {"body", "h1", "p"} <= set(styled)
        assert "font-family" in rendered.html
        assert "@import" not in rendered.html and "url(" not in rendered.html
        assert "width=device-width" in rendered.html
        assert rendered.text.endswith("\n") and not rendered.text.endswith("\n\n")


def test_subject_is_not_html_escaped_but_the_html_is() -> None:
    view = dataclasses.replace(digest(), school_name="Smith & Jones <PS>")
    rendered = render_digest(view)
    assert rendered.subject == "policywatch daily digest — Smith & Jones <PS> — 2 findings"
    assert "Smith &amp; Jones &lt;PS&gt;" in rendered.html
    assert "Smith & Jones <PS>" in rendered.text


def test_empty_digest_says_nothing_to_do() -> None:
    view = dataclasses.replace(digest(), accounts=[], health=[])
    rendered = render_digest(view)
    assert rendered.subject.endswith("— 0 findings")
    assert "No findings" in rendered.text


def test_urgent_names_section_account_and_ack_link() -> None:
    rendered = render_urgent(urgent("en"))
    assert rendered.subject == "URGENT policywatch: section 9.0 — @grade5class"
    page = Page(rendered.html)
    for body in (rendered.text, page.text):
        assert "Section 9.0 — Duty of Care" in body
        assert "@grade5class" in body
        assert "Contact the student's principal right away." in body
        assert "not acknowledged in time" not in body
    assert "https://policywatch.board.example/ack/abc123" in page.hrefs()
    assert "https://policywatch.board.example/ack/abc123" in rendered.text
    assert_no_pii(rendered.html, rendered.text)
    assert "script" not in page.names()


def test_urgent_french_and_escalation() -> None:
    rendered = render_urgent(urgent("fr", escalation_step=2, ack_url=None))
    assert rendered.subject == "URGENT policywatch : section 9.0 — @grade5class"
    page = Page(rendered.html)
    for body in (rendered.text, page.text):
        assert "Section 9.0 — Devoir de diligence" in body
        assert "n’a pas été confirmée à temps" in body
    assert page.hrefs() == ["https://x.com/someone/status/123"]
    english = render_urgent(urgent("en", escalation_step=1))
    assert "not acknowledged in time" in english.text


def test_urgent_ack_link_must_be_http() -> None:
    rendered = render_urgent(urgent(ack_url="javascript:alert(1)"))
    assert "javascript" not in rendered.html and "javascript" not in rendered.text


def test_urgent_subject_is_one_bounded_line_even_for_hostile_handles() -> None:
    hostile = finding(account_handle="@x\r\nBcc: evil@x\u202e" + "y" * 300, section="9.0\n")
    rendered = render_urgent(urgent(findings=[hostile]))
    assert "\r" not in rendered.subject and "\n" not in rendered.subject
    assert "\u202e" not in rendered.subject
    assert len(rendered.subject) <= 120
    assert rendered.subject.startswith("URGENT policywatch: section 9.0 — @x Bcc: evil@x")


def test_urgent_requires_a_finding() -> None:
    with pytest.raises(ValueError):
        render_urgent(urgent(findings=[]))


def test_board_override_replaces_only_that_template(tmp_path: Path) -> None:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "digest.subject").write_text(
        "Board of {{ view.school_name|header }}: {{ count }} items\n", encoding="utf-8"
    )
    rendered = render_digest(digest(), template_dir=tmp_path)
    assert rendered.subject == "Board of Central Public School: 2 items"
    assert rendered.text == render_digest(digest()).text


def test_board_override_html_is_still_autoescaped(tmp_path: Path) -> None:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "urgent.html").write_text(
        "<html><head><style>p { color: red; }</style></head>"
        "<body><p>{{ lead.author }}</p></body></html>",
        encoding="utf-8",
    )
    rendered = render_urgent(urgent(), template_dir=tmp_path)
    page = Page(rendered.html)
    assert "script" not in page.names()
    assert ("p", {"style": "color: red;"}) in page.tags


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("digest.txt", "{{ view.no_such_field }}"),
        ("digest.html", "<p>{{ typo_variable }}</p>"),
        ("digest.subject", "{{ count }} {{ view.accounts[0].nickname }}"),
    ],
)
def test_strict_undefined_fails_the_render(tmp_path: Path, name: str, body: str) -> None:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / name).write_text(body, encoding="utf-8")
    with pytest.raises(UndefinedError):
        render_digest(digest(), template_dir=tmp_path)


def test_unknown_language_falls_back_to_english() -> None:
    rendered = render_digest(digest("de"))
    assert rendered.subject.startswith("policywatch daily digest")
    assert isinstance(rendered, RenderedMessage)


@pytest.mark.parametrize(
    ("section", "language", "title"),
    [
        ("9.0", "en", "9.0 Duty of Care"),
        ("9.0", "fr", "9.0 Devoir de diligence"),
        ("9", "en", "9.0 Duty of Care"),
        ("5.0", "en", "5.0 Privacy and Confidentiality"),
        ("5.0", "fr", "5.0 Vie privée et confidentialité"),
        ("8.0", "en", "8.0 Maintenance and Monitoring Responsibilities"),
        ("3.0", "fr", "3.0 Limites personnelles et professionnelles"),
        ("7.0", "en", "7.0 Professional Hours"),
        ("42.0", "en", "42.0"),
    ],
)
def test_section_title(section: str, language: str, title: str) -> None:
    assert section_title(section, language) == title


def test_message_id_is_stable_and_derived_only_from_the_key() -> None:
    key = "digest:central:2024-05-02:teacher@school.example"
    first = message_id_for(key, "board.example")
    assert first == message_id_for(key, "board.example")
    assert first != message_id_for(key.replace("05-02", "05-03"), "board.example")
    local, _, domain = first.strip("<>").partition("@")
    assert first.startswith("<") and first.endswith(">")
    assert len(local) == 32 and all(c in "0123456789abcdef" for c in local)
    assert domain == "board.example"
    assert "central" not in first
    with pytest.raises(ValueError):
        message_id_for("k", "bad domain\r\nBcc: x")


# --- safety helpers ---------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(text=st.text(), max_len=st.integers(min_value=1, max_value=120))
def test_header_fragment_is_one_bounded_visible_line(text: str, max_len: int) -> None:
    out = header_fragment(text, max_len=max_len)
    assert len(out) <= max_len
    assert "\r" not in out and "\n" not in out
    assert not any(unicodedata.category(ch) in ("Cc", "Cf") for ch in out)
    assert out == out.strip()


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(),
    start=st.one_of(st.none(), st.integers(min_value=-5, max_value=500)),
    length=st.integers(min_value=0, max_value=200),
    max_len=st.integers(min_value=3, max_value=300),
)
def test_excerpt_is_bounded(text: str, start: int | None, length: int, max_len: int) -> None:
    end = None if start is None else start + length
    out = excerpt(text, start, end, max_len=max_len)
    assert len(out) <= max_len
    assert "\n" not in out and "\r" not in out


def test_excerpt_centres_on_evidence_and_masks_across_the_edge() -> None:
    text = "call 705 268 7443 " + "filler " * 60 + "I want to hurt myself " + "more " * 60
    start = text.index("hurt")
    out = excerpt(text, start, start + 4, max_len=80)
    assert "hurt" in out and out.startswith("…") and out.endswith("…")
    assert len(out) <= 80
    head = excerpt(text, 0, 4, max_len=40)
    assert head.startswith("call [phone]") and "7443" not in head


def test_excerpt_masks_hidden_phone_numbers() -> None:
    out = excerpt("reach me: 705\u200b-268-7443 ok", None, None)
    assert out == "reach me: [phone] ok"
    assert excerpt("mail A.B+c@Mail.Example.ca now", None, None) == "mail [email] now"
    assert excerpt("at k1a 0b1 and H2X-3Y7", None, None) == "at [postal code] and [postal code]"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://x.com/a/status/1", True),
        ("https://twitter.com/a/status/1", True),
        ("https://www.facebook.com/123/posts/4", True),
        ("https://m.facebook.com/story.php?id=1", True),
        ("http://instagram.com/p/abc", True),
        ("https://www.instagram.com/p/abc/", True),
        ("https://X.COM/a", True),
        ("https://evil.example/x.com", False),
        ("https://x.com.evil.example/", False),
        ("https://x.com@evil.example/", False),
        ("https://user:pw@x.com/", False),
        ("javascript:alert(1)//x.com", False),
        ("ftp://x.com/file", False),
        ("//x.com/a", False),
        ("https://x.com/a b", False),
        ("https://x.com\\@evil.example/", False),
        ("https://x.com:8443/a", False),
        ("https://[::1/", False),
        ("", False),
        (None, False),
    ],
)
def test_safe_link(url: str | None, expected: bool) -> None:
    assert safe_link(url, ()) == (url if expected else None)


def test_safe_link_extra_host() -> None:
    url = "https://policywatch.board.example/ack/1"
    assert safe_link(url, ()) is None
    assert safe_link(url, ["policywatch.board.example"]) == url
