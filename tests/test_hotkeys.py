"""Hotkey strings are checked without a display; real key presses on Xvfb fire press and release."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import time

import pytest

from describe_screen.errors import UserError
from describe_screen.hotkeys import HotkeyListener
from describe_screen.keys import parse_hotkey


@pytest.mark.parametrize(("combo", "normal"), [
    ("<ctrl>+<alt>+d", "<ctrl>+<alt>+d"),
    ("<Alt>+<CTRL>+D", "<ctrl>+<alt>+d"),
    ("<shift>+<ctrl_l>+<F5>", "<ctrl>+<shift>+<f5>"),
    ("<f9>", "<f9>"),
    ("<cmd>++", "<cmd>++"),
    ("<ctrl>+<alt>+<65>", "<ctrl>+<alt>+<65>"),
])
def test_parse_hotkey_normalises(combo: str, normal: str) -> None:
    assert parse_hotkey(combo, "hotkeys.describe_screen") == normal


@pytest.mark.parametrize(("combo", "says"), [
    ("", "empty"),
    ("<ctrl>+", "ends with +"),
    ("<ctrl>+<alt>+<foo>", "<foo> is not a key name"),
    ("ctrl+alt+d", "like <ctrl>"),
    ("d", "add a modifier"),
    ("<ctrl>+<alt>", "only modifier keys"),
    ("<ctrl>+<control>+d", "<control> is not a key name"),
    ("<ctrl>+<ctrl_r>+d", "appears twice"),
    ("<ctrl>+d+d", "appears twice"),
])
def test_parse_hotkey_refuses_with_key_name_part_and_example(combo: str, says: str) -> None:
    with pytest.raises(UserError) as err:
        parse_hotkey(combo, "hotkeys.ask")
    assert "hotkeys.ask" in err.value.problem
    assert says in err.value.problem
    assert "<ctrl>+<alt>+d" in err.value.fix


def test_parse_hotkey_needs_no_display_and_no_pynput() -> None:
    code = ("import sys; from describe_screen.keys import parse_hotkey; "
            "print(parse_hotkey('<alt>+<ctrl>+w', 'k'), 'pynput' in sys.modules, 'Xlib' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30)
    assert out.stdout.split() == ["<ctrl>+<alt>+w", "False", "False"]


def xdotool(display: str, *args: str) -> None:
    subprocess.run(["xdotool", *args], check=True, timeout=10, env={"DISPLAY": display, "PATH": "/usr/bin:/bin"})


def collect(events: queue.Queue, count: int, timeout: float = 5.0) -> list[tuple[str, str]]:
    got, deadline = [], time.monotonic() + timeout
    while len(got) < count and (left := deadline - time.monotonic()) > 0:
        try:
            got.append(events.get(timeout=left))
        except queue.Empty:
            break
    return got


@pytest.fixture
def listening(xvfb):
    """A started listener for two actions; yields the event queue of (kind, action)."""
    events: queue.Queue = queue.Queue()
    listener = HotkeyListener({"describe_screen": "<ctrl>+<alt>+d", "ask": "<ctrl>+<alt>+a", "copy": ""},
                              lambda a: events.put(("press", a)), lambda a: events.put(("release", a)))
    listener.start()
    yield events
    listener.stop()


def test_hotkey_fires_on_real_key_press(xvfb, listening) -> None:
    xdotool(xvfb, "key", "ctrl+alt+d")
    assert collect(listening, 2) == [("press", "describe_screen"), ("release", "describe_screen")]
    xdotool(xvfb, "key", "alt+d")  # not the combo
    xdotool(xvfb, "key", "d")
    assert collect(listening, 1, timeout=0.5) == []


def test_held_combo_reports_press_then_release(xvfb, listening) -> None:
    xdotool(xvfb, "keydown", "ctrl+alt+a")
    assert collect(listening, 1) == [("press", "ask")]
    time.sleep(0.3)
    assert listening.empty()  # still held: no release yet
    xdotool(xvfb, "keyup", "ctrl+alt+a")
    assert collect(listening, 1) == [("release", "ask")]


def test_key_auto_repeat_does_not_end_a_held_combo(xvfb, listening) -> None:
    xdotool(xvfb, "keydown", "ctrl+alt+a")
    for _ in range(3):  # what X11 auto-repeat sends while a key is held down
        xdotool(xvfb, "keyup", "a", "keydown", "a")
    xdotool(xvfb, "keyup", "ctrl+alt+a")
    assert collect(listening, 3, timeout=1.5) == [("press", "ask"), ("release", "ask")]


def test_failing_callback_does_not_stop_the_listener(xvfb) -> None:
    seen: list[str] = []

    def on_press(action: str) -> None:
        seen.append(action)
        raise RuntimeError("callback bug")

    listener = HotkeyListener({"describe_screen": "<ctrl>+<alt>+d"}, on_press)
    listener.start()
    try:
        for _ in range(2):
            xdotool(xvfb, "key", "ctrl+alt+d")
            time.sleep(0.3)
    finally:
        listener.stop()
    assert seen == ["describe_screen", "describe_screen"]


def test_stop_releases_a_held_combo(xvfb) -> None:
    events: queue.Queue = queue.Queue()
    listener = HotkeyListener({"ask": "<ctrl>+<alt>+a"}, lambda a: events.put(("press", a)),
                              lambda a: events.put(("release", a)))
    listener.start()
    try:
        xdotool(xvfb, "keydown", "ctrl+alt+a")
        assert collect(events, 1) == [("press", "ask")]
        listener.stop()
        assert collect(events, 1) == [("release", "ask")]
    finally:
        xdotool(xvfb, "keyup", "ctrl+alt+a")


def test_start_without_display_wayland_or_record_is_explained(monkeypatch) -> None:
    listener = HotkeyListener({"describe_screen": "<ctrl>+<alt>+d"}, print)
    monkeypatch.setenv("XDG_SESSION_TYPE", "wayland")
    with pytest.raises(UserError, match="Wayland") as err:
        listener.start()
    assert "keyboard settings" in err.value.fix
    monkeypatch.delenv("XDG_SESSION_TYPE")
    monkeypatch.delenv("DISPLAY", raising=False)
    with pytest.raises(UserError, match="DISPLAY"):
        listener.start()
    read_fd, write_fd = os.pipe()
    server = subprocess.Popen(["Xvfb", "-displayfd", str(write_fd), "-nolisten", "tcp", "-extension", "RECORD"],
                              pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        monkeypatch.setenv("DISPLAY", f":{pipe.readline().strip()}")
    try:
        with pytest.raises(UserError, match="RECORD") as err:
            listener.start()
        assert "+extension RECORD" in err.value.fix
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_a_quick_second_press_is_not_taken_for_auto_repeat_when_the_dispatcher_is_late() -> None:
    """The events' own times decide: on a busy machine the dispatcher may find both presses already
    queued, and the second one is still the user's, while a press 30 ms after the release is a repeat."""
    heard: list[str] = []
    listener = HotkeyListener({"explore_next": "<ctrl>+<alt>+n"}, lambda a: heard.append(f"press {a}"),
                              lambda a: heard.append(f"release {a}"))
    for event in (("press", 0.0), ("release", 0.05), ("press", 0.35), ("release", 0.4), ("press", 0.43),
                  ("release", 0.6)):
        listener._events.put((event[0], "explore_next", 100 + event[1]))
    listener._events.put(None)
    listener._dispatch()  # all at once, as a dispatcher that was kept waiting finds them
    assert heard == ["press explore_next", "release explore_next", "press explore_next", "release explore_next"]
