"""The shipped systemd unit: the directives IT relies on, and `systemd-analyze verify`."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

UNIT = REPO / "systemd" / "policywatch.service"


def _directives() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_unit_declares_notify_watchdog_sandbox_and_credentials() -> None:
    d = _directives()
    assert d["Type"] == ["notify"] and d["WatchdogSec"]
    assert d["ExecStart"][0].endswith("policywatch run")
    assert d["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert d["DynamicUser"] == ["yes"] and d["StateDirectory"] == ["policywatch"]
    assert d["ProtectSystem"] == ["strict"] and d["NoNewPrivileges"] == ["yes"]
    assert d["PrivateTmp"] == ["yes"] and "AF_UNIX" in d["RestrictAddressFamilies"][0]
    assert all(":" in c for c in d["LoadCredential"])
    assert d["Restart"] == ["on-failure"]
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    assert {"Unit", "Service", "Install"} <= set(parser.sections())


def test_systemd_analyze_verify_passes_where_installed(tmp_path: Path) -> None:
    """Run verify against the unit pointed at this checkout's installed command."""
    exe = str(Path(sys.executable).parent / "policywatch")
    unit = tmp_path / "policywatch.service"
    unit.write_text(UNIT.read_text().replace("/opt/policywatch/.venv/bin/policywatch", exe))
    analyze = shutil.which("systemd-analyze")
    if analyze is None:  # not a skip: what verify would check first is checked here
        assert os.access(exe, os.X_OK), f"{exe} is not executable"
        return
    proc = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "policywatch.service" not in proc.stderr, proc.stderr
