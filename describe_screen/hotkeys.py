"""Global hotkeys: pynput-style combos such as "<ctrl>+<alt>+d", with press AND release events.

Release matters for push-to-talk (hold the "ask" combo to record). Callbacks run on a dispatcher
thread of their own, never on pynput's listener thread: a slow callback must not stall the keyboard
hook (Windows silently drops low-level hooks that take too long), and one that raises is logged and
forgotten so the hotkeys keep working.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from describe_screen.errors import UserError
from describe_screen.explore import MOVES
from describe_screen.i18n import _
from describe_screen.keys import parse_hotkey, spoken_hotkey

if TYPE_CHECKING:
    from describe_screen.config import Config

log = logging.getLogger(__name__)

# hotkey action -> the request it makes
HOTKEY_REQUESTS: dict[str, dict[str, Any]] = {
    "describe_screen": {"cmd": "describe", "target": "screen"},
    "describe_window": {"cmd": "describe", "target": "window"},
    "describe_pointer": {"cmd": "describe", "target": "pointer"},
    "describe_focus": {"cmd": "describe", "target": "focus"},
    "read_text": {"cmd": "read"},
    "ask": {"cmd": "listen_start"},
    "repeat": {"cmd": "repeat"},
    "stop": {"cmd": "stop"},
    "copy": {"cmd": "copy"},
    **{f"explore_{move.replace('-', '_')}": {"cmd": "explore", "move": move}
       for move in MOVES if move not in ("first", "last")},
    "press": {"cmd": "activate", "click": "click"},
    "double_click": {"cmd": "activate", "click": "double"},
    "right_click": {"cmd": "activate", "click": "right"},
}

# X11 key auto-repeat turns a held key into release+press pairs; a press of the same combo this soon
# after its release is a repeat, not the user letting go.
REPEAT_GAP = 0.12  # repeats come every 25-40 ms; a loaded machine can delay their delivery


def start_hotkeys(config: Config, handle: Callable[[dict], Any], report: Callable[[UserError], Any]) -> Any:
    """Send each hotkey's request to `handle` on a thread of its own (the listener thread must never
    wait for work); the ask key's release ends the spoken question. Returns what to stop() at the end,
    or None when hotkeys cannot work here (said through `report`; commands still work)."""
    from dataclasses import asdict

    from describe_screen.capture import session

    def fire(request: dict) -> None:
        threading.Thread(target=handle, args=(dict(request),), daemon=True).start()

    def pressed(action: str) -> None:
        fire(HOTKEY_REQUESTS[action])

    def released(action: str) -> None:
        if action == "ask":
            fire({"cmd": "listen_stop"})

    bindings = {action: combo for action, combo in asdict(config.hotkeys).items() if combo}
    if session.current().kind == "wayland":
        from describe_screen import wayland_keys

        return wayland_keys.start(bindings, pressed, released, report)
    listener = HotkeyListener(bindings, pressed, released)
    try:
        listener.start()
    except UserError as exc:
        report(UserError(_("Hotkeys are off. {problem}", problem=exc.problem),
                         exc.fix + " " + _("Commands from describe-screen in a terminal still work.")))
        return None
    return listener


def ready_words(listener: Any) -> str:
    """'describe-screen is ready.', naming the describe key only when it really is bound (a Wayland
    desktop's settings may have none of them yet), and what the hotkeys' `note` says."""
    ready = _("describe-screen is ready.")
    if key := getattr(listener, "bound", {}).get("describe_screen"):
        ready += " " + _("Press {key} to describe the screen.", key=key)
    if note := getattr(listener, "note", ""):
        ready += f" {note}"
    return ready


class HotkeyListener:
    """Watch the keyboard system-wide and report action names when their combos go down and up."""

    def __init__(self, bindings: dict[str, str], on_press: Callable[[str], None],
                 on_release: Callable[[str], None] | None = None) -> None:
        """`bindings` maps action name to combo; an empty combo leaves that action without a hotkey."""
        self._combos = {action: parse_hotkey(combo, f"hotkeys.{action}")
                        for action, combo in bindings.items() if combo}
        self.bound = {action: spoken_hotkey(combo) for action, combo in self._combos.items()}
        self._on_press, self._on_release = on_press, on_release
        self._keys: dict[str, set[Any]] = {}
        self._held: set[Any] = set()
        self._active: set[str] = set()
        self._events: queue.Queue[tuple[str, str, float] | None] = queue.Queue()  # kind, action, when
        self._listener: Any = None
        self._dispatcher: threading.Thread | None = None

    def start(self) -> None:
        """Begin listening; raises UserError when the keyboard cannot be watched here."""
        with _session():
            try:
                from pynput import keyboard
            except ImportError as exc:
                raise UserError(_("Hotkeys cannot work: the keyboard of this session cannot be watched."),
                                _("Run describe-screen inside your desktop session.")) from exc
            self._keys = {action: set(keyboard.HotKey.parse(combo)) for action, combo in self._combos.items()}
            listener = keyboard.Listener(on_press=self._pressed, on_release=self._released)
            if sys.platform == "darwin" and not getattr(listener, "IS_TRUSTED", True):
                raise UserError(_("macOS has not allowed describe-screen to watch the keyboard, so hotkeys cannot "
                                  "work."), _("Open System Settings, Privacy and Security, and allow the app that "
                                           "runs describe-screen under Accessibility and Input Monitoring, then "
                                           "restart it."))
            self._listener = listener
            self._dispatcher = threading.Thread(target=self._dispatch, name="hotkey-dispatch", daemon=True)
            self._dispatcher.start()
            listener.start()
            ready = threading.Event()
            threading.Thread(target=lambda: (listener.wait(), ready.set()), daemon=True).start()
            while not ready.wait(0.05):
                if not listener.is_alive():
                    self.stop()
                    raise UserError(_("Hotkeys cannot work: watching the keyboard failed to start."),
                                    _("Run describe-screen inside your desktop session."))

    def stop(self) -> None:
        """Stop listening; a combo still held gets its release, so push-to-talk never stays on."""
        if self._listener is not None:
            self._listener.stop()
            self._listener = None
        if self._dispatcher is not None:
            for action in sorted(self._active):
                self._events.put(("release", action, time.monotonic()))
            self._active.clear()
            self._events.put(None)
            if self._dispatcher is not threading.current_thread():
                self._dispatcher.join(timeout=2)
            self._dispatcher = None

    def _pressed(self, key: Any) -> None:
        key = self._listener.canonical(key) if self._listener else key
        self._held.add(key)
        for action, keys in self._keys.items():
            if action not in self._active and key in keys and keys <= self._held:
                self._active.add(action)
                self._events.put(("press", action, time.monotonic()))

    def _released(self, key: Any) -> None:
        key = self._listener.canonical(key) if self._listener else key
        self._held.discard(key)
        for action in [a for a in self._active if key in self._keys[a]]:
            self._active.discard(action)
            self._events.put(("release", action, time.monotonic()))

    def _dispatch(self) -> None:
        """Deliver events in order; hold each release briefly so auto-repeat pairs cancel out. The gap is
        measured between the events themselves, so a dispatcher delayed on a busy machine does not take a
        quick second press for a repeat."""
        pending: tuple[str, float] | None = None  # a release held back, and when it happened
        while True:
            try:
                wait = max(0.0, pending[1] + REPEAT_GAP - time.monotonic()) if pending else None
                item = self._events.get(timeout=wait)
            except queue.Empty:
                self._call(self._on_release, pending[0] if pending else None)
                pending = None
                continue
            if pending is not None:
                if item is not None and item[:2] == ("press", pending[0]) and item[2] - pending[1] < REPEAT_GAP:
                    pending = None  # auto-repeat: the combo never really went up
                    continue
                self._call(self._on_release, pending[0])
                pending = None
            if item is None:
                return
            kind, action, when = item
            if kind == "press":
                self._call(self._on_press, action)
            else:
                pending = (action, when)

    @staticmethod
    def _call(callback: Callable[[str], None] | None, action: str | None) -> None:
        if callback is None or action is None:
            return
        try:
            callback(action)
        except Exception:
            log.exception("hotkey callback for %s failed", action)


@contextlib.contextmanager
def _session() -> Iterator[None]:
    """On Linux, check for an X display with the RECORD extension, and stay connected while pynput
    connects (an X server whose last client leaves resets itself and drops new connections meanwhile)."""
    if sys.platform in ("win32", "darwin"):
        yield
        return
    if os.environ.get("XDG_SESSION_TYPE") == "wayland":  # pynput would see only keys typed into X11 apps
        raise UserError(_("Hotkeys cannot work in a Wayland session: it does not let programs watch the keyboard."),
                        _("Log in with an X11 session, or bind describe-screen commands such as 'describe-screen "
                          "describe' to keys in your desktop's keyboard settings."))
    if not os.environ.get("DISPLAY"):
        raise UserError(_("Hotkeys need a graphical session, but the DISPLAY variable is not set."),
                        _("Run describe-screen inside your desktop session, or try describe-screen demo."))
    from Xlib import display, error

    try:
        dpy = display.Display()
    except (error.DisplayError, error.ConnectionClosedError, OSError) as exc:
        raise UserError(_("Hotkeys cannot work: cannot connect to the display {DISPLAY}.",
                          DISPLAY=os.environ['DISPLAY']),
                        _("Run describe-screen inside your desktop session, or try describe-screen demo.")) from exc
    try:
        if not dpy.has_extension("RECORD"):
            raise UserError(_("Hotkeys cannot work: the X server lacks the RECORD extension that lets programs "
                              "watch the keyboard."),
                            _("Enable RECORD in the X server settings (for Xvfb, add +extension RECORD)."))
        yield
    finally:
        dpy.close()
