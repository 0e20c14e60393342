"""Wayland end to end, with real parts: headless sway, xdg-desktop-portal(-wlr) and the accessibility bus on
the session's own D-Bus, a native GTK window, the daemon inside that session, `wtype` key presses.

What is asserted is what the user hears: the daemon's spoken utterances (its speech goes to a WAV).
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from wayland_session import HeadlessSway, captures

from describe_screen import ipc, sway_keys, wayland_keys
from describe_screen.capture import session

TEXT = "Quarterly report ready for review"
PORTAL_ASKS = "about to ask whether describe-screen may take screenshots"


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


class SessionDaemon:
    """`describe-screen daemon --speech-file` started inside the Wayland session, as its autostart would."""

    def __init__(self, desktop: HeadlessSway, config: str) -> None:
        self.desktop = desktop
        (desktop.base / "config.toml").write_text("[speech]\ncues = false\n" + config, encoding="utf-8")
        self.proc = desktop.start([sys.executable, "-m", "describe_screen", "daemon", "--speech-file",
                                   str(desktop.base / "speech.wav")])
        self.client = ipc.Client(Path(desktop.env["DESCRIBE_SCREEN_SOCKET"]), timeout=120)
        deadline = time.time() + 180
        while True:
            try:
                status = self.status()
                if "ready" in " ".join(status["spoken"]) and not status["speaking"]:
                    break
            except Exception:  # not listening yet
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                raise AssertionError(f"daemon did not start:\n{self.log()}")
            time.sleep(0.3)

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in self.desktop.base.glob("python*.log"))

    def status(self) -> dict:
        return self.client.request({"cmd": "status"})["result"]

    def said_after(self, before: dict, timeout: float = 180) -> str:
        """What was spoken since the status `before`, once the daemon is idle and quiet again. The status
        lists only the last 20 utterances, so the new ones are what follows the old list's overlap."""
        deadline = time.time() + timeout
        old = before["spoken"]
        while time.time() < deadline:
            status = self.status()
            new = status["spoken"]
            if new != old and not status["busy"] and not status["speaking"]:
                shift = next(d for d in range(len(old) + 1) if old[d:] == new[:len(old) - d])
                return " ".join(new[len(old) - shift:])
            time.sleep(0.3)
        raise AssertionError(f"daemon stayed busy: {self.status()}\n{self.log()}")


@pytest.fixture(scope="module")
def desktop() -> Iterator[HeadlessSway]:
    """sway with the describe key bound to the describe-screen command, and a GTK window with a focused button."""
    # the lines `describe-screen keys show --desktop sway` prints for these keys
    keys = {"describe_screen": "<ctrl>+<alt>+d", "ask": "<ctrl>+<alt>+a"}
    program = f"{sys.executable} -m describe_screen"
    config = tuple(sway_keys.sway_line(combo, command) for _, combo, command in wayland_keys.commands(keys, program))
    with HeadlessSway(config, portals=("wlr", "gtk")) as sway:
        sway.gtk_window("New message", TEXT, "Cancel", "Send")
        yield sway


@pytest.fixture(scope="module")
def daemon(desktop: HeadlessSway) -> SessionDaemon:
    from test_microphone import speak

    question = speak(desktop.base, "Is there a Cancel button?")  # stands in for the microphone
    return SessionDaemon(desktop, f'rate = 140\n[capture]\nwayland = "portal"\n[voice]\nmicrophone = "{question}"\n')


def test_session_is_picked_from_the_environment(desktop, monkeypatch):
    for key in ("WAYLAND_DISPLAY", "XDG_SESSION_TYPE", "XDG_CURRENT_DESKTOP", "SWAYSOCK"):
        monkeypatch.setenv(key, desktop.env[key])
    now = session.current()
    assert (now.kind, now.compositor, now.wlroots) == ("wayland", "sway", True)
    monkeypatch.delenv("WAYLAND_DISPLAY")
    monkeypatch.delenv("XDG_SESSION_TYPE")
    assert session.current().kind == "x11"  # looked at anew when the environment changes


def test_ready_says_how_the_ask_key_works_on_this_desktop(daemon):
    spoken = " ".join(daemon.status()["spoken"])
    ready = spoken[spoken.index("describe-screen is ready."):]
    assert "press the ask key once to start a question and again to send it" in ready, ready
    assert "Press Control Alt D to describe the screen." in ready  # the key sway really has


def test_read_through_the_portal_speaks_the_window_words(daemon):
    before = daemon.status()
    final = daemon.client.request({"cmd": "read", "target": "screen"})
    said = daemon.said_after(before)
    assert final["event"] == "done", final
    assert PORTAL_ASKS in said  # the first portal request is announced before the desktop asks
    assert {"quarterly", "report", "ready", "review"} <= words(said), said
    assert "blank" not in said.lower()


def test_describe_through_the_portal_speaks_the_window_words(daemon):
    before = daemon.status()
    daemon.client.request({"cmd": "describe", "target": "screen"})
    said = daemon.said_after(before)
    assert {"quarterly", "report", "cancel", "send"} <= words(said), said
    assert PORTAL_ASKS not in said  # only the first time


