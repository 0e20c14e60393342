"""Linux: Orca's D-Bus remote controller (Orca 49 and later), or speech-dispatcher, the speech server
Orca itself speaks through (and that other screen readers such as Fenrir use too)."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from describe_screen.i18n import N_, _, spoken_list
from describe_screen.screenreader import POLL, Candidate, Unavailable, import_system, wait_while_spoken

log = logging.getLogger(__name__)

CLIENT_NAME = "describe-screen"


def candidates() -> list[Candidate]:
    return [Candidate("Orca", orca_running, OrcaRemote),
            Candidate("Orca", orca_running, SpeechDispatcher)]


def orca_running(proc: Path = Path("/proc")) -> bool:
    """Whether an Orca process of this user runs (it is a Python script named orca)."""
    uid = os.getuid()
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid == uid and (entry / "comm").read_text().strip() == "orca":
                return True
        except OSError:  # the process ended while we looked
            continue
    return False


class SpeechDispatcher:
    """speech-dispatcher through its own Python client (`speechd`, Debian's python3-speechd).

    Messages go at TEXT priority, the one Orca speaks at: a new message from us or from Orca interrupts
    the one being spoken, so the user's navigation silences us as it silences Orca, and our next
    request silences our last. One sentence is sent at a time, the next after its END event.
    """

    name = "speech-dispatcher"

    def __init__(self, address: str | None = None) -> None:
        speechd = import_system("speechd")
        self._speechd = speechd
        try:
            self._client = speechd.SSIPClient(CLIENT_NAME, address=address)
            self._client.set_priority(speechd.Priority.TEXT)
        except Exception as exc:  # SSIPCommunicationError, SpawnError, OSError: all mean "not reachable"
            raise Unavailable(_("speech-dispatcher cannot be reached ({exc})", exc=exc)) from exc

    def speak(self, text: str, interrupted: Callable[[], bool]) -> bool:
        kinds = self._speechd.CallbackType
        ended = threading.Event()
        outcome: list[str] = []

        def on_event(kind: str, *args: Any, **kwargs: Any) -> None:
            outcome.append(kind)
            ended.set()

        self._client.speak(text, callback=on_event, event_types=(kinds.END, kinds.CANCEL))
        # a server that never reports the end (a broken audio output) must not hang the speech thread
        deadline = time.monotonic() + 10 + 0.2 * len(text)
        while not ended.wait(POLL):
            if interrupted():
                self.cancel()
                return True
            if time.monotonic() > deadline:
                return True
        return outcome[0] == kinds.END

    def cancel(self) -> None:
        self._client.cancel()

    def cancel_all(self) -> None:
        """Silence every client's speech, the screen reader's too."""
        self._client.cancel(self._speechd.Scope.ALL)

    def close(self) -> None:
        self._client.close()


@dataclass(frozen=True)
class Call:
    """One documented method of Orca's remote controller; `args` come before the ones given at call time."""

    path: str
    interface: str
    method: str
    signature: str
    args: tuple = ()


@dataclass(frozen=True)
class Dialect:
    """How one Orca version speaks a message and interrupts speech (Orca's remote-controller documentation)."""

    label: str
    present: Call
    interrupt: Call


# By service name on the session bus, newest first; a service's dialects in the order they are tried.
# 51 renamed the service and calls module commands directly; 50 renamed SpeechAndVerbosityManager.
_PRESENT_49 = Call("/org/gnome/Orca/Service", "org.gnome.Orca.Service", "PresentMessage", "s")


def _execute_interrupt(module: str) -> Call:
    return Call(f"/org/gnome/Orca/Service/{module}", "org.gnome.Orca.Module", "ExecuteCommand", "sb",
                ("InterruptSpeech", False))


DIALECTS = {
    "org.gnome.Orca1.Service": [Dialect(
        "Orca 51", Call("/org/gnome/Orca1/Service", "org.gnome.Orca1.Service", "PresentMessage", "s"),
        Call("/org/gnome/Orca1/Service/SpeechManager", "org.gnome.Orca1.SpeechManager", "InterruptSpeech", "b",
             (False,)))],
    "org.gnome.Orca.Service": [Dialect("Orca 50", _PRESENT_49, _execute_interrupt("SpeechManager")),
                               Dialect("Orca 49", _PRESENT_49, _execute_interrupt("SpeechAndVerbosityManager"))],
}
FALLBACK_NOTE = N_("Orca's remote control failed, so speech-dispatcher speaks instead.")


class OrcaRemote:
    """Orca's D-Bus remote controller: PresentMessage speaks in the user's Orca voice and flashes the
    message in braille; InterruptSpeech is the stop. Spoken through jeepney (pure-Python D-Bus).

    The dialect is the first whose methods Orca's introspection data lists with the documented
    arguments, so a renamed path is found at start (and said by `doctor`), not at the first stop. Every
    reply is read: an error, or False (the documented "did not succeed"), hands speech to speech-dispatcher
    for good, said once in the log and once aloud."""

    def __init__(self) -> None:
        try:
            from jeepney.bus_messages import message_bus
            from jeepney.io.blocking import open_dbus_connection

            self._connection = open_dbus_connection(bus="SESSION")
            self._lock = threading.Lock()  # stop() cancels from the request thread while the speech thread speaks
        except Exception as exc:  # no jeepney, no session bus
            raise Unavailable(_("the session D-Bus cannot be reached ({exc})", exc=exc)) from exc
        self._fallback: SpeechDispatcher | None = None
        self._note = ""
        try:
            for service, dialects in DIALECTS.items():
                if self._connection.send_and_get_reply(message_bus.NameHasOwner(service), timeout=2).body[0]:
                    self._service = service
                    self._dialect = self._pick(dialects)
                    self.name = _("{orca}'s remote controller ({service})", orca=self._dialect.label, service=service)
                    return
        except Unavailable:
            self._connection.close()
            raise
        except Exception as exc:  # a bus that does not answer in time, or answers with an error
            self._connection.close()
            raise Unavailable(_("the session D-Bus did not answer ({exc})", exc=exc)) from exc
        self._connection.close()
        raise Unavailable(_("this Orca has no D-Bus remote controller (Orca 49 or later has one)"))

    def _pick(self, dialects: list[Dialect]) -> Dialect:
        missing = []
        for dialect in dialects:
            gaps = [gap for call in (dialect.present, dialect.interrupt) if (gap := self._missing(call))]
            if not gaps:
                return dialect
            missing += gaps
        raise Unavailable(_("{service} has no {missing}", service=self._service, missing=spoken_list(missing)))

    def _missing(self, call: Call) -> str:
        """"" when Orca's introspection data lists `call` with its documented arguments, else what is missing
        ("org.gnome.Orca1.SpeechManager.InterruptSpeech(b) at /org/gnome/Orca1/Service/SpeechManager")."""
        import xml.etree.ElementTree as ET

        from jeepney import DBusAddress, new_method_call

        method = f"{call.interface}.{call.method}"
        address = DBusAddress(call.path, bus_name=self._service, interface="org.freedesktop.DBus.Introspectable")
        reply = self._connection.send_and_get_reply(new_method_call(address, "Introspect"), timeout=5)
        if error := self._error(reply):
            return _("{method} at {path} ({error})", method=method, path=call.path, error=error)
        for interface in ET.fromstring(reply.body[0]).iter("interface"):
            for method in interface.iter("method"):
                if (interface.get("name"), method.get("name")) == (call.interface, call.method):
                    given = "".join(arg.get("type", "") for arg in method.iter("arg") if arg.get("direction") != "out")
                    if given == call.signature:
                        return ""
        return _("{method} at {path}", method=method + "(" + call.signature + ")", path=call.path)

    @staticmethod
    def _error(reply: Any) -> str:
        from jeepney import HeaderFields, MessageType

        if reply.header.message_type != MessageType.error:
            return ""
        detail = f": {reply.body[0]}" if reply.body else ""
        return f"{reply.header.fields.get(HeaderFields.error_name)}{detail}"

    def _call(self, call: Call, *args: Any) -> str:
        """Call Orca; "" when it says it succeeded, else the problem in words."""
        from jeepney import DBusAddress, new_method_call

        address = DBusAddress(call.path, bus_name=self._service, interface=call.interface)
        try:
            with self._lock:  # a blocking jeepney connection is not safe to share between threads
                reply = self._connection.send_and_get_reply(
                    new_method_call(address, call.method, call.signature, call.args + args), timeout=5)
        except Exception as exc:  # Orca quit, or hangs
            return _("Orca did not answer {method} ({exc})", method=call.method, exc=exc)
        if error := self._error(reply):
            return _("Orca answered an error to {method}: {error}", method=call.method, error=error)
        if reply.body != (True,):
            return _("Orca answered {answer} to {method}", answer=reply.body[0] if reply.body else _("nothing"),
                     method=call.method)
        return ""

    def _fall_back(self, problem: str) -> SpeechDispatcher:
        with self._lock:  # one switch, even when the speech thread and stop() fail at once
            if self._fallback is None:
                self._fallback = SpeechDispatcher()  # Unavailable when it cannot be reached: Orca is tried again
                log.warning("%s; speaking through speech-dispatcher from now on", problem)
                self.name = f"speech-dispatcher: {problem}"
                self._note = _(FALLBACK_NOTE)
            return self._fallback

    def speak(self, text: str, interrupted: Callable[[], bool]) -> bool:
        fallback = self._fallback
        if fallback is None:
            problem = self._call(self._dialect.present, text)
            if not problem:
                return wait_while_spoken(text, interrupted, self.cancel)  # Orca does not say when it is done
            fallback = self._fall_back(problem)
        if self._note:
            note, self._note = self._note, ""
            fallback.speak(note, interrupted)
        return fallback.speak(text, interrupted)

    def cancel(self) -> None:
        if self._fallback is not None:
            self._fallback.cancel()
        elif problem := self._call(self._dialect.interrupt):
            # Orca may still be saying our sentence: silence every client, as InterruptSpeech would
            self._fall_back(problem).cancel_all()

    def close(self) -> None:
        self._connection.close()
        if self._fallback is not None:
            self._fallback.close()
