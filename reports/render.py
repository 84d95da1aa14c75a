"""Turning view models into a subject, a plain-text body and an inlined HTML body.

Templates, not code, own the wording so a board can override any of them by
dropping a file with the same relative name into its own template directory.
The environment is deliberately unforgiving: HTML autoescaping so platform text
can never become markup, `StrictUndefined` so a typo in a (board) template fails
the render instead of silently mailing a blank, and a `finalize` hook that strips
invisible characters from every value so plain text cannot carry bidi tricks.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import css_inline
from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    select_autoescape,
)
from markupsafe import Markup

from reports.safety import excerpt, header_fragment, one_line, safe_link
from reports.views import DigestView, SectionGroup, SummaryView, UrgentView

TEMPLATE_ROOT = Path(__file__).parent / "templates"
LANGUAGES = ("en", "fr")
SUBJECT_MAX = 200

_SECTION_TITLES: dict[str, tuple[str, str]] = {
    "1.0": ("Authorization", "Autorisation"),
    "2.0": ("Blended Accounts", "Comptes mixtes"),
    "3.0": ("Personal and Professional Boundaries", "Limites personnelles et professionnelles"),
    "4.0": ("Legal Implications", "Implications juridiques"),
    "5.0": ("Privacy and Confidentiality", "Vie privée et confidentialité"),
    "6.0": ('Who to "Friend" and "Follow"', "Qui « ajouter comme ami » et « suivre »"),
    "7.0": ("Professional Hours", "Heures professionnelles"),
    "8.0": (
        "Maintenance and Monitoring Responsibilities",
        "Responsabilités de gestion et de surveillance",
    ),
    "9.0": ("Duty of Care", "Devoir de diligence"),
    "10.0": ("Social Media Form", "Formulaire sur les médias sociaux"),
}

_PLATFORM_NAMES = {"x": "X", "twitter": "X", "facebook": "Facebook", "instagram": "Instagram"}

# Media queries cannot be inlined; keeping at-rules in a <style> block lets clients
# that honour it (Apple Mail, Gmail app) go single-column on phones.  Remote
# stylesheets are never fetched: a board template must not make the renderer
# reach out to the network.
_INLINER = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)
_INVISIBLE = re.compile(
    r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e"
    r"\u2060-\u2064\u2066-\u2069\ufeff\ufff9-\ufffb]"
)
_BLANK_LINES = re.compile(r"\n{3,}")
_DOMAIN = re.compile(
    r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*$"
)


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    subject: str
    text: str
    html: str


def _section_key(section: str) -> str:
    key = one_line(section)[:10]
    return f"{key}.0" if key.isdigit() else key


def section_name(section: str, language: str = "en") -> str:
    """The heading alone ("Duty of Care"), or "" for a section the policy does not have."""
    titles = _SECTION_TITLES.get(_section_key(section))
    if titles is None:
        return ""
    return titles[1] if language == "fr" else titles[0]


def section_title(section: str, language: str = "en") -> str:
    """The policy's own heading, so readers can look the section up in Procedure 1.2.1."""
    key = _section_key(section)
    name = section_name(key, language)
    return f"{key} {name}" if name else key


def _group_title(group: SectionGroup, language: str) -> str:
    """Our translated heading for known sections; the engine's title only for unknown ones."""
    if section_name(group.section, language):
        return section_title(group.section, language)
    return one_line(group.title) or _section_key(group.section)


def message_id_for(idempotency_key: str, domain: str) -> str:
    """A Message-ID that depends only on the key, so a retried send is recognisably the same mail.

    Hashing keeps school ids, account handles or anything else in the key out of a
    header that every relay logs.
    """
    if not _DOMAIN.match(domain) or len(domain) > 253:
        raise ValueError(f"not a usable Message-ID domain: {domain!r}")
    digest = hashlib.sha256(idempotency_key.encode("utf-8", "surrogatepass")).hexdigest()
    return f"<{digest[:32]}@{domain}>"


