"""Linux: Orca's D-Bus remote controller (Orca 49 and later), or speech-dispatcher, the speech server
Orca itself speaks through (and that other screen readers such as Fenrir use too)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from describe_screen.screenreader import POLL, Candidate, Unavailable, import_system, wait_while_spoken

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
            raise Unavailable(f"speech-dispatcher cannot be reached ({exc})") from exc

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

    def close(self) -> None:
        self._client.close()


# Orca 51 renamed its service (org.gnome.Orca1.Service); 49 and 50 use org.gnome.Orca.Service.
ORCA_SERVICES = ("Orca1", "Orca")


class OrcaRemote:
    """Orca's D-Bus remote controller: PresentMessage speaks in the user's Orca voice and flashes the
    message in braille; InterruptSpeech is the stop. Spoken through jeepney (pure-Python D-Bus)."""

    name = "Orca"

    def __init__(self) -> None:
        try:
            from jeepney.bus_messages import message_bus
            from jeepney.io.blocking import open_dbus_connection

            self._connection = open_dbus_connection(bus="SESSION")
            self._lock = threading.Lock()  # stop() cancels from the request thread while the speech thread speaks
        except Exception as exc:  # no jeepney, no session bus
            raise Unavailable(f"the session D-Bus cannot be reached ({exc})") from exc
        try:
            for version in ORCA_SERVICES:
                reply = self._connection.send_and_get_reply(
                    message_bus.NameHasOwner(f"org.gnome.{version}.Service"), timeout=2)
                if reply.body[0]:
                    self._version = version
                    self.name = f"Orca ({version}.Service on D-Bus)"
                    return
        except Exception as exc:  # a bus that does not answer in time, or answers with an error
            self._connection.close()
            raise Unavailable(f"the session D-Bus did not answer ({exc})") from exc
        self._connection.close()
        raise Unavailable("this Orca has no D-Bus remote controller (Orca 49 or later has one)")

    def _call(self, path: str, interface: str, method: str, signature: str, body: tuple) -> Any:
        from jeepney import DBusAddress, new_method_call

        service = f"org.gnome.{self._version}.Service"
        address = DBusAddress(f"/org/gnome/{self._version}/Service{path}", bus_name=service,
                              interface=interface)
        with self._lock:  # a blocking jeepney connection is not safe to share between threads
            return self._connection.send_and_get_reply(new_method_call(address, method, signature, body), timeout=5)

    def speak(self, text: str, interrupted: Callable[[], bool]) -> bool:
        self._call("", f"org.gnome.{self._version}.Service", "PresentMessage", "s", (text,))
        return wait_while_spoken(text, interrupted, self.cancel)  # Orca does not say when it is done

    def cancel(self) -> None:
        self._call("/SpeechAndVerbosityManager", f"org.gnome.{self._version}.Module", "ExecuteCommand", "sb",
                   ("InterruptSpeech", False))

    def close(self) -> None:
        self._connection.close()
