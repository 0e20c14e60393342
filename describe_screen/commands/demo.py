"""`describe-screen demo`: the first run after installing.

On a desktop it describes the real screen and speaks. With no display (a server, a fresh container)
it starts a virtual display with a sample dialog, describes and reads it, prints the words and saves
the speech to a WAV, so the whole chain is shown working with real parts.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from describe_screen.config import Config
from describe_screen.daemon import Daemon
from describe_screen.errors import UserError
from describe_screen.i18n import N_, _

# the sample window is in the user's language, as their own programs' windows are
SAMPLE_TITLE = N_("Save changes")
SAMPLE_TEXT = N_("Do you want to save the changes you made to report.txt?\n"
                 "Your changes will be lost if you don't save them.")
SAMPLE_BUTTONS = (N_("Save"), N_("Don't Save"), N_("Cancel"))


def run(config: Config, speech_file: Path | None = None) -> int:
    from describe_screen.speech import Speaker

    virtual = sys.platform.startswith("linux") and not os.environ.get("DISPLAY")
    if virtual and speech_file is None:
        speech_file = Path("demo-speech.wav").resolve()
    speaker = Speaker(config.speech, speech_file)
    xvfb = window = None
    try:
        if virtual:
            print(_("No display was found, so the demo opens a sample window on a virtual display."), flush=True)
            xvfb, window = _sample_desktop()
        daemon = Daemon(config, speaker)
        ok = True
        for request, heading in (({"cmd": "describe", "target": "screen"}, _("Description:")),
                                 ({"cmd": "read", "target": "screen"}, _("All the text:"))):
            print(heading, flush=True)
            final = daemon.handle(request, _print_text)
            print(flush=True)
            ok = ok and final.get("event") == "done"
        speaker.wait_idle()
    finally:
        speaker.close()
        for proc in (window, xvfb):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=10)
    if speech_file:
        print(_("The speech was saved to {path}.", path=speech_file))
    print(_("The demo worked.") if ok else _("The demo found a problem: see the message above."))
    return 0 if ok else 1


def _print_text(event: dict) -> None:
    if event.get("event") == "text":
        sys.stdout.write(event["text"])
        sys.stdout.flush()


def _sample_desktop() -> tuple[subprocess.Popen, subprocess.Popen]:
    """A virtual display with the sample dialog on it; DISPLAY points at it from here on."""
    from describe_screen.virtual_display import start_xvfb

    xvfb, display = start_xvfb()
    os.environ["DISPLAY"] = display
    window = subprocess.Popen(
        [sys.executable, "-m", "describe_screen.sample_window", _(SAMPLE_TITLE), _(SAMPLE_TEXT), "18", "white",
         "black", *map(_, SAMPLE_BUTTONS)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = window.stdout.readline() if window.stdout else ""
    if not line.startswith("ready"):
        xvfb.terminate()
        error = window.stderr.read() if window.stderr else ""
        raise UserError(_("The sample window could not open because Tk is missing.") if "tkinter" in error else
                        _("The sample window could not open."),
                        _("Install Tk for Python (Debian and Ubuntu: sudo apt-get install python3-tk)."))
    return xvfb, window
