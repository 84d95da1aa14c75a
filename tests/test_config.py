"""Configuration validation: every error names the file, the key path and what was expected."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from monitor.config import ConfigError, load_config, parse_config
from tests.conftest import REPO, base_config


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policywatch.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _error(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(data, "cfg.toml")
    return str(info.value)


def test_the_example_config_is_valid() -> None:
    config = load_config(REPO / "config" / "policywatch.example.toml")
    assert config.accounts[0].credentials == {"bearer_token_env": "GRADE5_X_TOKEN"}
    assert config.schedule.poll_interval.total_seconds() == 300


def test_the_demo_config_is_valid() -> None:
    config = load_config(REPO / "config" / "demo.toml")
    assert {s.id for s in config.schools} == {"central", "riviere"}


def test_unknown_key_is_named_with_its_path(tmp_path: Path) -> None:
    data = base_config(tmp_path)
    data["accounts"][1]["handel"] = "typo"
    msg = _error(data)
    assert "cfg.toml" in msg and "accounts[1].handel" in msg and "unknown key" in msg


def test_wrong_type(tmp_path: Path) -> None:
    data = base_config(tmp_path)
    data["mail"]["port"] = "twenty-five"
    assert "mail.port" in _error(data)


def test_account_naming_unknown_school(tmp_path: Path) -> None:
    data = base_config(tmp_path)
    data["accounts"][0]["school"] = "nowhere"
    msg = _error(data)
    assert "accounts[0].school" in msg and "unknown school 'nowhere'" in msg


def test_duplicate_account_id(tmp_path: Path) -> None:
    data = base_config(tmp_path)
    data["accounts"][1]["id"] = "central-a"
    data["accounts"][1]["school"] = "central"
    data["accounts"][1]["owners"] = ["owner@central.example"]
    msg = _error(data)
    assert "accounts[1].id" in msg and "duplicate id 'central-a'" in msg


def test_owner_must_be_staff_of_the_school(tmp_path: Path) -> None:
    data = base_config(tmp_path)
    data["accounts"][0]["owners"] = ["owner@north.example"]
    assert "accounts[0].owners[0]" in _error(data)


def test_literal_secret_is_refused(tmp_path: Path) -> None:
    data = base_config(tmp_path)
    data["accounts"][0]["credentials"] = {
        "bearer_token_env": "AAAAAAAAAAAAAAAAAAAAAMLheAAAAAAA0%2BuSeid"
    }
    msg = _error(data)
    assert "accounts[0].credentials.bearer_token_env" in msg and "not a literal secret" in msg
    assert "0%2BuSeid" not in msg


def test_unknown_platform(tmp_path: Path) -> None:
    data = base_config(tmp_path)
    data["accounts"][0]["platform"] = "myspace"
    assert "accounts[0].platform" in _error(data)


def test_bad_duration_and_office_hours(tmp_path: Path) -> None:
    data = base_config(tmp_path, poll_interval="often")
    assert "schedule.poll_interval" in _error(data)
    data = base_config(tmp_path)
    data["accounts"][0]["office_hours"] = "whenever"
    assert "accounts[0].office_hours" in _error(data)


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "[mail\nsender=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)


def test_cli_exit_code_2_and_nothing_written(tmp_path: Path) -> None:
    data = base_config(tmp_path)
    text = (REPO / "config" / "demo.toml").read_text()
    bad = text.replace('kind = "classroom"', 'kind = "classroom"\nhandel = "x"', 1)
    path = _write(tmp_path, bad.replace("var/", f"{tmp_path}/var/"))
    assert tomllib.loads(bad)  # still valid TOML: the schema must catch it
    proc = subprocess.run(
        [sys.executable, "-m", "monitor", "--config", str(path), "poll", "--once"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    assert "accounts[0].handel" in proc.stderr and str(path) in proc.stderr
    assert not (tmp_path / "var").exists()
    assert data  # the base config itself stays untouched
