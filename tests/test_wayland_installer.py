"""install.sh --autostart in a Wayland session: the session's variables go to systemd, and the keys are
offered (never bound without a yes), with the lines printed."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from test_installer import INSTALLER, fake_systemctl, stand_in_venv


def autostart(tmp_path: Path, desktop: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    venv = tmp_path / "my venv"  # a space: the printed commands must quote it
    stand_in_venv(venv)
    fake_bin, calls = fake_systemctl(tmp_path)
    env = dict(os.environ, DESCRIBE_SCREEN_VENV=str(venv), HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / "c"),
               PATH=f"{fake_bin}:{os.environ['PATH']}", WAYLAND_DISPLAY="wayland-1", XDG_SESSION_TYPE="wayland",
               XDG_CURRENT_DESKTOP=desktop, DESCRIBE_SCREEN_CONFIG=str(tmp_path / "none.toml"))
    result = subprocess.run([str(INSTALLER / "install.sh"), "--autostart", "--no-run"], cwd=tmp_path, env=env,
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result, calls.read_text().splitlines()


def test_autostart_in_sway_hands_over_the_session_and_prints_the_lines(tmp_path):
    result, calls = autostart(tmp_path, "sway")
    imported = next(c for c in calls if "import-environment" in c)
    assert {"WAYLAND_DISPLAY", "XDG_CURRENT_DESKTOP", "DBUS_SESSION_BUS_ADDRESS", "SWAYSOCK"} <= set(imported.split())
    assert calls.index(imported) < calls.index("--user start describe-screen.service")
    exe = f"'{tmp_path}/my venv/bin/describe-screen'"
    assert f"bindsym Ctrl+Mod1+d exec {exe} describe --target screen" in result.stdout
    assert f"bindsym Ctrl+Mod1+a exec {exe} listen" in result.stdout
    assert "press it again to send it" in result.stdout
    assert "exec systemctl --user import-environment WAYLAND_DISPLAY" in result.stdout
    assert f"Keys not bound. To bind them later: {exe} keys install --desktop sway" in result.stdout
    assert "Mod1+p" not in result.stdout  # no pointer key on Wayland
    assert not (tmp_path / "c" / "sway").exists()  # nothing written without a yes


def test_autostart_on_gnome_binds_no_key_without_a_yes(tmp_path):
    result, _ = autostart(tmp_path, "GNOME")
    assert "Keys not bound. To bind them later:" in result.stdout
    assert "my venv/bin/describe-screen' keys install --desktop gnome" in result.stdout
    assert "Bound in GNOME" not in result.stdout
