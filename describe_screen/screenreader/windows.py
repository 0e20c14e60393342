"""Windows: NVDA, JAWS and the other screen readers Tolk knows, through cytolk (Tolk for Python).

Tolk speaks and brailles through the running screen reader's own API. Narrator offers programs no such
API, so with Narrator (or none) `auto` speaks with pyttsx3 (SAPI5), as before.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

from describe_screen.i18n import _
from describe_screen.screenreader import Candidate, Unavailable, wait_while_spoken


def _load_tolk() -> Any:
    """cytolk's tolk module, loaded; None when cytolk is not installed."""
    try:
        from cytolk import tolk
    except ImportError:
        return None
    tolk.load()
    return tolk


def candidates(load: Callable[[], ModuleType | Any] = _load_tolk) -> list[Candidate]:
    tolk = load()
    if tolk is None:
        return []
    running = tolk.detect_screen_reader()  # "NVDA", "JAWS", ... or None

    def open_reader() -> TolkReader:
        if running is None:
            raise Unavailable(_("no screen reader that programs can speak through is running"))
        return TolkReader(tolk, running)

    return [Candidate(running or _("A screen reader"), lambda: running is not None, open_reader)]


class TolkReader:
    """Speech and braille through Tolk. Most readers do not report the end of speech to Tolk (NVDA never
    does), so sentences are paced at a brisk reading rate; silence() is the stop."""

    def __init__(self, tolk: Any, name: str) -> None:
        self._tolk = tolk
        self.name = name

    def speak(self, text: str, interrupted: Callable[[], bool]) -> bool:
        self._tolk.output(text, False)  # speech and braille, queued behind nothing of ours
        return wait_while_spoken(text, interrupted, self.cancel)

    def cancel(self) -> None:
        self._tolk.silence()

    def close(self) -> None:
        self._tolk.unload()
