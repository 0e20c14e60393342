"""Hotkeys through the GlobalShortcuts portal (org.freedesktop.portal.GlobalShortcuts; KDE Plasma, GNOME 48
and later): the desktop tells us when a shortcut goes down and up, so push-to-talk works as on X11.

The interface's signals (xdg-desktop-portal's documentation, data/org.freedesktop.portal.GlobalShortcuts.xml),
all sent to this connection alone from /org/freedesktop/portal/desktop:
  Activated(o session_handle, s shortcut_id, t timestamp, a{sv} options)    a key went down
  Deactivated(o session_handle, s shortcut_id, t timestamp, a{sv} options)  it went up
  ShortcutsChanged(o session_handle, a(sa{sv}) shortcuts)                   the user chose other keys
Each has its own arguments, so each is read by its own name: reading them all alike once ended the
listener at the first change of keys, and every hotkey with it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from describe_screen.errors import UserError
from describe_screen.i18n import _
from describe_screen.keys import ACTIONS

log = logging.getLogger(__name__)

GLOBAL_SHORTCUTS = "org.freedesktop.portal.GlobalShortcuts"
PRESSES = {"Activated": True, "Deactivated": False}


def triggers(shortcuts: list[tuple[str, dict[str, Any]]]) -> dict[str, str]:
    """shortcut id -> the desktop's words for its key, for the shortcuts that have one (a(sa{sv}) with
    trigger_description, as BindShortcuts' Response and ShortcutsChanged give them)."""
    found = {}
    for shortcut_id, values in shortcuts:
        words = values.get("trigger_description", ("s", ""))[1]
        if words:
            found[shortcut_id] = words
    return found


class PortalShortcuts:
    """Shortcuts registered with the desktop through the portal; Activated/Deactivated are press/release.

    `bound` is what the desktop says the keys are (shortcut id -> its words); the user may change them
    at any time in the desktop's settings, and ShortcutsChanged keeps this up to date."""

    def __init__(self, bindings: dict[str, str], on_press: Callable[[str], None],
                 on_release: Callable[[str], None], report: Callable[[UserError], object]) -> None:
        self.bindings = {action: combo for action, combo in bindings.items() if combo}
        self.on_press, self.on_release, self._report = on_press, on_release, report
        self.bound: dict[str, str] = {}
        self._held: set[str] = set()
        self._bus: Any = None
        self._session = ""
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    @property
    def note(self) -> str:
        """For the ready message: no key to name means the user has yet to choose them."""
        return "" if self.bound else _("The desktop has given describe-screen no keys yet: choose them in its "
                                       "keyboard settings, under global shortcuts.")

    def start(self) -> None:
        from describe_screen.capture.portal import Bus

        bus = Bus()
        try:
            rule = self._bind(bus)
        except BaseException:
            bus.conn.close()
            raise
        self._bus = bus
        self._thread = threading.Thread(target=self._listen, args=(bus, rule), name="portal-keys", daemon=True)
        self._thread.start()

    def _bind(self, bus: Any) -> Any:
        """CreateSession, then BindShortcuts (the desktop may ask the user to confirm the keys); returns
        the match rule for the interface's signals, already subscribed."""
        from jeepney import MatchRule, message_bus
        from jeepney.io.blocking import Proxy

        from describe_screen.wayland_keys import portal_trigger

        code, results = bus.request(GLOBAL_SHORTCUTS, "CreateSession", "a{sv}",
                                    ({"session_handle_token": ("s", "describe_screen_keys")},))
        if code != 0:
            raise UserError(_("The desktop refused to give describe-screen its shortcuts."),
                            _("Allow them when the desktop asks, then restart describe-screen."))
        self._session = str(results["session_handle"])
        shortcuts = [(action, {"description": ("s", _(ACTIONS[action])),  # the desktop lists it to the user
                               "preferred_trigger": ("s", portal_trigger(combo))})
                     for action, combo in self.bindings.items()]
        rule = MatchRule(type="signal", interface=GLOBAL_SHORTCUTS)
        Proxy(message_bus, bus.conn).AddMatch(rule)
        code, results = bus.request(GLOBAL_SHORTCUTS, "BindShortcuts", "oa(sa{sv})sa{sv}",
                                    (self._session, shortcuts, "", {}))
        if code != 0:
            raise UserError(_("The desktop did not accept describe-screen's shortcuts."),
                            _("Choose the keys when the desktop asks, then restart describe-screen."))
        self.bound = triggers(results.get("shortcuts", []))
        return rule

    def _listen(self, bus: Any, rule: Any) -> None:
        """Hand each signal on; if listening ends for any reason but stop(), the user is told, since
        from then on no hotkey works."""
        try:
            self._receive(bus.conn, rule)
        except Exception as exc:
            if self._stopping.is_set():
                return
            log.exception("listening to the shortcuts portal failed")
            self._report(UserError(_("Hotkeys stopped working: listening to the desktop's shortcuts failed "
                                     "({kind}: {exc}).",
                                     kind=type(exc).__name__, exc=exc),
                                   _("Restart describe-screen; commands from a terminal still work meanwhile.")))

    def _receive(self, conn: Any, rule: Any) -> None:
        from jeepney.low_level import HeaderFields

        with conn.filter(rule, bufsize=64) as signals:
            while not self._stopping.is_set():
                try:
                    signal = conn.recv_until_filtered(signals, timeout=0.5)
                except TimeoutError:
                    continue
                self._signal(signal.header.fields.get(HeaderFields.member, ""), signal.body)

    def _signal(self, member: str, body: tuple) -> None:
        if member == "ShortcutsChanged":
            session, shortcuts = body
            if session == self._session:
                self.bound = triggers(shortcuts)
                log.info("the desktop changed describe-screen's shortcuts: %s", self.bound)
            return
        if member not in PRESSES:  # a signal a later version of the interface may add
            return
        session, action, _timestamp, _options = body
        if session != self._session or action not in self.bindings:
            return
        if PRESSES[member]:
            self._held.add(action)
        else:
            self._held.discard(action)
        self._call(self.on_press if PRESSES[member] else self.on_release, action)

    @staticmethod
    def _call(callback: Callable[[str], None], action: str) -> None:
        try:
            callback(action)
        except Exception:
            log.exception("hotkey callback for %s failed", action)

    def stop(self) -> None:
        """End the portal session; a held push-to-talk key gets its release."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        for action in sorted(self._held):
            self._call(self.on_release, action)
        self._held.clear()
        if self._bus is not None:
            from jeepney import DBusAddress, new_method_call

            from describe_screen.capture.portal import BUS_NAME

            close = new_method_call(DBusAddress(self._session, bus_name=BUS_NAME,
                                                interface="org.freedesktop.portal.Session"), "Close")
            try:
                self._bus.conn.send_and_get_reply(close, timeout=5)
            except OSError:  # the desktop ends the session itself when the connection closes
                pass
            finally:
                self._bus.conn.close()
            self._bus = None


def portal_version() -> int:
    from describe_screen.capture.portal import Bus

    try:
        with Bus() as bus:
            return bus.version(GLOBAL_SHORTCUTS)
    except UserError:
        return 0
