"""Shared test fixtures: a real X server (Xvfb) and real windows on it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ["ORT_DISABLE_TELEMETRY"] = "1"  # before anything imports onnxruntime (describe_screen sets it too)

from describe_screen import i18n
from describe_screen.virtual_display import start_xvfb

ROOT = Path(__file__).resolve().parent.parent

# Speech files are written as fast as speech is made, not in real time: only the tests that time the
# stop key need real-time pacing, and they ask for it (Speaker(paced=True), or this variable set to "0").
os.environ.setdefault("DESCRIBE_SCREEN_FAST_SPEECH_FILE", "1")
# The tests assert the English messages whatever the machine's locale; the language tests set their own.
os.environ["LANGUAGE"] = "en"


@pytest.fixture(scope="session")
def xvfb() -> Iterator[str]:
    """A session-wide virtual display; DISPLAY points at it while tests run."""
    proc, display = start_xvfb()
    old = os.environ.get("DISPLAY")
    os.environ["DISPLAY"] = display
    try:
        yield display
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if old is None:
            os.environ.pop("DISPLAY", None)
        else:
            os.environ["DISPLAY"] = old




class Window:
    """A real Tk window on the test display, showing known text (and optional buttons)."""

    def __init__(self, display: str, title: str, text: str, *, font_size: int = 20, bg: str = "white",
                 fg: str = "black", buttons: tuple[str, ...] = ()) -> None:
        env = dict(os.environ, DISPLAY=display)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "describe_screen.sample_window", title, text, str(font_size), bg, fg, *buttons],
            env=env, stdout=subprocess.PIPE, text=True,
        )
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.startswith("ready"):
            raise RuntimeError("test window did not open")
        self.window_id = int(line.split()[1])
        time.sleep(0.3)  # let the X server draw it

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def window(xvfb: str) -> Iterator:
    """Factory: window(title, text, ...) opens a real window; all are closed after the test."""
    opened: list[Window] = []

    def open_window(title: str, text: str, **kwargs) -> Window:
        w = Window(xvfb, title, text, **kwargs)
        opened.append(w)
        return w

    yield open_window
    for w in opened:
        w.close()


@pytest.fixture
def desktop(monkeypatch) -> Iterator:
    """A desktop locale (LANG alone, not the tests' LANGUAGE=en) that describe-screen reads afresh, as a daemon
    started in it does; afterwards the tests' locale again."""
    def use(lang: str) -> None:
        monkeypatch.setenv("LANG", lang)
        for variable in ("LANGUAGE", "LC_ALL", "LC_MESSAGES"):
            monkeypatch.delenv(variable, raising=False)
        i18n.use("auto")

    yield use
    monkeypatch.undo()
    i18n.use("auto")
