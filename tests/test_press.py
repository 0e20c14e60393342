"""Exploring a real app with no accessible names and pressing its controls, under Xvfb: the daemon with
the real text reader, real speech into a file, and real clicks through XTest into a Tk app that says
on its stdout what was pressed."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image
from test_capture import set_active

from describe_screen import press
from describe_screen.capture import Capture
from describe_screen.config import Config, SpeechConfig
from describe_screen.daemon import Daemon
from describe_screen.speech import Speaker

APP = Path(__file__).with_name("press_app.py")


class App:
    """tests/press_app.py on the test display; `said()` is what it printed since the last look."""

    def __init__(self, display: str, x: int, y: int) -> None:
        self.proc = subprocess.Popen([sys.executable, str(APP), str(x), str(y)], stdout=subprocess.PIPE, text=True,
                                     env={**os.environ, "DISPLAY": display})
        ready = (self.proc.stdout.readline() if self.proc.stdout else "").split()
        assert ready and ready[0] == "ready", ready
        self.window = int(ready[1])
        self.save = tuple(int(v) for v in ready[2:6])  # left, top, width, height on the screen
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout
        for line in self.proc.stdout:
            self.lines.put(line.strip())

    def said(self, wait: float = 0.5) -> list[str]:
        out = []
        try:
            while True:
                out.append(self.lines.get(timeout=wait))
                wait = 0.2
        except queue.Empty:
            return out

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def app(xvfb: str) -> Iterator:
    opened: list[App] = []

    def start(x: int = 100, y: int = 80) -> App:
        opened.append(App(xvfb, x, y))
        return opened[-1]

    yield start
    for a in opened:
        a.close()
    set_active(xvfb, None)


@pytest.fixture
def daemon_process(tmp_path: Path, xvfb: str) -> Iterator:
    """`describe-screen daemon` itself, with its hotkeys, on the test display."""
    from test_e2e import DaemonProcess

    started: list[DaemonProcess] = []

    def start(config: str = "") -> DaemonProcess:
        (tmp_path / "d").mkdir()
        started.append(DaemonProcess(tmp_path / "d", xvfb, config))
        return started[-1]

    yield start
    for d in started:
        d.stop()
        d.log.close()


def reading_daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Daemon]:
    """The daemon in this process with the text reader, its speech fast and into a file."""
    monkeypatch.setenv("DESCRIBE_SCREEN_DATA", str(tmp_path / "data"))
    config = Config()
    config.speech = SpeechConfig(rate=400, cues=False)
    config.describe.engine = "text"
    speaker = Speaker(config.speech, tmp_path / "speech.wav")
    yield Daemon(config, speaker)
    speaker.close()


@pytest.fixture
def daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Daemon]:
    yield from reading_daemon(tmp_path, monkeypatch)


def said(d: Daemon, request: dict) -> str:
    final = d.handle(request)
    assert final["event"] == "done", final
    return final["result"]["text"]


def refused(d: Daemon, request: dict) -> str:
    final = d.handle(request)
    assert final["event"] == "error", final
    return final["problem"]


def explore(d: Daemon, move: str, text: str = "") -> str:
    return said(d, {"cmd": "explore", "move": move, "text": text})


ELEMENTS = [
    "Heading, Monthly report, at the top left of the dialog.",
    "Field, Name, March, 1 of 1, at the top of the dialog.",
    "Column header, Item, column 1 of 2, on the left of the dialog.",
    "Column header, Price, column 2 of 2, in the middle of the dialog.",
    "Item, Apples, row 2 of 4, column 1 of 2.",
    "Price, 3 euros, row 2 of 4, column 2 of 2.",
    "Item, Pears, row 3 of 4, column 1 of 2.",
    "Price, 5 euros, row 3 of 4, column 2 of 2.",
    "Item, Plums, row 4 of 4, column 1 of 2.",
    "Price, 7 euros, row 4 of 4, column 2 of 2.",
    "Button, Save, 1 of 2, at the bottom of the dialog.",
    "Button, Details, 2 of 2, at the bottom right of the dialog.",
]


def test_exploring_an_app_without_accessible_names_speaks_each_element_in_order(daemon, app) -> None:
    app()
    said(daemon, {"cmd": "describe", "target": "screen"})
    before = len(daemon.speaker.spoken)
    heard = []
    for _ in ELEMENTS:  # a user listens to each before the next key (a key press cuts the speech short)
        heard.append(explore(daemon, "next"))
        daemon.speaker.wait_idle(30)
    assert heard == ELEMENTS
    assert daemon.speaker.spoken[before:] == ELEMENTS  # each one said (and shown in braille) as it is reached
    assert explore(daemon, "previous-row") == "Row 4 of 4: Item Plums, Price 7 euros."
    assert explore(daemon, "previous-row") == "Row 3 of 4: Item Pears, Price 5 euros."
    assert explore(daemon, "above") == "Item, Apples, row 2 of 4, column 1 of 2."
    assert explore(daemon, "next-field") == "No more fields after this."


def test_pressing_save_presses_the_apps_save_button_and_says_what_changed(daemon, app) -> None:
    window = app()
    said(daemon, {"cmd": "describe", "target": "screen"})
    assert explore(daemon, "find", "save") == "Button, Save, 1 of 2, at the bottom of the dialog."
    text = said(daemon, {"cmd": "activate"})
    assert window.said() == ["Save pressed"]
    assert text == "Pressing Button Save. The screen changed: Report saved."
    text = said(daemon, {"cmd": "activate", "click": "right"})  # the cursor stayed on Save
    assert window.said() == ["Save right-clicked"]
    assert text == "Right-clicking Button Save. Nothing changed on screen."


def test_pressing_a_button_that_opens_a_dialog_speaks_the_dialog_and_explores_it_next(daemon, app) -> None:
    window = app()
    said(daemon, {"cmd": "describe", "target": "screen"})
    assert explore(daemon, "next-button").startswith("Button, Save")
    assert explore(daemon, "next-button").startswith("Button, Details")
    text = said(daemon, {"cmd": "activate"})
    assert window.said() == ["Details pressed"]
    assert text == "Pressing Button Details. A window appeared, titled Details: Saved three reports today. Button OK."
    assert explore(daemon, "next-button") == "Button, OK, 1 of 1, at the bottom of the dialog."
    text = said(daemon, {"cmd": "activate"})  # the dialog was captured as a window: its own origin maps the click
    assert window.said() == ["OK pressed"]
    assert text.startswith("Pressing Button OK. The window Details closed. The screen changed: "), text


def test_a_window_capture_maps_clicks_to_the_right_screen_pixel(daemon, app, xvfb) -> None:
    from Xlib.display import Display

    window = app(x=410, y=230)
    set_active(xvfb, window.window)
    said(daemon, {"cmd": "describe", "target": "window"})
    assert daemon.scene is not None and daemon.scene.capture.origin == (410, 230)
    explore(daemon, "find", "Save")
    for how, heard in (("click", "Save pressed"), ("right", "Save right-clicked"), ("double", "Save double-clicked")):
        said(daemon, {"cmd": "activate", "click": how})
        assert heard in window.said(), how
        dpy = Display(xvfb)
        pointer = dpy.screen().root.query_pointer()
        dpy.close()
        left, top, width, height = window.save
        assert abs(pointer.root_x - (left + width / 2)) <= 3 and abs(pointer.root_y - (top + height / 2)) <= 3


def test_nothing_is_pressed_without_a_capture_or_a_chosen_element(daemon, app, tmp_path) -> None:
    window = app()
    assert refused(daemon, {"cmd": "activate"}).startswith("Nothing has been captured yet")
    Image.new("RGB", (200, 100), "white").save(tmp_path / "picture.png")
    said(daemon, {"cmd": "describe", "image": str(tmp_path / "picture.png")})
    assert refused(daemon, {"cmd": "activate"}).startswith("This capture is a picture, not the screen")
    said(daemon, {"cmd": "describe", "target": "screen"})
    assert refused(daemon, {"cmd": "activate"}).startswith("No element is chosen yet")
    assert window.said() == []


def test_an_element_off_the_screen_is_never_pressed(daemon, app) -> None:
    refuses_off_the_screen(daemon, app())


def refuses_off_the_screen(d: Daemon, window: App) -> None:
    """Save, captured as if beyond the screen's edge, is not pressed: it is said why."""
    said(d, {"cmd": "describe", "target": "screen"})
    explore(d, "find", "Save")
    assert d.scene is not None
    d.scene.capture.origin = (5000, 0)
    assert refused(d, {"cmd": "activate"}) == "Button Save is off the screen, so I will not press it."
    assert window.said() == []


