"""A stand-in xdg-desktop-portal on a private session bus, offering GlobalShortcuts (version 1) and
RemoteDesktop (version 2) with ScreenCast's SelectSources (version 5), written from xdg-desktop-portal's
own interface documentation and its front-end's checks, not from our client:

- data/org.freedesktop.portal.GlobalShortcuts.xml: CreateSession(a{sv}) -> o, BindShortcuts(o a(sa{sv}) s
  a{sv}) -> o, ListShortcuts(o a{sv}) -> o, the read-only property version (u); the signals
  Activated/Deactivated(o s t a{sv}) and ShortcutsChanged(o a(sa{sv})).
- data/org.freedesktop.portal.RemoteDesktop.xml: CreateSession(a{sv}) -> o, SelectDevices(o a{sv}) -> o
  (types u, restore_token s, persist_mode u), Start(o s a{sv}) -> o (devices u, restore_token s, streams),
  NotifyPointerMotion(o a{sv} d d), NotifyPointerMotionAbsolute(o a{sv} u d d), NotifyPointerButton(o a{sv}
  i u), NotifyPointerAxis(o a{sv} d d), NotifyPointerAxisDiscrete(o a{sv} u i), NotifyKeyboardKeycode and
  NotifyKeyboardKeysym(o a{sv} i u); properties AvailableDeviceTypes (u) and version (u).
- data/org.freedesktop.portal.ScreenCast.xml: SelectSources(o a{sv}) -> o (types u, multiple b, cursor_mode
  u; restore_token and persist_mode only for screen-cast sessions), whose streams a(ua{sv}) (node id;
  position (ii), size (ii), source_type u) come in RemoteDesktop.Start's results; properties
  AvailableSourceTypes, AvailableCursorModes, version. Sessions of ScreenCast's own (its CreateSession,
  Start, OpenPipeWireRemote) are not offered here: this desktop shares screens with remote-desktop sessions
  only, and those methods answer UnknownMethod.
- data/org.freedesktop.portal.Screenshot.xml (version 2): Screenshot(s a{sv}) -> o (uri s: a picture file
  of `screen`, as the portal saves one), PickColor(s a{sv}) -> o (color (ddd), of the pixel the user
  picks: here the middle one).
- data/org.freedesktop.portal.Request.xml: each call answers with a Request object path
  /org/freedesktop/portal/desktop/request/SENDER/TOKEN (TOKEN from handle_token), whose Response(u
  response, a{sv} results) signal carries the result (the object goes once it has answered).
- data/org.freedesktop.portal.Session.xml: sessions live at
  /org/freedesktop/portal/desktop/session/SENDER/TOKEN (TOKEN from session_handle_token), with Close().

As xdg-desktop-portal does (src/global-shortcuts.c, src/remote-desktop.c), signals go to the session's
owner alone, from /org/freedesktop/portal/desktop; a call naming another connection's or no session is
refused with AccessDenied "Invalid session"; a call out of order with Failed ("Invalid state", "Can only
start once", "Session is not allowed to call NotifyPointer methods", "Invalid position"); an option of the
wrong type or value with org.freedesktop.portal.Error.InvalidArgument; unknown options are dropped.
Anything else is refused with the error a GDBus service gives: UnknownObject for a path nothing is
exported at, UnknownMethod for a method the object lacks, and InvalidArgs for a wrong signature or an
unknown interface or property.

The test plays the desktop's user: `answer` is what they choose when asked (0 allow, 1 deny), `asked`
counts the questions, and `pointer` records the pointer events a started session sent.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image

BUS_NAME = "org.freedesktop.portal.Desktop"
OBJECT = "/org/freedesktop/portal/desktop"
SHORTCUTS = "org.freedesktop.portal.GlobalShortcuts"
REMOTE = "org.freedesktop.portal.RemoteDesktop"
SCREENCAST = "org.freedesktop.portal.ScreenCast"
SCREENSHOT = "org.freedesktop.portal.Screenshot"
REQUEST = "org.freedesktop.portal.Request"
SESSION = "org.freedesktop.portal.Session"
PROPERTIES = "org.freedesktop.DBus.Properties"
ERROR = "org.freedesktop.DBus.Error."
PORTAL_ERROR = "org.freedesktop.portal.Error."
# (interface, method) -> input signature, per kind of object
PORTAL_METHODS = {(SHORTCUTS, "CreateSession"): "a{sv}", (SHORTCUTS, "BindShortcuts"): "oa(sa{sv})sa{sv}",
                  (SHORTCUTS, "ListShortcuts"): "oa{sv}", (PROPERTIES, "Get"): "ss", (PROPERTIES, "GetAll"): "s",
                  (REMOTE, "CreateSession"): "a{sv}", (REMOTE, "SelectDevices"): "oa{sv}",
                  (REMOTE, "Start"): "osa{sv}", (REMOTE, "NotifyPointerMotion"): "oa{sv}dd",
                  (REMOTE, "NotifyPointerMotionAbsolute"): "oa{sv}udd", (REMOTE, "NotifyPointerButton"): "oa{sv}iu",
                  (REMOTE, "NotifyPointerAxis"): "oa{sv}dd", (REMOTE, "NotifyPointerAxisDiscrete"): "oa{sv}ui",
                  (REMOTE, "NotifyKeyboardKeycode"): "oa{sv}iu", (REMOTE, "NotifyKeyboardKeysym"): "oa{sv}iu",
                  (SCREENCAST, "SelectSources"): "oa{sv}", (SCREENSHOT, "Screenshot"): "sa{sv}",
                  (SCREENSHOT, "PickColor"): "sa{sv}"}
SESSION_METHODS = {(SESSION, "Close"): ""}
# each handler is _MEMBER, or _rd_MEMBER / _sc_MEMBER where two interfaces share a member's name
PREFIXES = {REMOTE: "rd_", SCREENCAST: "sc_"}
KEYBOARD, POINTER, TOUCHSCREEN = 1, 2, 4  # RemoteDesktop device types
# the Notify methods that only pass their event on, and the device each needs
NOTIFY = {"NotifyPointerMotion": POINTER, "NotifyPointerButton": POINTER, "NotifyPointerAxis": POINTER,
          "NotifyPointerAxisDiscrete": POINTER, "NotifyKeyboardKeycode": KEYBOARD, "NotifyKeyboardKeysym": KEYBOARD}
PROPERTY_VALUES = {SHORTCUTS: {"version": ("u", 1)},
                   REMOTE: {"AvailableDeviceTypes": ("u", KEYBOARD | POINTER), "version": ("u", 2)},
                   SCREENCAST: {"AvailableSourceTypes": ("u", 1 | 2), "AvailableCursorModes": ("u", 1 | 2),
                                "version": ("u", 5)},
                   SCREENSHOT: {"version": ("u", 2)}}
# options each call reads, with their types (xdg-desktop-portal drops any other)
DEVICE_OPTIONS = {"types": "u", "restore_token": "s", "persist_mode": "u"}
SOURCE_OPTIONS = {"types": "u", "multiple": "b", "cursor_mode": "u", "restore_token": "s", "persist_mode": "u"}


# a session bus that starts nothing by itself: with the system's service files, a call to a portal that
# is not there (the stand-in gone) would start the machine's real xdg-desktop-portal on it
HERMETIC = """<busconfig><type>session</type><listen>unix:tmpdir=/tmp</listen><auth>EXTERNAL</auth>
<policy context="default"><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/>
<allow own="*"/></policy></busconfig>"""


class PrivateBus:
    """A dbus-daemon of our own, where no service is started on demand; `address` is what
    DBUS_SESSION_BUS_ADDRESS would hold."""

    def __init__(self) -> None:
        self._config = Path(tempfile.mkdtemp(prefix="private-bus-"))
        (self._config / "bus.conf").write_text(HERMETIC, encoding="utf-8")
        self.proc = subprocess.Popen(["dbus-daemon", f"--config-file={self._config / 'bus.conf'}", "--nofork",
                                      "--print-address"], stdout=subprocess.PIPE, text=True)
        self.address = self.proc.stdout.readline().strip() if self.proc.stdout else ""

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        shutil.rmtree(self._config, ignore_errors=True)


@contextlib.contextmanager
def wayland_desktop(monkeypatch: Any, desktop: str = "KDE") -> Iterator[StandInPortal]:
    """This process in a Wayland session of `desktop` (not wlroots) whose session bus has the stand-in portal."""
    bus = PrivateBus()
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", bus.address)
    for name, value in (("WAYLAND_DISPLAY", "wayland-1"), ("XDG_SESSION_TYPE", "wayland"),
                        ("XDG_CURRENT_DESKTOP", desktop)):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SWAYSOCK", raising=False)
    stand_in = StandInPortal(bus.address)
    try:
        yield stand_in
    finally:
        stand_in.close()
        bus.close()


class StandInPortal:
    """The portal's GlobalShortcuts on `address`; the test plays the desktop with activate(),
    deactivate() and change(), and `calls` records every method call as (path, interface, member)."""

    def __init__(self, address: str) -> None:
        from jeepney.bus_messages import message_bus
        from jeepney.io.blocking import open_dbus_connection

        self.calls: list[tuple[str, str, str]] = []
        self.sessions: dict[str, str] = {}  # session path -> its owner's unique name
        self.shortcuts: dict[str, list[tuple[str, dict[str, Any]]]] = {}  # session path -> bound shortcuts
        self.remote: dict[str, dict[str, Any]] = {}  # remote-desktop session path -> its state
        self.answer = 0  # what the user chooses when the desktop asks: 0 allow, 1 deny
        self.asked = 0  # how many times the desktop asked
        self.tokens: set[str] = set()  # restore tokens given out and not used yet
        self.monitors = [(44, (0, 0), (1280, 720))]  # PipeWire node, logical position and size of each
        self.pointer: list[tuple] = []  # the pointer events sessions sent, as (method, arguments...)
        self.screen: Image.Image | None = None  # what the screen shows (Screenshot answers 2 while None)
        self._pictures = Path(tempfile.mkdtemp(prefix="stand-in-portal-"))
        self._conn = open_dbus_connection(address)
        self._conn.send_and_get_reply(message_bus.RequestName(BUS_NAME), timeout=5)
        threading.Thread(target=self._serve, daemon=True).start()

    def close(self) -> None:
        self._conn.close()
        shutil.rmtree(self._pictures, ignore_errors=True)

    # -- the desktop's side: what a user does with the keys
    def activate(self, session: str, shortcut_id: str) -> None:
        self._emit(session, "Activated", "osta{sv}", (session, shortcut_id, int(time.time() * 1000), {}))

    def deactivate(self, session: str, shortcut_id: str) -> None:
        self._emit(session, "Deactivated", "osta{sv}", (session, shortcut_id, int(time.time() * 1000), {}))

    def change(self, session: str, triggers: dict[str, str]) -> None:
        """The user picks other keys in the desktop's settings."""
        shortcuts = [(sid, {**values, "trigger_description": ("s", triggers.get(sid, ""))})
                     for sid, values in self.shortcuts[session]]
        self.shortcuts[session] = shortcuts
        self._emit(session, "ShortcutsChanged", "oa(sa{sv})", (session, shortcuts))

    def _emit(self, session: str, member: str, signature: str, body: tuple) -> None:
        from jeepney import DBusAddress, HeaderFields, new_signal

        signal = new_signal(DBusAddress(OBJECT, interface=SHORTCUTS), member, signature, body)
        signal.header.fields[HeaderFields.destination] = self.sessions[session]
        self._conn.send(signal)

    # -- the bus side
    def _serve(self) -> None:
        from jeepney import MessageType

        while True:
            try:
                message = self._conn.receive()
            except Exception:  # the bus went away: the test is over
                return
            if message.header.message_type == MessageType.method_call:
                self._call(message)

    def _call(self, message: Any) -> None:
        from jeepney import HeaderFields

        fields = message.header.fields
        path, member = fields[HeaderFields.path], fields[HeaderFields.member]
        interface, signature = fields.get(HeaderFields.interface), fields.get(HeaderFields.signature, "")
        self.calls.append((path, interface or "", member))
        if path == OBJECT:
            methods = PORTAL_METHODS
        elif path in self.sessions:
            methods = SESSION_METHODS
        else:
            return self._error(message, "UnknownObject", f"No such object path '{path}'")
        known = {key: sig for key, sig in methods.items() if key[1] == member and interface in (None, key[0])}
        if not known:
            return self._error(message, "UnknownMethod", f"No such method '{member}'")
        (interface, _), wanted = next(iter(known.items()))
        if signature != wanted:
            return self._error(message, "InvalidArgs", f"Type of message, '({signature})', does not match "
                               f"expected type '({wanted})'")
        if interface == REMOTE and member in NOTIFY:  # (session, options, the event's own arguments)
            return self._notify(message, message.body[0], NOTIFY[member], (member, *message.body[2:]))
        getattr(self, f"_{PREFIXES.get(interface, '')}{member}")(message, path, *message.body)

    def _error(self, message: Any, name: str, text: str, domain: str = ERROR) -> None:
        from jeepney import new_error

        self._conn.send(new_error(message, domain + name, "s", (text,)))

    def _reply(self, message: Any, signature: str, body: tuple) -> None:
        from jeepney import new_method_return

        self._conn.send(new_method_return(message, signature, body))

    @staticmethod
    def _sender(message: Any) -> str:
        from jeepney import HeaderFields

        return message.header.fields[HeaderFields.sender]

    def _handle(self, message: Any, kind: str, token: str) -> str:
        return f"{OBJECT}/{kind}/{self._sender(message).lstrip(':').replace('.', '_')}/{token}"

    def _respond(self, message: Any, options: dict, results: dict, response: int = 0) -> None:
        """Reply with the Request's path, then send its Response to the caller (at once: the user's
        answer, when the desktop asks, is `answer`)."""
        from jeepney import DBusAddress, HeaderFields, new_signal

        token = options.get("handle_token", ("s", f"t{secrets.token_hex(4)}"))[1]
        request = self._handle(message, "request", token)
        self._reply(message, "o", (request,))
        signal = new_signal(DBusAddress(request, interface=REQUEST), "Response", "ua{sv}", (response, results))
        signal.header.fields[HeaderFields.destination] = self._sender(message)
        self._conn.send(signal)

    # methods are named as on D-Bus, so a call finds its handler by name
    def _Get(self, message: Any, path: str, interface: str, name: str) -> None:
        if name not in PROPERTY_VALUES.get(interface, {}):
            return self._error(message, "InvalidArgs", f"No such property '{name}' on interface '{interface}'")
        self._reply(message, "v", (PROPERTY_VALUES[interface][name],))

    def _GetAll(self, message: Any, path: str, interface: str) -> None:
        if interface not in PROPERTY_VALUES:
            return self._error(message, "InvalidArgs", f"No such interface '{interface}'")
        self._reply(message, "a{sv}", (PROPERTY_VALUES[interface],))

    def _CreateSession(self, message: Any, path: str, options: dict) -> None:
        session = self._handle(message, "session", options.get("session_handle_token", ("s", "s"))[1])
        self.sessions[session] = self._sender(message)
        self.shortcuts[session] = []
        self._respond(message, options, {"session_handle": ("s", session)})  # "s", as the documentation notes

    def _own_session(self, message: Any, session: str) -> bool:
        if self.sessions.get(session) != self._sender(message):
            self._error(message, "AccessDenied", "Invalid session")
            return False
        return True

    def _BindShortcuts(self, message: Any, path: str, session: str, shortcuts: list, parent: str,
                       options: dict) -> None:
        if not self._own_session(message, session):
            return
        # a desktop that takes the preferred keys, described in its own words
        self.shortcuts[session] = [(sid, {"description": values.get("description", ("s", "")),
                                          "trigger_description": ("s", values.get("preferred_trigger", ("s", ""))[1])})
                                   for sid, values in shortcuts]
        self._respond(message, options, {"shortcuts": ("a(sa{sv})", self.shortcuts[session])})

    def _ListShortcuts(self, message: Any, path: str, session: str, options: dict) -> None:
        if self._own_session(message, session):
            self._respond(message, options, {"shortcuts": ("a(sa{sv})", self.shortcuts[session])})

    def _Close(self, message: Any, path: str) -> None:
        self.sessions.pop(path, None)
        if path in self.remote:
            self.remote.pop(path)["state"] = "closed"
        self._reply(message, "", ())

    # -- RemoteDesktop, with ScreenCast's SelectSources
    def _rd_CreateSession(self, message: Any, path: str, options: dict) -> None:
        session = self._handle(message, "session", options.get("session_handle_token", ("s", "s"))[1])
        self.sessions[session] = self._sender(message)
        self.remote[session] = {"state": "init", "devices": None, "sources": None, "persist": 0, "restored": False}
        self._respond(message, options, {"session_handle": ("s", session)})

    def _own_remote(self, message: Any, session: str) -> dict | None:
        """The caller's own remote-desktop session, or None (and AccessDenied) when it names another."""
        if session not in self.remote or self.sessions.get(session) != self._sender(message):
            self._error(message, "AccessDenied", "Invalid session")
            return None
        return self.remote[session]

    def _setup(self, message: Any, session: str, step: str) -> dict | None:
        """The caller's own remote-desktop session, still being set up, where `step` was not done yet."""
        state = self._own_remote(message, session)
        if state is not None and (state["state"] != "init" or state[step] is not None):
            self._error(message, "Failed", "Invalid state")
            return None
        return state

    def _options(self, message: Any, options: dict, known: dict[str, str]) -> dict | None:
        """The options this call reads, type-checked as xdg-desktop-portal does (others are dropped)."""
        for key, (signature, _) in options.items():
            if key in known and signature != known[key]:
                self._error(message, "InvalidArgument", f"Expected type '{known[key]}' for option '{key}', got "
                            f"'{signature}'", PORTAL_ERROR)
                return None
        return {key: value for key, (_, value) in options.items() if key in known}

    def _rd_SelectDevices(self, message: Any, path: str, session: str, options: dict) -> None:
        state = self._setup(message, session, "devices")
        chosen = None if state is None else self._options(message, options, DEVICE_OPTIONS)
        if state is None or chosen is None:
            return
        types = chosen.get("types", KEYBOARD | POINTER | TOUCHSCREEN)
        if types & ~(KEYBOARD | POINTER | TOUCHSCREEN):
            return self._error(message, "InvalidArgument", f"Unsupported device type: {types & ~7:x}", PORTAL_ERROR)
        if chosen.get("persist_mode", 0) > 2:
            return self._error(message, "InvalidArgument", f"Invalid persist mode {chosen['persist_mode']}",
                               PORTAL_ERROR)
        token = chosen.get("restore_token", "")
        state.update(devices=types, persist=chosen.get("persist_mode", 0), restored=token in self.tokens)
        self.tokens.discard(token)  # a token is used once
        self._respond(message, options, {})

    def _sc_SelectSources(self, message: Any, path: str, session: str, options: dict) -> None:
        state = self._setup(message, session, "sources")
        chosen = None if state is None else self._options(message, options, SOURCE_OPTIONS)
        if state is None or chosen is None:
            return
        if "restore_token" in chosen or "persist_mode" in chosen:
            return self._error(message, "InvalidArgument", "Remote desktop sessions cannot persist", PORTAL_ERROR)
        if chosen.get("types", 1) & ~PROPERTY_VALUES[SCREENCAST]["AvailableSourceTypes"][1]:
            return self._error(message, "InvalidArgument", "Unsupported source type", PORTAL_ERROR)
        state["sources"] = chosen.get("types", 1)
        self._respond(message, options, {})

    def _rd_Start(self, message: Any, path: str, session: str, parent: str, options: dict) -> None:
        state = self._own_remote(message, session)
        if state is None:
            return
        if state["state"] != "init":
            return self._error(message, "Failed", "Can only start once")
        if not state["restored"]:
            self.asked += 1  # the desktop shows its dialog, and the user answers `answer`
            if self.answer != 0:
                self.remote.pop(session)["state"] = "closed"
                return self._respond(message, options, {}, response=1)
        available = PROPERTY_VALUES[REMOTE]["AvailableDeviceTypes"][1]
        state.update(state="started", shared=(KEYBOARD | POINTER | TOUCHSCREEN if state["devices"] is None
                                              else state["devices"]) & available)
        results: dict[str, Any] = {"devices": ("u", state["shared"])}
        if state["sources"] is not None:
            state["streams"] = self.monitors
            results["streams"] = ("a(ua{sv})", [(node, {"position": ("(ii)", position), "size": ("(ii)", size),
                                                        "source_type": ("u", 1)})
                                                for node, position, size in self.monitors])
        if state["persist"]:
            token = secrets.token_hex(8)
            self.tokens.add(token)
            results["restore_token"] = ("s", token)
        self._respond(message, options, results)

    def _notify(self, message: Any, session: str, device: int, event: tuple,
                at: tuple[float, float] | None = None) -> None:
        """A Notify call: on a started session that was given `device` (any connection of the same app
        may send them, as the portal checks the app, not the connection); an absolute one `at` a point
        inside a shared stream's size."""
        state = self.remote.get(session)
        if state is None:
            return self._error(message, "AccessDenied", "Invalid session")
        if state["state"] != "started" or state["devices"] is None or not state["shared"] & device:
            kind = "NotifyKeyboard" if device == KEYBOARD else "NotifyPointer"
            return self._error(message, "Failed", f"Session is not allowed to call {kind} methods")
        if at is not None and not any(0 <= at[0] < w and 0 <= at[1] < h for _, _, (w, h) in state.get("streams", [])):
            return self._error(message, "Failed", "Invalid position")
        self.pointer.append(event)
        self._reply(message, "", ())

    def _rd_NotifyPointerMotionAbsolute(self, message: Any, path: str, session: str, options: dict, stream: int,
                                        x: float, y: float) -> None:
        self._notify(message, session, POINTER, ("NotifyPointerMotionAbsolute", stream, x, y), at=(x, y))

    # -- Screenshot
    def _Screenshot(self, message: Any, path: str, parent: str, options: dict) -> None:
        if self.screen is None:
            return self._respond(message, options, {}, response=2)
        picture = self._pictures / f"Screenshot-{secrets.token_hex(4)}.png"
        self.screen.save(picture)
        self._respond(message, options, {"uri": ("s", picture.as_uri())})

    def _PickColor(self, message: Any, path: str, parent: str, options: dict) -> None:
        if self.screen is None:
            return self._respond(message, options, {}, response=2)
        red, green, blue = self.screen.convert("RGB").getpixel((self.screen.width // 2, self.screen.height // 2))
        self._respond(message, options, {"color": ("(ddd)", (red / 255, green / 255, blue / 255))})