def _finalize(value: Any) -> Any:
    if isinstance(value, Markup):
        return value
    if isinstance(value, str):
        return _INVISIBLE.sub("", value)
    return value


def _platform_name(platform: str) -> str:
    return _PLATFORM_NAMES.get(platform.lower(), one_line(platform).title())


def _make_when(tz_name: str) -> Callable[[datetime | None], str]:
    try:
        tz = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        tz = ZoneInfo("UTC")

    def when(value: datetime | None) -> str:
        if value is None:
            return ""
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)  # the engine stores naive times as UTC
        return value.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")

    return when


@functools.lru_cache(maxsize=8)
def _environment(template_dir: str | None) -> Environment:
    loaders = [FileSystemLoader(template_dir)] if template_dir else []
    loaders.append(FileSystemLoader(str(TEMPLATE_ROOT)))
    env = Environment(
        loader=ChoiceLoader(loaders),
        autoescape=select_autoescape(
            enabled_extensions=("html", "htm", "xml"),
            disabled_extensions=("txt", "subject"),
            default_for_string=True,
            default=True,
        ),
        undefined=StrictUndefined,
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        excerpt=excerpt,
        safe_link=safe_link,
        header=header_fragment,
        clip=header_fragment,  # same rules, used for body text that must stay one short line
        one_line=one_line,
        section_title=section_title,
        section_name=section_name,
        group_title=_group_title,
        platform_name=_platform_name,
    )
    return env


def _language(language: str) -> str:
    return language if language in LANGUAGES else "en"


def _render(
    kind: str, language: str, template_dir: Path | None, context: dict[str, Any]
) -> RenderedMessage:
    env = _environment(str(template_dir) if template_dir is not None else None)
    lang = _language(language)
    context = {**context, "lang": lang}

    def render(name: str) -> str:
        return env.get_template(f"{lang}/{kind}.{name}").render(context)

    subject = header_fragment(render("subject"), max_len=SUBJECT_MAX)
    lines = [line.rstrip() for line in render("txt").splitlines()]
    text = _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip("\n") + "\n"
    html = _INLINER.inline(render("html")).rstrip("\n") + "\n"
    return RenderedMessage(subject=subject, text=text, html=html)


def render_digest(
    view: DigestView, *, template_dir: Path | None = None, link_hosts: Iterable[str] = ()
) -> RenderedMessage:
    """The owner's daily digest; `link_hosts` adds hosts (beyond the platforms) links may use."""
    context = {
        "view": view,
        "count": view.finding_count,
        "link_hosts": tuple(link_hosts),
        "when": _make_when(view.timezone),
    }
    return _render("digest", view.language, template_dir, context)


def render_urgent(
    view: UrgentView, *, template_dir: Path | None = None, link_hosts: Iterable[str] = ()
) -> RenderedMessage:
    """One urgent alert; the first finding names the incident's section and account."""
    if not view.findings:
        raise ValueError("an urgent alert needs at least one finding")
    ack_url = None
    if view.ack_url:
        # The ack link is ours, not the platform's: allow its own host but still
        # insist on http(s) so a bad config cannot produce a javascript: link.
        try:
            ack_host = urlsplit(view.ack_url).hostname or ""
        except ValueError:
            ack_host = ""
        ack_url = safe_link(view.ack_url, [ack_host, *link_hosts]) if ack_host else None
    context = {
        "view": view,
        "lead": view.findings[0],
        "ack_url": ack_url,
        "link_hosts": tuple(link_hosts),
        "when": _make_when(view.timezone),
    }
    return _render("urgent", view.language, template_dir, context)


def render_summary(
    view: SummaryView, *, template_dir: Path | None = None, link_hosts: Iterable[str] = ()
) -> RenderedMessage:
    """The principal's daily school summary."""
    context = {
        "view": view,
        "total": sum(c.count for c in view.counts),
        "link_hosts": tuple(link_hosts),
        "when": _make_when(view.timezone),
    }
    return _render("summary", view.language, template_dir, context)
