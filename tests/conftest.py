"""Shared test fixtures: a real X server (Xvfb) and real windows on it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def start_xvfb(size: str = "1280x720x24") -> tuple[subprocess.Popen, str]:
    """Start Xvfb on a free display number (Xvfb picks it and reports it through -displayfd)."""
    if not shutil.which("Xvfb"):
        pytest.fail("Xvfb is missing: run installer/test.sh, which installs it.")
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", size, "-nolisten", "tcp", "+extension", "RECORD"],
        pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        number = pipe.readline().strip()
    if not number:
        proc.kill()
        pytest.fail("Xvfb did not start")
    return proc, f":{number}"


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


WINDOW_SCRIPT = r"""
import sys, tkinter as tk
title, text, font_size, bg, fg = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
root = tk.Tk()
root.title(title)
root.configure(bg=bg)
root.geometry("+0+0")
for line in text.split("\n"):
    tk.Label(root, text=line, font=("DejaVu Sans", font_size), bg=bg, fg=fg, anchor="w").pack(fill="x", padx=20, pady=6)
buttons = [b for b in sys.argv[6:] if b]
if buttons:
    row = tk.Frame(root, bg=bg)
    row.pack(pady=12)
    for b in buttons:
        tk.Button(row, text=b, font=("DejaVu Sans", font_size)).pack(side="left", padx=10)
root.update()
print("ready", root.winfo_id(), flush=True)
root.mainloop()
"""


class Window:
    """A real Tk window on the test display, showing known text (and optional buttons)."""

    def __init__(self, display: str, title: str, text: str, *, font_size: int = 20, bg: str = "white",
                 fg: str = "black", buttons: tuple[str, ...] = ()) -> None:
        env = dict(os.environ, DISPLAY=display)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WINDOW_SCRIPT, title, text, str(font_size), bg, fg, *buttons],
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
