"""A new user's first run on sway, as the README tells it: a login with no sway config of their own,
the daemon started, `describe-screen keys install` run by its full path (the virtualenv is not on the
session's PATH), then the keys. The default sway keys must still work afterwards."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_wayland import TEXT, SessionDaemon, words
from wayland_session import HeadlessSway

from describe_screen import sway_keys
from describe_screen.errors import UserError

PROGRAM = Path(sys.executable).parent / "describe-screen"  # the installed command, as install.sh makes it


@pytest.fixture(scope="module")
def desktop() -> Iterator[HeadlessSway]:
    with HeadlessSway(config=None) as sway:  # sway reads /etc/sway/config: the user has none
        sway.gtk_window("New message", TEXT, "Cancel", "Send")
        yield sway


@pytest.fixture(scope="module")
def daemon(desktop: HeadlessSway) -> SessionDaemon:
    return SessionDaemon(desktop, "rate = 140\n")


def keys(desktop: HeadlessSway, *args: str) -> subprocess.CompletedProcess:
    done = desktop.run([str(PROGRAM), "keys", *args], timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def swaymsg(desktop: HeadlessSway, *args: str) -> object:
    done = desktop.run(["swaymsg", "--raw", *args])
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_before_any_key_is_bound_the_ready_message_names_none_and_says_how(daemon):
    spoken = " ".join(daemon.status()["spoken"])
    ready = spoken[spoken.index("describe-screen is ready."):]
    assert "Press Control Alt D" not in ready, ready
    assert f"No keys are bound to describe-screen in this desktop yet. To bind them, run: {PROGRAM} keys install" \
        in ready, ready


def test_keys_install_binds_the_full_path_and_a_key_press_reads_the_window(daemon, desktop):
    assert not any((Path(p) / "describe-screen").exists() for p in desktop.env["PATH"].split(os.pathsep))
    done = keys(desktop, "install")
    home = Path(desktop.env["HOME"])
    config = (home / ".config/sway/config").read_text()
    ours = home / ".config/sway/config.d/describe-screen"
    assert config.splitlines()[1:] == ["include /etc/sway/config", f"include {ours}"]  # sway's defaults first
    lines = ours.read_text()
    assert f"bindsym Ctrl+Mod1+r exec {shlex.quote(str(PROGRAM))} read" in lines
    assert "Mod1+p " not in lines  # no pointer key on Wayland
    assert "the keys work now" in done.stdout, done.stdout
    before = daemon.status()
    typed = desktop.run(["wtype", "-M", "ctrl", "-M", "alt", "-k", "r", "-m", "alt", "-m", "ctrl"])
    assert typed.returncode == 0, typed.stderr
    said = daemon.said_after(before)
    assert {"quarterly", "report", "ready", "review"} <= words(said), said


def test_the_default_sway_keys_still_work_after_install(desktop):
    keys(desktop, "install")
    assert "resize" in swaymsg(desktop, "-t", "get_binding_modes")  # the system config's resize mode
    desktop.run(["wtype", "-M", "logo", "-k", "r", "-m", "logo"])  # sway's default $mod+r: resize mode
    deadline = time.time() + 10
    while swaymsg(desktop, "-t", "get_binding_state")["name"] != "resize":
        assert time.time() < deadline, "Super R did not enter sway's resize mode"
        time.sleep(0.1)
    desktop.run(["wtype", "-k", "Escape"])


def test_install_twice_includes_our_file_once(desktop):
    home = Path(desktop.env["HOME"])
    before = (home / ".config/sway/config").read_text()
    keys(desktop, "install")
    assert (home / ".config/sway/config").read_text() == before


def test_doctor_names_the_keys_sway_really_has(daemon, desktop, tmp_path):
    keys(desktop, "install")
    done = desktop.run([str(PROGRAM), "doctor", "--json"], timeout=300)
    hotkeys = next(check for check in json.loads(done.stdout) if check["part"] == "Hotkeys")
    assert hotkeys["status"] == "ok", hotkeys
    assert "Bound: describe screen: Control Alt D;" in hotkeys["says"]
    assert "describe focus: Control Alt F" in hotkeys["says"]
    assert "pointer" not in hotkeys["says"]


def test_an_existing_config_gets_one_include_and_keeps_the_rest(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("SWAYSOCK", raising=False)
    mine = tmp_path / ".config/sway/config"
    mine.parent.mkdir(parents=True)
    mine.write_text("set $mod Mod4\nbindsym $mod+Return exec foot\n")
    bindings = {"describe_screen": "<ctrl>+<alt>+d", "describe_pointer": "<ctrl>+<alt>+p"}
    said = sway_keys.install(bindings, "/opt/ds/describe-screen")
    sway_keys.install(bindings, "/opt/ds/describe-screen")
    text = mine.read_text()
    assert text.startswith("set $mod Mod4\nbindsym $mod+Return exec foot\n")
    assert text.count("include ") == 1
    assert text.rstrip().endswith(f"include {tmp_path}/.config/sway/config.d/describe-screen")
    assert "the keys work from the next time sway starts" in said[-1]
    ours = (tmp_path / ".config/sway/config.d/describe-screen").read_text()
    assert "bindsym Ctrl+Mod1+d exec /opt/ds/describe-screen describe --target screen" in ours
    assert "Mod1+p" not in ours


def test_without_sways_default_config_nothing_is_made_that_would_lose_its_keys(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setattr(sway_keys, "SYSTEMS", (tmp_path / "etc/sway/config",))
    with pytest.raises(UserError, match="would lose sway's default keys") as raised:
        sway_keys.install({"describe_screen": "<ctrl>+<alt>+d"}, "/opt/ds/describe-screen")
    assert "Copy sway's default config to" in raised.value.fix
    assert not (tmp_path / ".config").exists()