def test_a_stale_capture_is_said_and_captured_again_before_anything_is_pressed(daemon, app, window) -> None:
    reports = app()
    recaptures_when_stale(daemon, reports, lambda: window("Backup", "Backup finished"))


def recaptures_when_stale(d: Daemon, reports: App, change: Callable[[], object]) -> None:
    """Save is found on a capture, then `change()` changes the screen (a notice pops up): the first press
    says so and captures again, the second presses."""
    said(d, {"cmd": "describe", "target": "screen"})
    explore(d, "find", "Save")
    change()
    text = said(d, {"cmd": "activate"})
    assert text.startswith("The screen changed since the capture, so I captured it again. Button, Save, 1 of 2, ")
    assert text.endswith(". Press again to press it.")
    assert reports.said() == []
    said(d, {"cmd": "activate"})
    assert reports.said() == ["Save pressed"]


def test_a_question_where_is_moves_the_cursor_there(daemon, app) -> None:
    app()
    said(daemon, {"cmd": "describe", "target": "screen"})
    assert said(daemon, {"cmd": "ask", "question": "Where is the Details button?"}) == (
        "Button, Details, 2 of 2, at the bottom right of the dialog.")
    assert explore(daemon, "previous") == "Button, Save, 1 of 2, at the bottom of the dialog."


