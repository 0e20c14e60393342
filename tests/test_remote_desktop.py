"""Pressing on GNOME and KDE Plasma through the remote-desktop portal, against the stand-in portal on a real
private session bus (tests/fake_portal.py follows xdg-desktop-portal's documented RemoteDesktop and
ScreenCast interfaces and refuses what the real one refuses)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_portal import OBJECT, REMOTE, SCREENCAST, StandInPortal, wayland_desktop

from describe_screen import press, remote_desktop
from describe_screen.capture.portal import BUS_NAME, Bus
from describe_screen.config import Config
from describe_screen.errors import UserError

SCREEN = (0, 0, 1280, 720)
LEFT, RIGHT = 0x110, 0x111  # BTN_LEFT, BTN_RIGHT in linux/input-event-codes.h
CLICK = [("NotifyPointerButton", LEFT, 1), ("NotifyPointerButton", LEFT, 0)]


@pytest.fixture
def portal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StandInPortal]:
    """A KDE Plasma Wayland session whose portal is the stand-in; describe-screen's files in tmp_path."""
    monkeypatch.setenv("DESCRIBE_SCREEN_DATA", str(tmp_path))
    with wayland_desktop(monkeypatch) as stand_in:
        try:
            yield stand_in
        finally:
            restart_daemon()


def restart_daemon() -> None:
    """What a new daemon starts with: no session kept (the desktop ends one with its connection)."""
    while remote_desktop._KEPT:
        remote_desktop._KEPT.pop().close()


def creations(portal: StandInPortal) -> int:
    return sum(1 for _, interface, member in portal.calls if (interface, member) == (REMOTE, "CreateSession"))


def test_the_portal_asks_once_then_clicks_where_asked_and_remembers_the_answer(portal, tmp_path) -> None:
    assert press.route() == press.ROUTE_PORTAL
    said: list[str] = []
    remote_desktop.click(640, 360, SCREEN, LEFT, 1, 0.0, said.append)
    assert said == [remote_desktop.FIRST_TIME] and portal.asked == 1  # said before the desktop asks
    assert portal.pointer == [("NotifyPointerMotionAbsolute", 44, 640.0, 360.0), *CLICK]
    token = (tmp_path / "remote-desktop-token").read_text()
    assert token in portal.tokens and (tmp_path / "remote-desktop-token").stat().st_mode & 0o777 == 0o600
    remote_desktop.click(100, 50, SCREEN, RIGHT, 1, 0.0, said.append)  # the same session, kept
    assert creations(portal) == 1 and portal.pointer[-2:] == [("NotifyPointerButton", RIGHT, 1),
                                                              ("NotifyPointerButton", RIGHT, 0)]
    restart_daemon()
    portal.pointer.clear()
    remote_desktop.click(10, 20, SCREEN, LEFT, 2, 0.0, said.append)  # a double click after a restart
    assert portal.asked == 1 and said == [remote_desktop.FIRST_TIME]  # restored with the token: not asked again
    assert portal.pointer == [("NotifyPointerMotionAbsolute", 44, 10.0, 20.0), *CLICK, *CLICK]
    assert (tmp_path / "remote-desktop-token").read_text() != token  # a token is used once: the new one is kept


def test_the_daemon_says_what_it_presses_and_what_the_desktop_will_ask_then_presses_there(portal, tmp_path,
                                                                                         monkeypatch) -> None:
    """A KDE session end to end: the screenshot portal's picture is read, explored, and Save is pressed
    through the remote-desktop portal at its centre."""
    from screens import THEMES, dialog
    from test_press import explore, reading_daemon, said

    portal.screen = dialog("Monthly report", ["Save the report before closing?"], ["Cancel", "Save"], size=20).image
    daemons = reading_daemon(tmp_path, monkeypatch)
    d = next(daemons)
    try:
        said(d, {"cmd": "describe", "target": "screen"})
        assert explore(d, "find", "save").startswith("Button, Save, 2 of 2")
        before = len(d.speaker.spoken)
        assert said(d, {"cmd": "activate"}) == "Pressing Button Save. Nothing changed on screen."
        d.speaker.wait_idle(30)
        assert " ".join(d.speaker.spoken[before:]) == (  # the desktop's question is announced before it comes
            f"Pressing Button Save. {remote_desktop.FIRST_TIME} Nothing changed on screen.")
    finally:
        daemons.close()
    (_, _, x, y), *clicks = portal.pointer
    assert clicks == CLICK
    border = THEMES["light"][3]  # the drawn button's outline: found on all four sides of the point pressed
    row = [portal.screen.getpixel((int(x) + dx, int(y))) for dx in range(-60, 61)]
    column = [portal.screen.getpixel((int(x), int(y) + dy)) for dy in range(-25, 26)]
    assert border in row[:60] and border in row[61:] and border in column[:25] and border in column[26:]


def test_a_point_in_screenshot_pixels_lands_in_its_monitors_stream(portal) -> None:
    """The screenshot portal gives pixels (twice the logical size on a 2x display); the streams are in
    logical coordinates, one per monitor."""
    portal.monitors = [(44, (0, 0), (1280, 720)), (45, (1280, 0), (1280, 720))]
    remote_desktop.click(3000, 1000, (0, 0, 5120, 1440), LEFT, 1, 0.0)
    assert portal.pointer[0] == ("NotifyPointerMotionAbsolute", 45, 220.0, 500.0)


