"""Hotkeys through the GlobalShortcuts portal, against a stand-in portal on a real private session bus
that follows xdg-desktop-portal's documented interface (tests/fake_portal.py)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator

import pytest
from fake_portal import OBJECT, SHORTCUTS, StandInPortal, wayland_desktop

from describe_screen.config import Config
from describe_screen.errors import UserError
from describe_screen.hotkeys import ready_words, start_hotkeys


def wait_for(done: Callable[[], bool], timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def portal(monkeypatch) -> Iterator[StandInPortal]:
    with wayland_desktop(monkeypatch) as stand_in:
        yield stand_in


def test_a_shortcut_change_leaves_every_hotkey_working(portal):
    """The user picks another key in the desktop's settings (ShortcutsChanged); the keys still fire,
    and the ask key's release (Deactivated) ends the spoken question."""
    requests: list[dict] = []
    reports: list[UserError] = []
    listener = start_hotkeys(Config(), requests.append, reports.append)
    try:
        assert listener is not None, reports
        session = next(iter(portal.sessions))
        bound = dict(portal.shortcuts[session])
        assert "describe_pointer" not in bound  # Wayland never says where the pointer is
        assert "ask" in bound and "describe_screen" in bound
        assert ready_words(listener) == "describe-screen is ready. Press CTRL+ALT+d to describe the screen."
        portal.change(session, {"describe_screen": "Super+D", "ask": "Super+A"})
        portal.activate(session, "describe_screen")
        portal.activate(session, "ask")
        portal.deactivate(session, "ask")
        assert wait_for(lambda: len(requests) == 3), (requests, reports)
        assert wait_for(lambda: listener.bound.get("describe_screen") == "Super+D")
    finally:
        listener.stop()
    assert {"cmd": "describe", "target": "screen"} in requests
    assert {"cmd": "listen_start"} in requests and {"cmd": "listen_stop"} in requests
    assert not reports
    assert (session, "org.freedesktop.portal.Session", "Close") in portal.calls  # stop ends the session


def test_the_desktop_lists_each_shortcut_by_its_name_in_the_users_language(portal, desktop):
    """The portal's description is what the desktop's shortcut settings show and its screen reader reads."""
    desktop("de_DE.UTF-8")
    reports: list[UserError] = []
    listener = start_hotkeys(Config(), lambda request: None, reports.append)
    try:
        assert listener is not None, reports
        bound = dict(portal.shortcuts[next(iter(portal.sessions))])
    finally:
        listener.stop()
    assert bound["describe_screen"]["description"] == ("s", "Bildschirm beschreiben")
    assert bound["ask"]["description"] == ("s", "Frage stellen")


def test_a_listener_that_dies_says_so(portal, caplog):
    """Whatever ends the listening thread is said (spoken through `report`) and logged, never silent."""
    from describe_screen import portal_keys

    reports: list[UserError] = []
    listener = portal_keys.PortalShortcuts({"describe_screen": "<ctrl>+<alt>+d"}, print, print, reports.append)
    listener._signal = lambda member, body: 1 / 0  # a fault nobody foresaw, on the first signal
    listener.start()
    try:
        with caplog.at_level(logging.ERROR):
            portal.activate(next(iter(portal.sessions)), "describe_screen")
            assert wait_for(lambda: bool(reports))
    finally:
        listener.stop()
    assert "Hotkeys stopped working" in reports[0].problem and "ZeroDivisionError" in reports[0].problem
    assert "Restart describe-screen" in reports[0].fix
    assert "listening to the shortcuts portal failed" in caplog.text


def test_held_ask_key_is_released_when_hotkeys_stop(portal):
    released: list[str] = []
    from describe_screen import portal_keys

    listener = portal_keys.PortalShortcuts({"ask": "<ctrl>+<alt>+a"}, lambda a: None, released.append, print)
    listener.start()
    portal.activate(next(iter(portal.sessions)), "ask")
    time.sleep(1)
    listener.stop()
    assert released == ["ask"]


def test_the_stand_in_refuses_what_the_real_portal_refuses(portal):
    """A wrong path, method, signature or session gets the error a GDBus service gives."""
    from jeepney import DBusAddress, HeaderFields, new_method_call
    from jeepney.io.blocking import open_dbus_connection

    conn = open_dbus_connection(os.environ["DBUS_SESSION_BUS_ADDRESS"])
    portal_object = DBusAddress(OBJECT, bus_name="org.freedesktop.portal.Desktop", interface=SHORTCUTS)

    def error(address: DBusAddress, method: str, signature: str | None = None, body: tuple = ()) -> str:
        reply = conn.send_and_get_reply(new_method_call(address, method, signature, body), timeout=10)
        return reply.header.fields.get(HeaderFields.error_name, "")

    try:
        assert error(portal_object, "CreateSession", "s", ("x",)) == "org.freedesktop.DBus.Error.InvalidArgs"
        assert error(portal_object, "Bind", "a{sv}", ({},)) == "org.freedesktop.DBus.Error.UnknownMethod"
        wrong = DBusAddress("/org/freedesktop/portal/desktop/keys", bus_name="org.freedesktop.portal.Desktop",
                            interface=SHORTCUTS)
        assert error(wrong, "CreateSession", "a{sv}", ({},)) == "org.freedesktop.DBus.Error.UnknownObject"
        stranger = f"{OBJECT}/session/1_1/nobody"
        assert error(portal_object, "ListShortcuts", "oa{sv}", (stranger, {})) == \
            "org.freedesktop.DBus.Error.AccessDenied"
    finally:
        conn.close()
