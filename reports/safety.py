"""Making untrusted platform text safe to put in front of a reader.

Everything a platform hands us (comment text, author names, handles, URLs) is
written by strangers.  Three things can go wrong when it lands in an email:
header injection (a CR/LF in a subject adds a `Bcc:`), spoofing (bidi overrides
or zero-width characters make text read differently than it is, a link points
somewhere other than the platform) and over-sharing (a digest forwards a
student's phone number).  Each helper here closes one of those; templates and
the mailer call them instead of re-implementing the rules.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable
from urllib.parse import urlsplit

import phonenumbers
import re2

ELLIPSIS = "…"

PLATFORM_HOSTS = frozenset(
    {
        "x.com",
        "twitter.com",
        "facebook.com",
        "www.facebook.com",
        "m.facebook.com",
        "instagram.com",
        "www.instagram.com",
    }
)

# RE2 runs in linear time, so a hostile 60 kB comment cannot stall the digest run
# the way a backtracking `[...]+@` scan can.
_EMAIL = re2.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
# Canadian postal codes never use D, F, I, O, Q, U (nor W, Z as the first letter).
_POSTAL = re2.compile(
    r"(?i)\b[ABCEGHJ-NPRSTVXY][0-9][ABCEGHJ-NPRSTV-Z][ \-]?[0-9][ABCEGHJ-NPRSTV-Z][0-9]\b"
)
_WHITESPACE = re.compile(r"\s+")

# POSSIBLE rather than VALID: a local 7-digit number ("268-7443") is still a
# student's phone number; a masked room number is the cheaper mistake.
_PHONE_LENIENCY = phonenumbers.Leniency.POSSIBLE
_PHONE_REGION = "CA"


def _is_invisible(ch: str) -> bool:
    """Control, format (bidi overrides, zero-width joiners), surrogate, private or unassigned."""
    return unicodedata.category(ch)[0] == "C"


def _clean_char(ch: str) -> str:
    """One character as it may appear in a single line: whitespace -> space, invisible -> ''."""
    if ch.isspace():
        return " "
    if _is_invisible(ch):
        return ""
    return ch


def one_line(text: str) -> str:
    """Text as one visible line: no line breaks to forge extra lines or headers, no bidi tricks."""
    cleaned = "".join(_clean_char(ch) for ch in unicodedata.normalize("NFC", text))
    return _WHITESPACE.sub(" ", cleaned).strip()


def _truncate(text: str, max_len: int) -> str:
    if len(text) <= max_len:
        return text
    return text[: max_len - len(ELLIPSIS)].rstrip() + ELLIPSIS


def header_fragment(text: str, max_len: int = 60) -> str:
    """The only form in which platform- or config-derived text may enter a mail header.

    Removing every C* character (not just CR/LF) also drops bidi overrides that would
    make "moc.liame" render as an innocent-looking subject in the inbox list.
    """
    if max_len < 1:
        raise ValueError("max_len must be at least 1")
    return _truncate(one_line(text), max_len)


_DIGIT = re.compile(r"\d")
_MIN_PHONE_DIGITS = 7  # a local number without area code


def _has_enough_digits(text: str) -> bool:
    count = 0
    for _ in _DIGIT.finditer(text):
        count += 1
        if count >= _MIN_PHONE_DIGITS:
            return True
    return False


def _pii_spans(text: str) -> list[tuple[int, int, str]]:
    """Non-overlapping (start, end, replacement) for every email, phone and postal code."""
    found: list[tuple[int, int, str]] = []
    for m in _EMAIL.finditer(text):
        found.append((m.start(), m.end(), "[email]"))
    for m in _POSTAL.finditer(text):
        found.append((m.start(), m.end(), "[postal code]"))
    if _has_enough_digits(text):  # the matcher is slow; most comments hold no number
        for pm in phonenumbers.PhoneNumberMatcher(text, _PHONE_REGION, leniency=_PHONE_LENIENCY):
            found.append((pm.start, pm.end, "[phone]"))
    found.sort(key=lambda s: (s[0], -(s[1] - s[0])))
    spans: list[tuple[int, int, str]] = []
    for span in found:
        if spans and span[0] < spans[-1][1]:
            continue  # overlaps an earlier, longer-or-equal match: already masked
        spans.append(span)
    return spans


def _cleaned(text: str) -> tuple[str, list[int]]:
    """`one_line(text)` without the strip, plus the map from original to cleaned offsets.

    Cleaning comes before PII detection so a zero-width space inside a phone number
    cannot hide it from the matcher and then vanish in the output.
    """
    out: list[str] = []
    pos_map = [0] * (len(text) + 1)
    for i, raw in enumerate(text):
        pos_map[i] = len(out)
        ch = _clean_char(raw)
        if ch == " " and (not out or out[-1] == " "):
            continue  # collapse whitespace runs, drop leading whitespace
        if ch:
            out.append(ch)
    pos_map[len(text)] = len(out)
    return "".join(out), pos_map


def _masked(text: str) -> tuple[str, list[int], list[tuple[int, int]]]:
    """Cleaned, masked text, the map from original to masked offsets, and the token ranges.

    The offset map lets the caller centre the excerpt on the evidence span even though
    cleaning and masking moved it; token ranges keep the window from cutting
    "[phone]" in half.
    """
    cleaned, clean_map = _cleaned(text)
    out: list[str] = []
    mask_map = [0] * (len(cleaned) + 1)
    tokens: list[tuple[int, int]] = []
    length = 0
    prev = 0
    for s, e, token in _pii_spans(cleaned):
        for j in range(prev, s):
            mask_map[j] = length + (j - prev)
        out.append(cleaned[prev:s])
        length += s - prev
        for j in range(s, e):
            mask_map[j] = length
        out.append(token)
        tokens.append((length, length + len(token)))
        length += len(token)
        prev = e
    for j in range(prev, len(cleaned) + 1):
        mask_map[j] = length + (j - prev)
    out.append(cleaned[prev:])
    return "".join(out), [mask_map[c] for c in clean_map], tokens


def _snap_to_words(
    text: str, ws: int, we: int, ms: int, me: int, slack: int = 20
) -> tuple[int, int]:
    """Move cut points to nearby spaces (never into the evidence) so words are not halved."""
    if 0 < ws < len(text) and text[ws - 1] != " ":
        space = text.find(" ", ws, min(ws + slack, ms))
        if space != -1:
            ws = space + 1
    if 0 < we < len(text) and text[we] != " ":
        space = text.rfind(" ", max(we - slack, me), we)
        if space != -1:
            we = space
    return ws, we


@functools.lru_cache(maxsize=4096)  # the text and HTML parts ask for the same excerpt
def excerpt(text: str, start: int | None, end: int | None, max_len: int = 280) -> str:
    """A window of at most `max_len` characters around the evidence, with personal data masked.

    Masking happens on the whole text before the window is cut so a phone number
    straddling the window edge is never shown in part.
    """
    if max_len < 3:
        raise ValueError("max_len must be at least 3")
    text = unicodedata.normalize("NFC", text)
    masked, pos_map, tokens = _masked(text)
    masked_len = len(masked.rstrip())
    masked = masked[:masked_len]
    if masked_len <= max_len:
        return masked
    n = len(text)
    s = 0 if start is None else min(max(start, 0), n)
    e = s if end is None else min(max(end, 0), n)
    if e < s:
        s, e = e, s
    ms, me = min(pos_map[s], masked_len), min(pos_map[e], masked_len)
    budget = max_len - 2 * len(ELLIPSIS)
    if me - ms >= budget:
        ws = ms
    else:
        ws = max(0, ms - (budget - (me - ms)) // 2)
    we = min(masked_len, ws + budget)
    ws = max(0, we - budget)
    ws, we = _snap_to_words(masked, ws, we, ms, me)
    for t_start, t_end in tokens:
        if t_start < ws < t_end:
            ws = t_end
        if t_start < we < t_end:
            we = t_start
    body = masked[ws:we].strip()
    prefix = ELLIPSIS if ws > 0 else ""
    suffix = ELLIPSIS if we < masked_len else ""
    return f"{prefix}{body}{suffix}"


def safe_link(url: str | None, allowed_hosts: Iterable[str] = ()) -> str | None:
    """The URL if it really points at a platform (or an explicitly allowed host), else None.

    A comment's "url" comes from the platform payload, which a replay file or a
    compromised connector could fill with a phishing page; a digest link is only
    worth showing if it goes where it claims to.
    """
    if not url or len(url) > 2048:
        return None
    if any(ch.isspace() or _is_invisible(ch) or ch == "\\" for ch in url):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("https", "http"):
        return None
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        return None
    host = (parts.hostname or "").rstrip(".")
    if not host:
        return None
    allowed = PLATFORM_HOSTS | {h.lower().rstrip(".") for h in allowed_hosts}
    if host not in allowed:
        return None
    if port is not None and port not in (80, 443) and host in PLATFORM_HOSTS:
        return None
    return url