def test_the_explore_keys_and_command_reach_the_running_daemon(app, daemon_process, tmp_path) -> None:
    reports = app()
    d = daemon_process("[speech]\ncues = false\nrate = 400\n")

    def key(keys: str) -> str:
        before = len(d.status()["spoken"])
        time.sleep(0.3)  # a person's next key press, not a key's auto-repeat
        d.press(keys)
        return " ".join(d.wait_idle(before)["spoken"][before:])

    key("ctrl+alt+d")
    assert key("ctrl+alt+b") == "Button, Save, 1 of 2, at the bottom of the dialog."
    assert key("ctrl+alt+b") == "Button, Details, 2 of 2, at the bottom right of the dialog."
    assert key("ctrl+alt+shift+b") == "Button, Save, 1 of 2, at the bottom of the dialog."
    assert key("ctrl+alt+g") == "No more table rows after this."
    assert key("ctrl+alt+shift+g") == "Row 4 of 4: Item Plums, Price 7 euros."
    assert key("ctrl+alt+k") == "Item, Pears, row 3 of 4, column 1 of 2."
    before = len(d.status()["spoken"])
    command = subprocess.run([sys.executable, "-m", "describe_screen", "explore", "find", "save"], env=d.env,
                             capture_output=True, text=True, timeout=60)
    assert command.stdout.strip() == "Button, Save, 1 of 2, at the bottom of the dialog.", command.stderr
    # the command returns with its words; the daemon may still be saying them when the next key comes
    assert d.wait_idle(before)["spoken"][before:] == ["Button, Save, 1 of 2, at the bottom of the dialog."]
    assert key("ctrl+alt+Return").startswith("Pressing Button Save.")
    assert reports.said() == ["Save pressed"]


def test_doctor_says_which_route_presses(xvfb, monkeypatch: pytest.MonkeyPatch) -> None:
    from describe_screen.commands.doctor import check_pressing

    assert "uses X11 XTest" in check_pressing(Config()).says
    monkeypatch.setenv("XDG_SESSION_TYPE", "wayland")  # a Wayland desktop of no known kind: the portal route
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-test")
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")
    check = check_pressing(Config())
    assert check.status == "note" and check.says.startswith("describe-screen cannot reach the desktop's message bus")
    assert "pointer control" in check.says


def test_a_scaled_capture_maps_its_pixels_back_to_screen_points() -> None:
    shot = Capture(Image.new("RGB", (400, 200)), "window", origin=(100, 50), scale=2.0)
    assert shot.region == (100, 50, 200, 100)
    assert shot.to_screen(0, 0) == (100, 50)
    assert shot.to_screen(201, 99) == (200, 99)


def test_a_capture_of_a_scaled_wayland_output_records_its_scale() -> None:
    from describe_screen.capture import _wayland

    class TwiceDesktop:  # grim -g on an output scaled 2x gives twice the pixels of the region asked for
        def grab(self, rect: tuple[int, int, int, int]) -> Image.Image:
            return Image.new("RGB", (rect[2] * 2, rect[3] * 2))

    shot = _wayland._shot(TwiceDesktop(), (1920, 0, 640, 360), "window")  # type: ignore[arg-type]
    assert shot.scale == 2.0 and shot.region == (1920, 0, 640, 360)
    assert shot.to_screen(640, 360) == (2240, 180)  # the middle of the picture is the middle of the window


def test_a_blinking_caret_is_no_change_but_a_new_box_is() -> None:
    before = Image.new("RGB", (300, 200), "white")
    caret = before.copy()
    caret.paste((0, 0, 0), (50, 50, 52, 70))
    assert press.changed(before, caret) is None
    box = before.copy()
    box.paste((0, 0, 0), (100, 40, 200, 90))
    assert press.changed(before, box) == (100, 40, 200, 90)
    assert press.changed(before, box, ignore=(95, 35, 205, 95)) is None