def test_a_session_the_desktop_ended_is_started_anew(portal) -> None:
    remote_desktop.click(640, 360, SCREEN, LEFT, 1, 0.0)
    portal.remote.clear()  # the desktop ended it (the user stopped sharing)
    portal.pointer.clear()
    remote_desktop.click(320, 200, SCREEN, LEFT, 1, 0.0)
    assert creations(portal) == 2 and portal.asked == 1
    assert portal.pointer == [("NotifyPointerMotionAbsolute", 44, 320.0, 200.0), *CLICK]


def test_a_refusal_is_said_and_nothing_is_pressed(portal, tmp_path) -> None:
    portal.answer = 1  # the user chooses Deny
    said: list[str] = []
    with pytest.raises(UserError) as refused:
        remote_desktop.click(640, 360, SCREEN, LEFT, 1, 0.0, said.append)
    assert refused.value.problem.startswith("The desktop did not allow describe-screen to control the pointer")
    assert "choose Allow" in refused.value.fix
    assert portal.pointer == [] and not (tmp_path / "remote-desktop-token").exists()
    portal.answer = 0
    remote_desktop.click(640, 360, SCREEN, LEFT, 1, 0.0, said.append)
    assert said == [remote_desktop.FIRST_TIME] * 2 and portal.asked == 2  # asked again, and said so first again


def test_the_stand_in_refuses_what_the_real_portal_refuses(portal) -> None:
    from jeepney import DBusAddress, HeaderFields, new_method_call

    def error(bus: Bus, interface: str, method: str, signature: str, *body: object) -> str:
        call = new_method_call(DBusAddress(OBJECT, bus_name=BUS_NAME, interface=interface), method, signature, body)
        reply = bus.conn.send_and_get_reply(call, timeout=10)
        return reply.header.fields.get(HeaderFields.error_name, "")

    failed, denied = "org.freedesktop.DBus.Error.Failed", "org.freedesktop.DBus.Error.AccessDenied"
    invalid = "org.freedesktop.portal.Error.InvalidArgument"
    with Bus() as bus, Bus() as stranger:
        session = str(bus.request(REMOTE, "CreateSession", "a{sv}", ({},))[1]["session_handle"])
        assert error(bus, REMOTE, "NotifyPointerButton", "oa{sv}iu", session, {}, LEFT, 1) == failed  # not started
        assert error(bus, REMOTE, "SelectDevices", "oa{sv}", session, {"types": ("s", "pointer")}) == invalid
        assert error(bus, REMOTE, "SelectDevices", "oa{sv}", session, {"types": ("u", 8)}) == invalid
        assert error(stranger, REMOTE, "SelectDevices", "oa{sv}", session, {}) == denied  # not its session
        assert error(bus, SCREENCAST, "SelectSources", "oa{sv}", session, {"persist_mode": ("u", 2)}) == invalid
        assert error(bus, REMOTE, "SelectDevices", "oa{sv}", session, {}) == ""
        assert error(bus, REMOTE, "SelectDevices", "oa{sv}", session, {}) == failed  # only once
        assert error(bus, REMOTE, "NotifyPointerMotionAbsolute", "oa{sv}dd", session, {}, 1.0, 2.0) == (
            "org.freedesktop.DBus.Error.InvalidArgs")  # the stream argument is missing
        assert bus.request(SCREENCAST, "SelectSources", "oa{sv}", (session, {"types": ("u", 1)}))[0] == 0
        assert bus.request(REMOTE, "Start", "osa{sv}", (session, "", {}))[0] == 0
        assert error(bus, REMOTE, "Start", "osa{sv}", session, "", {}) == failed  # only once
        assert error(bus, REMOTE, "NotifyPointerMotionAbsolute", "oa{sv}udd", session, {}, 44, 5000.0, 10.0) == (
            failed)  # beyond every shared screen: "Invalid position"
        assert error(bus, REMOTE, "NotifyPointerMotionAbsolute", "oa{sv}udd", session, {}, 44, 5.0, 10.0) == ""
    assert portal.pointer == [("NotifyPointerMotionAbsolute", 44, 5.0, 10.0)]


def test_doctor_says_pressing_goes_through_the_portal_and_how_it_is_allowed(portal) -> None:
    from describe_screen.commands.doctor import check_pressing

    check = check_pressing(Config())
    assert check.status == "ok" and "uses the desktop's remote-desktop portal" in check.says
    assert "the desktop asks whether describe-screen may control the pointer" in check.says
    assert "turn on Allow remote interaction, then choose Share" in check.says


def test_a_portal_that_offers_no_pointer_is_said_plainly(portal, monkeypatch) -> None:
    import fake_portal

    monkeypatch.setitem(fake_portal.PROPERTY_VALUES[REMOTE], "AvailableDeviceTypes", ("u", fake_portal.KEYBOARD))
    with pytest.raises(UserError, match="remote-desktop portal offers no pointer") as refused:
        press.route()
    assert "xdg-desktop-portal-gnome" in refused.value.fix


def test_without_a_remote_desktop_portal_pressing_is_refused_with_what_to_install(monkeypatch) -> None:
    from jeepney.bus_messages import message_bus
    from jeepney.io.blocking import Proxy

    from describe_screen.commands.doctor import check_pressing

    with wayland_desktop(monkeypatch, "GNOME") as portal, Bus() as bus:
        portal.close()  # the session bus stays, and no portal answers on it
        while Proxy(message_bus, bus.conn).NameHasOwner(BUS_NAME)[0]:
            time.sleep(0.05)
        check = check_pressing(Config())
    assert check.status == "note" and check.says.startswith("This desktop offers no remote-desktop portal")
    assert "xdg-desktop-portal-gnome" in check.fix
