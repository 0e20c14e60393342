"""The `focus` target on X11: a GTK window on Xvfb with a focused button, read through the accessibility
bus (AT-SPI) on a private D-Bus session bus. On X11 the object's screen coordinates are right, so the
picture is cropped to the button.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from wayland_session import GTK_WINDOW, SYSTEM_PYTHON, captures, end_all


@pytest.fixture(scope="module")
def focused_window(xvfb: str) -> Iterator[dict[str, str]]:
    """A private session bus, and a GTK window on it whose 'Send' button has the keyboard focus."""
    folder = Path(tempfile.mkdtemp(prefix="dscreen-focus-"))
    bus = f"unix:path={folder}/bus"
    env = {**os.environ, "DISPLAY": xvfb, "DBUS_SESSION_BUS_ADDRESS": bus, "GDK_BACKEND": "x11"}
    for name in ("WAYLAND_DISPLAY", "XDG_SESSION_TYPE", "NO_AT_BRIDGE"):
        env.pop(name, None)
    procs = [subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--nosyslog", f"--address={bus}"],
                              env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        deadline = time.time() + 30
        while not (folder / "bus").exists():
            assert time.time() < deadline, "the session bus did not start"
            time.sleep(0.05)
        window = subprocess.Popen([SYSTEM_PYTHON, str(GTK_WINDOW), "New message", "Hello from X11", "Cancel", "Send"],
                                  env=env, stdout=subprocess.PIPE, text=True, start_new_session=True)
        procs.append(window)
        assert window.stdout and window.stdout.readline().startswith("ready")
        # no window manager on Xvfb: give the window the keyboard focus the way one would
        found = subprocess.run(["xdotool", "search", "--sync", "--name", "New message"], env=env,
                               capture_output=True, text=True, timeout=30).stdout.split()
        subprocess.run(["xdotool", "windowfocus", "--sync", found[0]], env=env, check=True, timeout=30)
        time.sleep(0.5)
        yield env
    finally:
        end_all(procs, f"DBUS_SESSION_BUS_ADDRESS={bus}")
        subprocess.run(["rm", "-rf", str(folder)], check=False)


def test_focus_on_x11_is_cropped_to_the_button(focused_window):
    [shot] = captures(focused_window, "focus")
    assert shot["context"] == "A push button, 'Send', in the window 'New message'. Nearby: Cancel."
    width, height = shot["size"]
    assert 60 < width < 200 and 30 < height < 100, shot  # the button and a small margin
    assert shot["origin"][0] > 100 and shot["origin"][1] > 300, shot  # lower left of the window, not (0, 0)


def test_focus_is_spoken_with_its_role_and_name(focused_window, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text("[speech]\ncues = false\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "describe_screen", "describe", "--target", "focus", "--json",
         "--speech-file", str(tmp_path / "speech.wav")],
        env={**focused_window, "DESCRIBE_SCREEN_CONFIG": str(config), "DESCRIBE_SCREEN_DATA": str(tmp_path / "d"),
             "DESCRIBE_SCREEN_SOCKET": str(tmp_path / "none.sock")},
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    text = json.dumps(result)
    assert "A push button, 'Send', in the window 'New message'." in text, text
    assert "whole screen" not in text and (tmp_path / "speech.wav").stat().st_size > 10_000
