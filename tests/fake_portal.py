"""A stand-in xdg-desktop-portal offering GlobalShortcuts (version 1) on a private session bus, written
from xdg-desktop-portal's own interface documentation, not from our client:

- data/org.freedesktop.portal.GlobalShortcuts.xml: CreateSession(a{sv}) -> o, BindShortcuts(o a(sa{sv}) s
  a{sv}) -> o, ListShortcuts(o a{sv}) -> o, the read-only property version (u); the signals
  Activated/Deactivated(o s t a{sv}) and ShortcutsChanged(o a(sa{sv})).
- data/org.freedesktop.portal.Request.xml: each call answers with a Request object path
  /org/freedesktop/portal/desktop/request/SENDER/TOKEN (TOKEN from handle_token), whose Response(u
  response, a{sv} results) signal carries the result (the object goes once it has answered).
- data/org.freedesktop.portal.Session.xml: sessions live at
  /org/freedesktop/portal/desktop/session/SENDER/TOKEN (TOKEN from session_handle_token), with Close().

As xdg-desktop-portal does (src/global-shortcuts.c), signals go to the session's owner alone, from
/org/freedesktop/portal/desktop, and a call naming another connection's or no session is refused
with AccessDenied "Invalid session". Anything else is refused with the error a GDBus service gives:
UnknownObject for a path nothing is exported at, UnknownMethod for a method the object lacks, and
InvalidArgs for a wrong signature or an unknown interface or property.
"""

from __future__ import annotations

import secrets
import subprocess
import threading
import time
from typing import Any

BUS_NAME = "org.freedesktop.portal.Desktop"
OBJECT = "/org/freedesktop/portal/desktop"
SHORTCUTS = "org.freedesktop.portal.GlobalShortcuts"
REQUEST = "org.freedesktop.portal.Request"
SESSION = "org.freedesktop.portal.Session"
PROPERTIES = "org.freedesktop.DBus.Properties"
ERROR = "org.freedesktop.DBus.Error."
# (interface, method) -> input signature, per kind of object
PORTAL_METHODS = {(SHORTCUTS, "CreateSession"): "a{sv}", (SHORTCUTS, "BindShortcuts"): "oa(sa{sv})sa{sv}",
                  (SHORTCUTS, "ListShortcuts"): "oa{sv}", (PROPERTIES, "Get"): "ss", (PROPERTIES, "GetAll"): "s"}
SESSION_METHODS = {(SESSION, "Close"): ""}


class PrivateBus:
    """A dbus-daemon of our own; `address` is what DBUS_SESSION_BUS_ADDRESS would hold."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--print-address"],
                                     stdout=subprocess.PIPE, text=True)
        self.address = self.proc.stdout.readline().strip() if self.proc.stdout else ""

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


class StandInPortal:
    """The portal's GlobalShortcuts on `address`; the test plays the desktop with activate(),
    deactivate() and change(), and `calls` records every method call as (path, interface, member)."""

    def __init__(self, address: str) -> None:
        from jeepney.bus_messages import message_bus
        from jeepney.io.blocking import open_dbus_connection

        self.calls: list[tuple[str, str, str]] = []
        self.sessions: dict[str, str] = {}  # session path -> its owner's unique name
        self.shortcuts: dict[str, list[tuple[str, dict[str, Any]]]] = {}  # session path -> bound shortcuts
        self._conn = open_dbus_connection(address)
        self._conn.send_and_get_reply(message_bus.RequestName(BUS_NAME), timeout=5)
        threading.Thread(target=self._serve, daemon=True).start()

    def close(self) -> None:
        self._conn.close()

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
        getattr(self, f"_{member}")(message, path, *message.body)

    def _error(self, message: Any, name: str, text: str) -> None:
        from jeepney import new_error

        self._conn.send(new_error(message, ERROR + name, "s", (text,)))

    def _reply(self, message: Any, signature: str, body: tuple) -> None:
        from jeepney import new_method_return

        self._conn.send(new_method_return(message, signature, body))

    @staticmethod
    def _sender(message: Any) -> str:
        from jeepney import HeaderFields

        return message.header.fields[HeaderFields.sender]

    def _handle(self, message: Any, kind: str, token: str) -> str:
        return f"{OBJECT}/{kind}/{self._sender(message).lstrip(':').replace('.', '_')}/{token}"

    def _respond(self, message: Any, options: dict, results: dict) -> None:
        """Reply with the Request's path, then send its Response to the caller (at once: this desktop
        asks the user nothing)."""
        from jeepney import DBusAddress, HeaderFields, new_signal

        token = options.get("handle_token", ("s", f"t{secrets.token_hex(4)}"))[1]
        request = self._handle(message, "request", token)
        self._reply(message, "o", (request,))
        signal = new_signal(DBusAddress(request, interface=REQUEST), "Response", "ua{sv}", (0, results))
        signal.header.fields[HeaderFields.destination] = self._sender(message)
        self._conn.send(signal)

    # methods are named as on D-Bus, so a call finds its handler by name
    def _Get(self, message: Any, path: str, interface: str, name: str) -> None:
        if (interface, name) != (SHORTCUTS, "version"):
            return self._error(message, "InvalidArgs", f"No such property '{name}' on interface '{interface}'")
        self._reply(message, "v", (("u", 1),))

    def _GetAll(self, message: Any, path: str, interface: str) -> None:
        if interface != SHORTCUTS:
            return self._error(message, "InvalidArgs", f"No such interface '{interface}'")
        self._reply(message, "a{sv}", ({"version": ("u", 1)},))

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
        self._reply(message, "", ())
