"""Braille through a real BRLTTY (BrlAPI server) whose braille driver is BRLTTY's Virtual display: the
test is the display, reading the text BRLTTY shows on it and pressing its keys."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from describe_screen.config import SpeechConfig
from describe_screen.screenreader.braille import connect
from describe_screen.speech import Speaker


class VirtualDisplay:
    """BRLTTY with the Virtual driver listening on a socket; this object is the 40-cell display."""

    opened = 0

    def __init__(self, folder: Path, cells: int = 40) -> None:
        folder.mkdir()
        VirtualDisplay.opened += 1
        self.host = f":{60 + (os.getpid() + VirtualDisplay.opened) % 180}"
        path = folder / "display.sock"
        brltty = shutil.which("brltty", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin") or "brltty"
        self.brltty = subprocess.Popen(
            [brltty, "-n", "-f", "/dev/null", "-b", "vr", "-d", f"server:{path}", "-x", "no", "-s", "no",
             "-A", f"auth=none,host={self.host}", "-W", str(folder), "-P", str(folder / "pid"), "-e"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while not path.exists():
            assert time.monotonic() < deadline, "brltty did not start"
            time.sleep(0.05)
        self.socket = socket.socket(socket.AF_UNIX)
        self.socket.connect(str(path))
        self.socket.sendall(f"cells {cells}\n".encode())
        self._received: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.wait_for(lambda text: text == "no screen")  # BRLTTY's own window (after its greeting)
        self._wait_until_keys_reach_clients(deadline)

    def _wait_until_keys_reach_clients(self, deadline: float) -> None:
        """For its first seconds BRLTTY keeps the display's keys to itself: probe until a client gets one."""
        from describe_screen.screenreader import import_system

        brlapi = import_system("brlapi")
        while True:
            assert time.monotonic() < deadline + 20, "BrlAPI never passed a key on"
            try:
                probe = brlapi.Connection(self.host.encode())
            except Exception:  # its BrlAPI server is not listening yet
                time.sleep(0.1)
                continue
            probe.enterTtyModeWithPath([])
            self.press("HOME")
            key = probe.readKeyWithTimeout(300)
            probe.leaveTtyMode()
            probe.closeConnection()
            if key is not None:
                return

    def _read(self) -> None:
        buffer = b""
        while chunk := _recv(self.socket):
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            self._received += [line.decode(errors="replace") for line in lines]

    def shown(self) -> str:
        """The text on the display now."""
        visual = [m.group(1) for line in self._received if (m := re.match(r'Visual "(.*)"', line))]
        return visual[-1].rstrip() if visual else ""

    def wait_for(self, condition, timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        while not condition(self.shown()):
            assert time.monotonic() < deadline, f"display shows {self.shown()!r}"
            time.sleep(0.02)
        return self.shown()

    def press(self, command: str) -> None:
        time.sleep(0.3)  # a person's pace: keys sent a few milliseconds apart were seen to get lost
        self.socket.sendall(f"{command}\n".encode())

    def close(self) -> None:
        self.brltty.kill()  # it may ignore SIGTERM while a display is connected
        self.brltty.wait(timeout=10)


def _recv(connection: socket.socket) -> bytes:
    try:
        return connection.recv(4096)
    except OSError:  # BRLTTY was stopped
        return b""


@pytest.fixture
def display(tmp_path: Path, monkeypatch) -> Iterator[VirtualDisplay]:
    d = VirtualDisplay(tmp_path / "brltty")
    monkeypatch.setenv("BRLAPI_HOST", d.host)
    yield d
    d.close()


def test_first_sentence_in_braille_then_the_rest_on_request_then_back_to_the_screen_reader(display, tmp_path):
    own_screen = display.shown()  # BRLTTY's own window (no screen driver here): what is there without us
    speaker = Speaker(SpeechConfig(rate=400, cues=False), tmp_path / "s.wav", paced=False, braille=True)
    try:
        assert speaker.braille() == "Virtual braille display, 40 cells"
        speaker.say("Two buttons: OK and Cancel. The dialog asks to save the report before closing.")
        assert speaker.wait_idle(20)
        assert display.wait_for(lambda text: text == "Two buttons: OK and Cancel.")
        display.press("FWINRT")  # pan right: the next sentence, a display-width at a time
        assert display.wait_for(lambda text: text.startswith("The dialog")) == "The dialog asks to save the report"
        display.press("FWINRT")
        assert display.wait_for(lambda text: text == "before closing.")
        display.press("FWINLT")
        display.wait_for(lambda text: text.startswith("The dialog"))
        display.press("LNUP")  # any other key: the display goes back to the screen reader at once ...
        time.sleep(0.5)
        display.press("FWINLT")  # ... so this key is BRLTTY's, which redraws its own window
        display.wait_for(lambda text: text == own_screen)
    finally:
        speaker.close()


def test_stop_gives_the_display_back(display, tmp_path):
    own_screen = display.shown()
    speaker = Speaker(SpeechConfig(rate=400, cues=False), tmp_path / "s.wav", paced=False, braille=True)
    try:
        assert speaker.braille()
        speaker.say("A long answer starts here.")
        display.wait_for(lambda text: text == "A long answer starts here.")
        speaker.stop()
        time.sleep(0.3)
        display.press("FWINLT")  # BRLTTY's again: it redraws its own window
        display.wait_for(lambda text: text == own_screen)
    finally:
        speaker.close()


def test_no_braille_without_brltty(monkeypatch, tmp_path):
    monkeypatch.setenv("BRLAPI_HOST", ":250")  # nothing listens there
    assert connect() is None
    speaker = Speaker(SpeechConfig(rate=400, cues=False), tmp_path / "s.wav", paced=False, braille=True)
    speaker.close()
    assert speaker.braille() == ""