def test_key_bound_in_sway_describes_through_the_daemon(daemon, desktop):
    before = daemon.status()
    typed = desktop.run(["wtype", "-M", "ctrl", "-M", "alt", "-k", "d", "-m", "alt", "-m", "ctrl"])
    assert typed.returncode == 0, typed.stderr
    said = daemon.said_after(before)
    assert {"quarterly", "report"} <= words(said), said
    assert daemon.status()["capture"] == "screen"


def test_ask_key_bound_in_sway_is_press_to_start_press_again_to_send(daemon, desktop):
    """A desktop key binding runs a command only on key down: the first press starts the question,
    the second sends it, and the answer is spoken."""
    before = daemon.status()
    for _ in range(2):
        typed = desktop.run(["wtype", "-M", "ctrl", "-M", "alt", "-k", "a", "-m", "alt", "-m", "ctrl"])
        assert typed.returncode == 0, typed.stderr
        time.sleep(2.0)  # the recording runs between the presses
    said = daemon.said_after(before)
    assert daemon.status()["questions"] >= 1, said  # the question was heard and answered about the screen
    assert {"yes", "cancel"} <= words(said), said


def test_focus_speaks_the_focused_buttons_role_and_name(daemon):
    before = daemon.status()
    final = daemon.client.request({"cmd": "describe", "target": "focus"})
    said = daemon.said_after(before)
    assert final["event"] == "done", final
    assert "A push button, 'Send', in the window 'New message'." in said, said
    assert "Nearby: Cancel." in said
    # sway says where the window is, so the crop is made from it: no "whole screen" excuse
    assert "whole screen" not in said
    assert daemon.status()["capture"] == "focus"


def test_pointer_on_wayland_says_why_and_suggests_focus(daemon):
    before = daemon.status()
    final = daemon.client.request({"cmd": "describe", "target": "pointer"})
    said = daemon.said_after(before)
    assert final["event"] == "error"
    assert "does not tell programs where the pointer is" in said and "focus" in said


def test_screencopy_window_and_focus_crops(desktop):
    """grim (wlroots screencopy) and sway's window rectangle, without the daemon."""
    screen, window, focused = captures(desktop.env, "screen", "window", "focus")
    assert screen["size"] == [1280, 720] and screen["colours"] > 2
    assert window["title"] == "New message" and window["size"] == [1280, 720]
    # the Send button is about 100x40 at the lower left: the crop is that plus a small margin
    assert focused["size"][0] < 200 and focused["size"][1] < 100, focused
    assert focused["origin"][1] > 500 and focused["context"].startswith("A push button, 'Send'")


def test_missing_portal_is_one_plain_sentence_not_blank(desktop, tmp_path):
    """A session bus whose xdg-desktop-portal offers no screenshot back-end: one spoken sentence."""
    import subprocess

    bare = desktop.runtime / "bare-bus"
    (desktop.base / "no-portals").mkdir(exist_ok=True)
    desktop.start(["dbus-daemon", "--session", "--nofork", "--nosyslog", f"--address=unix:path={bare}"],
                  XDG_DESKTOP_PORTAL_DIR=str(desktop.base / "no-portals"))
    deadline = time.time() + 30
    while not bare.exists() and time.time() < deadline:
        time.sleep(0.05)
    config = tmp_path / "config.toml"
    config.write_text('[speech]\ncues = false\n[capture]\nwayland = "portal"\n', encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "describe_screen", "describe", "--json", "--speech-file", str(tmp_path / "s.wav")],
        env={**desktop.env, "DBUS_SESSION_BUS_ADDRESS": f"unix:path={bare}", "DESCRIBE_SCREEN_CONFIG": str(config),
             "DESCRIBE_SCREEN_DATA": str(tmp_path / "data")},
        capture_output=True, text=True, timeout=300)
    out = done.stdout + done.stderr
    assert "this desktop offers no screenshot portal" in out, out
    assert "blank" not in out.lower()
    assert done.returncode != 0


def test_doctor_names_the_wayland_path_and_push_to_talk(desktop, tmp_path):
    import json

    done = desktop.run([sys.executable, "-m", "describe_screen", "doctor", "--json"], timeout=300,
                       DESCRIBE_SCREEN_CONFIG=str(tmp_path / "none.toml"))  # default settings: grim on sway
    checks = {check["part"]: check for check in json.loads(done.stdout)}
    assert "a Wayland session (sway)" in checks["Display"]["says"]
    assert "grim" in checks["Display"]["says"] and "pointer position is not available" in checks["Display"]["says"]
    assert checks["Screen capture"]["status"] == "ok" and "blank" not in checks["Screen capture"]["says"]
    assert checks["Focused object"]["status"] == "ok"
    hotkeys = checks["Hotkeys"]  # what sway has loaded: two of the keys, the others not yet
    assert hotkeys["status"] == "note" and "press it again to send it" in hotkeys["says"]
    assert "Bound: describe screen: Control Alt D; ask: Control Alt A." in hotkeys["says"], hotkeys
    assert "Not bound: describe window, read text" in hotkeys["says"] and "pointer" not in hotkeys["says"]
    assert hotkeys["fix"].endswith(" keys install") and hotkeys["fix"].startswith("Run: /")
