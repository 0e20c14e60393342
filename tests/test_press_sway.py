"""Exploring and pressing on sway: headless sway with its output scaled 2x (capture pixels are twice its
logical coordinates), a native GTK app whose controls have no accessible names, grim for the pixels,
and real clicks through the wlroots virtual-pointer protocol. What is asserted is what the user hears
and what the app says was pressed."""

from __future__ import annotations

import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import test_press
from test_press import explore, said
from test_wayland import SessionDaemon
from wayland_session import SYSTEM_PYTHON, HeadlessSway

from describe_screen import press, sway_keys, wayland_keys
from describe_screen.config import Config
from describe_screen.daemon import Daemon
from describe_screen.errors import UserError

APP = Path(__file__).with_name("press_app_gtk.py")
KEYS = {"describe_screen": "<ctrl>+<alt>+d", "explore_next_button": "<ctrl>+<alt>+b", "press": "<ctrl>+<alt>+<enter>"}
WHERE = (300, 150)  # where sway puts the app's window, in logical coordinates
SESSION = ("WAYLAND_DISPLAY", "XDG_RUNTIME_DIR", "XDG_SESSION_TYPE", "XDG_CURRENT_DESKTOP", "SWAYSOCK",
           "DBUS_SESSION_BUS_ADDRESS")


@pytest.fixture(scope="module")
def desktop() -> Iterator[HeadlessSway]:
    """sway on a 2560x1440 output scaled 2x (1280x720 logical), the app's window floating at WHERE, the
    describe, next-button and press keys bound to the describe-screen command."""
    program = f"{sys.executable} -m describe_screen"
    keys = tuple(sway_keys.sway_line(combo, command) for _, combo, command in wayland_keys.commands(KEYS, program))
    config = ("output HEADLESS-1 resolution 2560x1440 scale 2",
              f'for_window [title="^Monthly report$"] floating enable, move position {WHERE[0]} {WHERE[1]}', *keys)
    with HeadlessSway(config) as sway:
        yield sway


class App(test_press.App):
    """tests/press_app_gtk.py in the sway session; `said()` is what it printed since the last look."""

    def __init__(self, desktop: HeadlessSway) -> None:
        from press_app import draw

        self.pictures = Path(tempfile.mkdtemp(prefix="press-app-"))
        for words in ("Save", "Details", "OK"):
            draw(words, self.pictures)
        self.proc = subprocess.Popen([SYSTEM_PYTHON, str(APP), str(self.pictures)], env=desktop.env,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                     start_new_session=True)
        assert self.proc.stdout and self.proc.stdout.readline().strip() == "ready"
        time.sleep(0.5)  # the compositor shows its next frame
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()


@pytest.fixture
def app(desktop: HeadlessSway) -> Iterator[App]:
    started = App(desktop)
    yield started
    started.close()


@pytest.fixture
def daemon(desktop: HeadlessSway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Daemon]:
    """The daemon in this process, inside the sway session (grim for pixels, sway's IPC for windows)."""
    for name in SESSION:
        monkeypatch.setenv(name, desktop.env[name])
    monkeypatch.delenv("DISPLAY", raising=False)
    yield from test_press.reading_daemon(tmp_path, monkeypatch)


def test_on_sway_pressing_save_presses_the_apps_save_button_and_says_what_changed(daemon, app) -> None:
    said(daemon, {"cmd": "describe", "target": "screen"})
    assert daemon.scene is not None and daemon.scene.capture.scale == 2.0  # 2560x1440 pixels for 1280x720
    assert explore(daemon, "find", "save").startswith("Button, Save, 1 of 2, ")
    text = said(daemon, {"cmd": "activate"})
    assert app.said() == ["Save pressed"]
    assert text == "Pressing Button Save. The screen changed: Report saved."
    for how, heard in (("right", "Save right-clicked"), ("double", "Save double-clicked")):
        said(daemon, {"cmd": "activate", "click": how})  # the cursor stayed on Save
        assert heard in app.said(), how


def test_on_sway_pressing_a_button_that_opens_a_dialog_speaks_the_dialog(daemon, app) -> None:
    said(daemon, {"cmd": "describe", "target": "window"})
    shot = daemon.scene.capture if daemon.scene else None
    assert shot is not None and shot.origin == WHERE and shot.scale == 2.0  # a window's own origin, scaled
    assert explore(daemon, "next-button").startswith("Button, Save")
    assert explore(daemon, "next-button").startswith("Button, Details")
    text = said(daemon, {"cmd": "activate"})
    assert app.said() == ["Details pressed"]
    assert text == "Pressing Button Details. A window appeared, titled Details: Saved three reports today. Button OK."
    assert explore(daemon, "next-button").startswith("Button, OK, 1 of 1")
    text = said(daemon, {"cmd": "activate"})
    assert app.said() == ["OK pressed"]
    assert text.startswith("Pressing Button OK. The window Details closed."), text


def test_on_sway_an_element_off_the_screen_is_never_pressed(daemon, app) -> None:
    test_press.refuses_off_the_screen(daemon, app)


def test_on_sway_a_stale_capture_is_said_and_captured_again_before_anything_is_pressed(daemon, app, desktop) -> None:
    notices: list[subprocess.Popen] = []
    try:
        test_press.recaptures_when_stale(daemon, app, lambda: notices.append(desktop.gtk_window("Backup", "Done")))
    finally:
        for notice in notices:
            notice.terminate()
            notice.wait(timeout=10)


def test_the_keys_bound_in_sway_describe_explore_and_press(desktop, app) -> None:
    d = SessionDaemon(desktop, "rate = 400\n")
    try:
        def key(*combo: str) -> str:
            before = d.status()
            *mods, last = combo
            typed = desktop.run(["wtype", *(a for m in mods for a in ("-M", m)), "-k", last,
                                 *(a for m in reversed(mods) for a in ("-m", m))])
            assert typed.returncode == 0, typed.stderr
            return d.said_after(before)

        assert "Monthly report" in key("ctrl", "alt", "d")
        assert key("ctrl", "alt", "b").startswith("Button, Save, 1 of 2")
        assert key("ctrl", "alt", "Return").startswith("Pressing Button Save.")
        assert app.said() == ["Save pressed"]
    finally:
        d.proc.terminate()
        d.proc.wait(timeout=30)


def test_doctor_says_sway_presses_through_the_virtual_pointer(desktop, monkeypatch: pytest.MonkeyPatch) -> None:
    from describe_screen.commands.doctor import check_pressing

    for name in SESSION:
        monkeypatch.setenv(name, desktop.env[name])
    check = check_pressing(Config())
    assert check.status == "ok", check.says
    assert "uses the wlroots virtual-pointer protocol" in check.says
    assert "there is nothing to allow" in check.says
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-nothing-here")  # no compositor answers on that socket
    with pytest.raises(UserError, match="This Wayland desktop cannot be reached"):
        press.route()
