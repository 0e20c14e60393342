"""The installer scripts: static checks, and install.sh's quick path run for real against a stand-in venv."""

from __future__ import annotations

import os
import plistlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INSTALLER = ROOT / "installer"
SCRIPTS = [INSTALLER / "install.sh", INSTALLER / "test.sh"]


def test_shell_scripts_parse_and_pass_shellcheck() -> None:
    for script in SCRIPTS:
        subprocess.run(["bash", "-n", str(script)], check=True)
        assert os.access(script, os.X_OK), f"{script.name} is not executable"
    if not shutil.which("shellcheck"):
        pytest.fail("shellcheck is missing: installer/install.sh --dev installs it.")
    result = subprocess.run(["shellcheck", *map(str, SCRIPTS)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_help_and_unknown_option() -> None:
    shown = subprocess.run([str(INSTALLER / "install.sh"), "--help"], capture_output=True, text=True)
    assert shown.returncode == 0
    assert all(flag in shown.stdout for flag in ("--dev", "--autostart", "--no-run", "DESCRIBE_SCREEN_VENV"))
    wrong = subprocess.run([str(INSTALLER / "install.sh"), "--bogus"], capture_output=True, text=True)
    assert wrong.returncode == 2
    assert "Unknown option --bogus" in wrong.stderr


def test_templates_have_their_placeholders() -> None:
    plist = plistlib.loads((INSTALLER / "describe-screen.plist").read_bytes())
    assert plist["ProgramArguments"] == ["@DESCRIBE_SCREEN@", "daemon"]
    assert plist["RunAtLoad"] is True
    assert plist["StandardErrorPath"] == "@LOG@"
    unit = (INSTALLER / "describe-screen.service").read_text()
    assert 'ExecStart="@DESCRIBE_SCREEN@" daemon' in unit
    assert "WantedBy=graphical-session.target" in unit


def stand_in_venv(folder: Path) -> None:
    """A venv whose python and describe-screen run this test's own, and whose pip refuses to run.

    With a matching install stamp, install.sh must take its quick path; if it ever calls pip, the
    refusal fails the test instead of changing the real environment.
    """
    real_bin = Path(sys.executable).parent
    (folder / "bin").mkdir(parents=True)
    wrappers = {
        "python": f'if [ "${{1:-}}" = -m ] && [ "${{2:-}}" = pip ]; then echo "pip was called" >&2; exit 97; fi\n'
                  f'exec "{real_bin / "python"}" "$@"\n',
        "describe-screen": f'exec "{real_bin / "describe-screen"}" "$@"\n',
    }
    for name, body in wrappers.items():
        (folder / "bin" / name).write_text("#!/bin/sh\n" + body)
        (folder / "bin" / name).chmod(0o755)
    stamp = f"repo={ROOT}\nextras=voice\n" + (ROOT / "pyproject.toml").read_text()
    (folder / ".describe-screen-installed").write_text(stamp)


@pytest.mark.parametrize("systemctl_works", [True, False])
def test_quick_reinstall_with_autostart(tmp_path: Path, systemctl_works: bool) -> None:
    venv = tmp_path / "my venv %h"  # a space and a systemd specifier, both to be escaped
    stand_in_venv(venv)
    fake_bin = tmp_path / "fake-bin"
    fake_bin.mkdir()
    calls = tmp_path / "systemctl-calls"
    (fake_bin / "systemctl").write_text(f'#!/bin/sh\necho "$@" >> "{calls}"\nexit {0 if systemctl_works else 1}\n')
    (fake_bin / "systemctl").chmod(0o755)
    env = dict(os.environ, DESCRIBE_SCREEN_VENV=str(venv), HOME=str(tmp_path),
               XDG_CONFIG_HOME=str(tmp_path / "config"), PATH=f"{fake_bin}:{os.environ['PATH']}")
    result = subprocess.run([str(INSTALLER / "install.sh"), "--autostart", "--no-run"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"describe-screen [voice] is already installed in {venv}" in result.stdout
    assert "Running the demo" not in result.stdout
    last_line = result.stdout.rstrip().splitlines()[-1]
    assert last_line == f"==> describe-screen is installed. Start it with: {venv}/bin/describe-screen daemon"
    unit = (tmp_path / "config" / "systemd" / "user" / "describe-screen.service").read_text()
    assert f'ExecStart="{tmp_path}/my venv %%h/bin/describe-screen" daemon' in unit
    logged = calls.read_text().splitlines()
    if systemctl_works:
        assert logged == ["--user daemon-reload", "--user enable describe-screen.service",
                          "--user start describe-screen.service"]
    else:
        assert logged == ["--user daemon-reload"]
        assert "systemctl --user enable --now describe-screen.service" in result.stdout
