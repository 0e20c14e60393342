"""Speech (and braille) through the screen reader the user already runs.

The user's screen reader has their voice, rate, language and stop key, so when one runs we speak
through it instead of starting a second synthesiser. One module per platform offers its candidates
(`linux`, `windows`, `macos`), each behind the small `ScreenReader` interface; `choose()` is the one
place that decides, from the `speech.output` setting, which one speaks, and says why (for `doctor`).
Platform libraries are imported lazily, inside the candidates.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Protocol

from describe_screen.errors import UserError
from describe_screen.i18n import _


class Unavailable(Exception):
    """A candidate cannot speak here; the message says why in plain words."""


class ScreenReader(Protocol):
    """Speaks one sentence at a time through the user's screen reader."""

    name: str

    def speak(self, text: str, interrupted: Callable[[], bool]) -> bool:
        """Say `text` and return when it has been said (True), or cut short by the screen reader's own
        speech, e.g. the user moved on (False). Cancels it and returns as soon as `interrupted()`."""
        ...

    def cancel(self) -> None:
        """Silence our speech now (the stop key)."""
        ...

    def close(self) -> None: ...


# A candidate: (name, "running" test, opener). "running" says whether this screen reader runs now;
# the opener connects (or raises Unavailable).
@dataclass(frozen=True)
class Candidate:
    name: str
    running: Callable[[], bool]
    open: Callable[[], ScreenReader]


@dataclass
class Choice:
    reader: ScreenReader | None  # None: speak with pyttsx3
    reason: str  # one sentence for doctor, e.g. "Orca is running: speaking through Orca."


def choose(output: str, candidates: Sequence[Candidate] | None = None) -> Choice:
    """Pick what speaks. auto: the first candidate that runs and connects, else pyttsx3;
    screen-reader: the first that connects even when not detected running (speech-dispatcher starts on
    demand), else a UserError; pyttsx3: always pyttsx3."""
    if output == "pyttsx3":
        return Choice(None, _("speech.output is pyttsx3: speaking with our own voice."))
    if candidates is None:
        candidates = platform_candidates()
    problems = []
    for candidate in candidates:
        running = candidate.running()
        if output == "auto" and not running:
            continue
        try:
            reader = candidate.open()
        except Unavailable as exc:
            problems.append(f"{candidate.name}: {exc}")
            continue
        passed = f" ({' '.join(problems)})" if problems else ""  # e.g. why not Orca's remote controller
        if running:
            return Choice(reader, _("{reader} is running: speaking through {speaker}{passed}.",
                                    reader=candidate.name, speaker=reader.name, passed=passed))
        return Choice(reader, _("speech.output is {output}: speaking through {speaker}{passed}.", output=output,
                                speaker=reader.name, passed=passed))
    if output == "screen-reader":
        detail = " ".join(problems) or _("none was found on this computer.")
        raise UserError(_("speech.output is screen-reader, but no screen reader could be reached: {detail}",
                          detail=detail),
                        _("Start your screen reader, or set speech.output = \"auto\" in the settings file."))
    if problems:
        return Choice(None, _("No screen reader could be reached ({problems}): speaking with pyttsx3.",
                              problems=" ".join(problems)))
    return Choice(None, _("No screen reader is running: speaking with pyttsx3."))


def platform_candidates(platform: str = sys.platform) -> list[Candidate]:
    """The screen readers this platform can speak through, in order of preference."""
    if platform.startswith("linux"):
        from describe_screen.screenreader import linux

        return linux.candidates()
    if platform == "win32":
        from describe_screen.screenreader import windows

        return windows.candidates()
    if platform == "darwin":
        from describe_screen.screenreader import macos

        return macos.candidates()
    return []


# Debian and Ubuntu ship some clients only as system packages (python3-speechd, python3-brlapi); the
# venv loads just that one module from the system folder, never the folder's other packages.
SYSTEM_PACKAGES = ("/usr/lib/python3/dist-packages",)


def import_system(name: str, folders: Sequence[str] = SYSTEM_PACKAGES) -> ModuleType:
    """`import name`, falling back to the system's copy of that one module; Unavailable if neither."""
    try:
        return importlib.import_module(name)
    except ImportError:
        pass
    spec = importlib.machinery.PathFinder.find_spec(name, list(folders))
    if spec is None or spec.loader is None:
        raise Unavailable(_("its Python module {name} is not installed", name=name))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # built for another Python, or broken: as good as absent
        del sys.modules[name]
        raise Unavailable(_("its Python module {name} cannot be loaded ({exc})", name=name, exc=exc)) from exc
    return module


POLL = 0.01  # how often a sentence being spoken checks for stop()
WORDS_PER_SECOND = 3.0  # a brisk speaking rate, for screen readers that do not say when a message ends


def wait_while_spoken(text: str, interrupted: Callable[[], bool], cancel: Callable[[], None]) -> bool:
    """Wait the time a brisk reader needs to say `text`; cancel() and return at once when `interrupted()`."""
    deadline = time.monotonic() + max(0.5, len(text.split()) / WORDS_PER_SECOND)
    while time.monotonic() < deadline:
        if interrupted():
            cancel()
            break
        time.sleep(POLL)
    return True
