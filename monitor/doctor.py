"""`policywatch doctor`: can this installation do its job? Checked before it must.

An alert that cannot be sent, or an account whose token is missing, fails silently
at 3 a.m.; the doctor finds it at install time.  Each check returns
(check, ok, detail).  Details name variables, hosts and files, never secret
values: credentials are only tested for presence, and SMTP is probed with EHLO
and NOOP, without logging in.
"""

from __future__ import annotations

import os
import smtplib
import socket
import ssl
import tempfile
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.exc import SQLAlchemyError

from monitor.config import Config
from monitor.db.session import current_revision, head_revision, make_engine
from monitor.secrets import MissingSecretError, read_secret
from monitor.timeutil import utcnow

SMTP_PROBE_TIMEOUT = 5.0
EARLIEST_SANE_YEAR = 2024


class Check(NamedTuple):
    check: str
    ok: bool
    detail: str


def run_checks(
    config: Config,
    *,
    environ: Mapping[str, str] | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> list[Check]:
    """Every check, in the order an operator would fix them."""
    checks = [Check("config", True, f"{config.source or '<config>'}: valid")]
    checks.append(check_database(config))
    checks.append(check_mail(config))
    checks.extend(check_credentials(config, environ))
    checks.append(check_clock(config, clock))
    checks.append(check_rules(config))
    return checks


def check_rules(config: Config) -> Check:
    """The rule packs compile and the text classifier's weights load with every head.

    Both would otherwise fail only at the first poll, one logged error per batch.
    """
    from monitor.rules import text_model
    from monitor.rules.engine import RuleEngine

    try:
        engine = RuleEngine.from_settings(config.rules, base_dir=config.base_dir)
        model_rules = [c.rule.id for c in engine.rules if c.rule.detector.type == "text_model"]
        if model_rules:
            missing = set(text_model.HEADS) - set(text_model.model().heads)
            if missing:
                raise ValueError(f"the classifier weights lack the heads {sorted(missing)}: "
                                 "run benchmarks/text_model_cv.py --write")
    except Exception as exc:  # a pack, the protected list or the weights: say which
        return Check("rules", False, f"{type(exc).__name__}: {exc}")
    detail = f"{len(engine.rules)} rules enabled"
    if model_rules:
        detail += "; classifier weights loaded"
    return Check("rules", True, detail)


def check_database(config: Config) -> Check:
    engine = make_engine(config.database.url)
    where = engine.url.render_as_string(hide_password=True)
    try:
        current, head = current_revision(engine), head_revision(engine)
    except (SQLAlchemyError, OSError) as exc:
        return Check("database", False, f"{where}: unreachable ({type(exc).__name__})")
    finally:
        engine.dispose()
    if current != head:
        return Check(
            "database",
            False,
            f"{where}: schema {current or 'none'}, needs {head}: run `policywatch db upgrade`",
        )
    return Check("database", True, f"{where}: reachable, schema {head}")


def check_mail(config: Config) -> Check:
    mail = config.mail
    if mail.outbox_dir is not None:
        return _check_outbox_dir(mail.outbox_dir)
    assert mail.host is not None  # MailConfig guarantees exactly one transport
    where = f"{mail.host}:{mail.port}"
    timeout = min(mail.timeout.total_seconds(), SMTP_PROBE_TIMEOUT)
    smtp_class = smtplib.SMTP_SSL if mail.security == "ssl" else smtplib.SMTP
    try:
        with smtp_class(mail.host, mail.port, timeout=timeout) as smtp:
            code, _ = smtp.ehlo()
            if code != 250:
                return Check("smtp", False, f"{where}: EHLO refused ({code})")
            if mail.security == "starttls" and not smtp.has_extn("starttls"):
                return Check("smtp", False, f"{where}: STARTTLS configured but not offered")
            code, _ = smtp.noop()
            if code != 250:
                return Check("smtp", False, f"{where}: NOOP refused ({code})")
    except (OSError, smtplib.SMTPException, ssl.SSLError) as exc:
        reason = "timed out" if isinstance(exc, socket.timeout) else type(exc).__name__
        return Check("smtp", False, f"{where}: not reachable ({reason})")
    return Check("smtp", True, f"{where}: EHLO and NOOP answered")


def _check_outbox_dir(path: Path) -> Check:
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".doctor-", delete=True):
            pass
    except OSError as exc:
        return Check("outbox_dir", False, f"{path}: not writable ({exc.strerror})")
    return Check("outbox_dir", True, f"{path}: writable")


def check_credentials(config: Config, environ: Mapping[str, str] | None = None) -> list[Check]:
    """One check per account (and one for SMTP login): every named credential is set."""
    env = dict(os.environ if environ is None else environ)
    wanted: list[tuple[str, list[str]]] = [
        (f"credentials:{a.id}", list(a.credentials.values())) for a in config.accounts
    ]
    mail_names = [n for n in (config.mail.username_env, config.mail.password_env) if n]
    if mail_names:
        wanted.append(("credentials:smtp", mail_names))
    if config.web.enabled and config.web.key_env:
        wanted.append(("credentials:web", [config.web.key_env]))
    checks = []
    for name, variables in wanted:
        missing = []
        for variable in variables:
            try:
                read_secret(variable, env)  # presence only; the value is never looked at
            except MissingSecretError:
                missing.append(variable)
        if missing:
            checks.append(Check(name, False, f"not set: {', '.join(missing)}"))
        elif variables:
            checks.append(Check(name, True, f"set: {', '.join(variables)}"))
        else:
            checks.append(Check(name, True, "none needed"))
    return checks


def check_clock(config: Config, clock: Callable[[], datetime] = utcnow) -> Check:
    now = clock()
    if now.tzinfo is None or now.utcoffset() is None:
        return Check("clock", False, "the clock returned a naive time")
    if now.year < EARLIEST_SANE_YEAR or now.year > 2200:
        return Check("clock", False, f"system clock says {now.isoformat()}: not plausible")
    names = {config.schedule.timezone, *(s.timezone for s in config.schools if s.timezone)}
    for name in sorted(names):
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            return Check("clock", False, f"time zone {name} is not installed (tzdata)")
    return Check(
        "clock", True, f"{now.isoformat(timespec='seconds')}; zones {', '.join(sorted(names))}"
    )
