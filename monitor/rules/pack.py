"""Rule packs: YAML files of rules, validated by a schema that rejects unknown keys.

Rules are data so a board can read, test and override them without a release: every
rule names the Procedure 1.2.1 section it enforces, the action the policy asks of the
person who receives it, and examples that must and must not match (run by
`policywatch rules lint` and by the test suite).  Errors name the file, the rule id and
the key, because the person fixing a board pack is not a Python developer.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from monitor.model import Audience, Severity, SubjectKind
from monitor.rules.detectors import Detector, RuleEnv, detector_class

SHIPPED_PACKS = ("common", "en", "fr")
TEXT_KINDS = (SubjectKind.COMMENT, SubjectKind.REPLY, SubjectKind.MENTION, SubjectKind.TAG,
              SubjectKind.OWN_POST)



def _localized(value: object) -> object:
    if isinstance(value, dict):
        unknown = set(value) - {"en", "fr"}
        if unknown or not value:
            raise ValueError("expected a string or a table with keys en and/or fr")
        if not all(isinstance(v, str) and v for v in value.values()):
            raise ValueError("each language's text must be a non-empty string")
    elif not isinstance(value, str) or not value:
        raise ValueError("expected a non-empty string or a table {en: ..., fr: ...}")
    return value


Localized = Annotated[str | dict[str, str], BeforeValidator(_localized)]

class PackError(ValueError):
    """A rule pack is invalid; the message names the file, rule and key."""


class DetectorSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    type: str
    params: dict[str, Any] = {}


class ExampleSubject(BaseModel):
    """An example that needs more than text (an own post off hours, a settings change)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    text: str = ""
    kind: SubjectKind | None = None
    language: str | None = None
    within_office_hours: bool | None = None
    account_kind: str = "school"
    audience_before: Literal["private", "restricted", "public"] | None = None
    audience_after: Literal["private", "restricted", "public"] | None = None
    changed: list[str] = []

    def audience(self, which: str | None) -> Audience | None:
        return None if which is None else Audience[which.upper()]


Example = str | ExampleSubject


class Examples(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    match: list[Example] = []
    no_match: list[Example] = []


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    section: str = Field(pattern=r"^\d+\.\d+$")
    category: str = Field(pattern=r"^[a-z_]+$")
    severity: Severity
    applies_to: list[SubjectKind] = Field(min_length=1)
    detector: DetectorSpec
    # one string, or one per language ({en: ..., fr: ...}) for rules shared by both packs
    message: Localized
    action: Localized
    notify_owner_now: bool = False
    enabled: bool = True
    any_language: bool = False  # duty of care: a student may write in either language
    # a second stage reports only what the first missed: this rule's finding is dropped
    # when a rule without `suppressed_by` reports one of these categories on the subject
    # (the classifier stays quiet where a crisis phrase already fired, so a principal
    # sees one finding per comment, with the phrase's precise evidence span)
    suppressed_by: list[str] = []
    examples: Examples = Examples()

    def text_for(self, field: Literal["message", "action"], language: str) -> str:
        """The message or action in the recipient school's language (English as fallback)."""
        value = getattr(self, field)
        if isinstance(value, str):
            return value
        return str(value.get(language) or value.get("en") or next(iter(value.values())))

    @model_validator(mode="after")
    def _detector_params(self) -> Rule:
        try:
            cls = detector_class(self.detector.type)
        except KeyError as exc:
            raise ValueError(f"detector.type: {exc.args[0]}") from None
        try:
            cls.Params.model_validate(self.detector.params)
        except ValidationError as exc:
            problems = "; ".join(
                f"detector.params.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                for e in exc.errors()
            )
            raise ValueError(problems) from None
        return self

    def build_detector(self, env: RuleEnv | None = None) -> Detector:
        cls = detector_class(self.detector.type)
        return cls(cls.Params.model_validate(self.detector.params), env)


class RulePack(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    pack: str
    language: Literal["en", "fr", "any"] = "any"
    rules: list[Rule] = []
    source: str = Field(default="", exclude=True)  # where it was loaded from, for messages

    @model_validator(mode="after")
    def _unique_ids(self) -> RulePack:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.id in seen:
                raise ValueError(f"rule id {rule.id!r} appears twice in the pack")
            seen.add(rule.id)
        return self


def _where(data: Any, loc: tuple[int | str, ...]) -> str:
    """'rules.3.detector.params.x' -> "rule 'crisis.x' (rules[3]): detector.params.x"."""
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
        rid = "?"
        try:
            rid = str(data["rules"][loc[1]].get("id", "?"))
        except (KeyError, IndexError, TypeError, AttributeError):
            pass
        rest = ".".join(str(p) for p in loc[2:] if not str(p).startswith("function-"))
        return f"rule {rid!r} (rules[{loc[1]}])" + (f": {rest}" if rest else "")
    return ".".join(str(p) for p in loc) or "(top level)"


def parse_pack(text: str, source: str) -> RulePack:
    """Parse and validate one pack; PackError names the file, the rule id and the key."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PackError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise PackError(f"{source}: a rule pack is a mapping with 'pack' and 'rules' keys")
    if "source" in data:
        raise PackError(f"{source}: source: extra inputs are not permitted")
    try:
        pack = RulePack.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = f"unknown key {str(err['loc'][-1])!r} (not allowed)"
            problems.append(f"  {_where(data, tuple(err['loc']))}: {msg}")
        raise PackError(f"{source}: invalid rule pack\n" + "\n".join(problems)) from None
    return pack.model_copy(update={"source": source})


def load_shipped_pack(name: str) -> RulePack:
    text = resources.files("monitor.rules.packs").joinpath(f"{name}.yaml").read_text("utf-8")
    return parse_pack(text, f"shipped pack {name}.yaml")


def load_pack(path: Path) -> RulePack:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PackError(f"{path}: cannot read rule pack: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise PackError(f"{path}: a rule pack must be UTF-8 text") from None
    return parse_pack(text, str(path))
