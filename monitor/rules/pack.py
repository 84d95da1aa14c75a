"""Rule packs: YAML files of rules, validated by a schema that rejects unknown keys."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from monitor.model import Severity, SubjectKind
from monitor.rules.detectors import Detector, detector_class

SHIPPED_PACKS = ("en", "fr")


class PackError(ValueError):
    """A rule pack is invalid; the message names the file, rule and key."""


class DetectorSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    type: str
    params: dict[str, Any] = {}


class Examples(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    match: list[str] = []
    no_match: list[str] = []


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    section: str = Field(pattern=r"^\d+\.\d+$")
    category: str
    severity: Severity
    applies_to: list[SubjectKind] = Field(min_length=1)
    detector: DetectorSpec
    message: str
    action: str
    notify_owner_now: bool = False
    enabled: bool = True
    examples: Examples = Examples()

    @model_validator(mode="after")
    def _detector_params(self) -> Rule:
        cls = detector_class(self.detector.type)
        cls.Params.model_validate(self.detector.params)
        return self

    def build_detector(self) -> Detector:
        cls = detector_class(self.detector.type)
        return cls(cls.Params.model_validate(self.detector.params))


class RulePack(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    pack: str
    language: Literal["en", "fr", "any"] = "any"
    rules: list[Rule] = []


def _parse(text: str, source: str) -> RulePack:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PackError(f"{source}: not valid YAML: {exc}") from None
    try:
        return RulePack.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            problems.append(f"  {loc}: {err['msg']}")
        raise PackError(f"{source}: invalid rule pack\n" + "\n".join(problems)) from None


def load_shipped_pack(name: str) -> RulePack:
    text = resources.files("monitor.rules.packs").joinpath(f"{name}.yaml").read_text("utf-8")
    return _parse(text, f"shipped pack {name}.yaml")


def load_pack(path: Path) -> RulePack:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PackError(f"{path}: cannot read rule pack: {exc.strerror}") from None
    return _parse(text, str(path))
