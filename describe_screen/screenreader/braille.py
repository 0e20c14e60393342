"""Braille through BrlAPI (BRLTTY), the braille server Orca itself writes through.

When a display is connected, an answer's first sentence appears on it; panning right shows the rest,
one display-width at a time, panning left goes back. The display is borrowed only while the user reads:
any other key, the end of a new request, stop(), or IDLE_SECONDS without a key give it back to the
screen reader (leaveTtyMode). One thread owns the BrlAPI connection, as BrlAPI wants.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import textwrap
import threading

from describe_screen.i18n import _, ngettext
from describe_screen.screenreader import Unavailable, import_system

log = logging.getLogger(__name__)

IDLE_SECONDS = 30.0
KEY_WAIT_MS = 100


class BrailleDisplay:
    """Shows answers on the connected braille display (see the module docstring)."""

    def __init__(self, host: str | None = None) -> None:
        self._brlapi = import_system("brlapi")
        try:
            self._connection = self._brlapi.Connection(host.encode() if host else None)
            self.width, rows = self._connection.displaySize
        except Exception as exc:  # no BRLTTY, or no permission to its socket
            raise Unavailable(_("BRLTTY cannot be reached ({exc})", exc=exc)) from exc
        if self.width * rows == 0:
            self._connection.closeConnection()
            raise Unavailable(_("no braille display is connected"))
        self.name = ngettext("{driver} braille display, {n} cell", "{driver} braille display, {n} cells", self.width,
                             driver=self._connection.driverName.decode(errors="replace"))
        self.width *= rows
        self._events: queue.Queue[tuple[str, int, str]] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="braille", daemon=True)
        self._thread.start()

    def show(self, generation: int, sentence: str) -> None:
        """A sentence of answer `generation`: the first one of a new answer is shown at once."""
        if self._thread.is_alive():  # after BRLTTY went away nobody would ever take it
            self._events.put(("show", generation, sentence))

    def release(self) -> None:
        """Give the display back to the screen reader now (stop)."""
        self._events.put(("release", 0, ""))

    def close(self) -> None:
        self._events.put(("close", 0, ""))
        self._thread.join(timeout=5)

    def _run(self) -> None:
        pages: list[str] = []
        page, generation, held, idle = 0, -1, False, 0.0
        brlapi, connection = self._brlapi, self._connection
        while True:
            try:  # while the display is borrowed, keys are read between events; else wait for one
                kind, number, text = self._events.get(block=not held)
            except queue.Empty:
                kind = ""
            try:
                if kind == "close":
                    if held:
                        connection.leaveTtyMode()
                    connection.closeConnection()
                    return
                if kind == "release" and held:
                    connection.leaveTtyMode()
                    held = False
                elif kind == "show":
                    new = textwrap.wrap(text, self.width) or [""]
                    if number != generation:  # a new answer replaces what is shown
                        generation, pages, page = number, new, 0
                        if not held:
                            connection.enterTtyModeWithPath([])
                            held = True
                        connection.writeText(pages[0])
                    else:
                        pages.extend(new)
                    idle = 0.0
                if not held:
                    continue
                key = connection.readKeyWithTimeout(KEY_WAIT_MS)
                if key is None:
                    idle += KEY_WAIT_MS / 1000
                    if idle >= IDLE_SECONDS:
                        connection.leaveTtyMode()
                        held = False
                    continue
                idle = 0.0
                command = connection.expandKeyCode(key)
                step = {brlapi.KEY_CMD_FWINRT: 1, brlapi.KEY_CMD_FWINLT: -1}.get(
                    command["command"] if command["type"] == brlapi.KEY_TYPE_CMD else None)
                if step is None:  # any other key: the user is done reading; the screen reader takes over
                    connection.leaveTtyMode()
                    held = False
                elif 0 <= page + step < len(pages):
                    page += step
                    connection.writeText(pages[page])
            except Exception:  # BRLTTY went away: braille stops, speech goes on
                log.exception("braille output failed")
                with contextlib.suppress(Exception):
                    connection.closeConnection()
                return

def connect(host: str | None = None) -> BrailleDisplay | None:
    """The connected braille display, or None (no BRLTTY, no display, no BrlAPI module)."""
    try:
        return BrailleDisplay(host)
    except Unavailable as exc:
        log.info("no braille output: %s", exc)
        return None


