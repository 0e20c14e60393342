"""Clicking on GNOME and KDE Plasma through the remote-desktop portal (org.freedesktop.portal.RemoteDesktop).

These desktops let no program move the pointer by itself; a program asks the desktop for a remote-desktop
session instead, and the desktop asks the user once. The documented sequence (xdg-desktop-portal's
data/org.freedesktop.portal.RemoteDesktop.xml and ScreenCast.xml), each step answered through a Request:
  RemoteDesktop.CreateSession(a{sv}) -> the session handle;
  RemoteDesktop.SelectDevices(o, a{sv}: types POINTER, persist_mode 2, restore_token): the answer is
    remembered until the user withdraws it, and a saved token restores it without asking;
  ScreenCast.SelectSources(o, a{sv}: types MONITOR, multiple): absolute pointer motion is given in a
    screen-cast stream's logical coordinates, so the session shares the monitors (no pixels are read);
  RemoteDesktop.Start(o, s, a{sv}) -> devices, streams a(ua{sv}) (node id; position, size), restore_token;
then NotifyPointerMotionAbsolute(o, a{sv}, u stream, d x, d y) and NotifyPointerButton(o, a{sv}, i evdev
button, u state). The session lives as long as this connection: one is kept for the daemon's life.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from describe_screen.errors import UserError
from describe_screen.i18n import N_, _

REMOTE = "org.freedesktop.portal.RemoteDesktop"
SCREENCAST = "org.freedesktop.portal.ScreenCast"
SESSION = "org.freedesktop.portal.Session"
POINTER = 2  # RemoteDesktop device type
MONITOR = 1  # ScreenCast source type
PERSIST_UNTIL_REVOKED = 2
RELEASED, PRESSED = 0, 1
FIRST_TIME = N_("Your desktop is about to ask whether describe-screen may control the pointer. Please allow it: "
                 "turn on remote interaction, choose Share, and let it remember the answer if it offers to. That is "
                 "how I press the element you chose; the screen is shared only to aim the pointer, and nothing is "
                 "recorded. It asks only this once.")
Rect = tuple[float, float, float, float]


def check() -> None:
    """Raise a UserError unless this desktop's portal offers pointer control with screen-cast streams."""
    from describe_screen.capture.portal import Bus

    with Bus() as bus:
        if not bus.version(REMOTE) or not bus.version(SCREENCAST):
            raise UserError(_("This desktop offers no remote-desktop portal, so describe-screen cannot press "
                              "anything here."),
                            _("Install xdg-desktop-portal and your desktop's portal (xdg-desktop-portal-gnome or "
                              "-kde), log out and in again; exploring and reading work meanwhile."))
        if not _property(bus, REMOTE, "AvailableDeviceTypes") & POINTER:
            raise UserError(_("This desktop's remote-desktop portal offers no pointer, so describe-screen cannot "
                              "press anything here."), _("Check that your desktop's portal (xdg-desktop-portal-gnome "
                                                         "or -kde) is installed and log out and in again; exploring "
                                                         "and reading work meanwhile."))


def refused() -> UserError:
    """The user (or the desktop's policy) said no to pointer control."""
    return UserError(_("The desktop did not allow describe-screen to control the pointer, so nothing was pressed."),
                     _("Press again, and choose Allow (and to remember it) when the desktop asks."))


class Session:
    """A started remote-desktop session on its own bus connection; `streams` are the shared monitors as
    (PipeWire node id, (x, y, width, height) in the compositor's logical coordinates)."""

    def __init__(self, token_file: Path, say: Callable[[str], None] | None) -> None:
        from describe_screen.capture.portal import Bus

        self.bus = Bus()
        try:
            self.handle, self.streams = self._start(token_file, say)
        except BaseException:
            self.bus.conn.close()
            raise

    def _start(self, token_file: Path, say: Callable[[str], None] | None) -> tuple[str, list[tuple[int, Rect]]]:
        token = token_file.read_text(encoding="utf-8").strip() if token_file.exists() else ""
        code, results = self.bus.request(REMOTE, "CreateSession", "a{sv}",
                                         ({"session_handle_token": ("s", "describe_screen_press")},))
        if code != 0:
            raise refused()
        handle = str(results["session_handle"])
        devices = {"types": ("u", POINTER), "persist_mode": ("u", PERSIST_UNTIL_REVOKED)}
        if token:
            devices["restore_token"] = ("s", token)
        self._answer(self.bus.request(REMOTE, "SelectDevices", "oa{sv}", (handle, devices)))
        self._answer(self.bus.request(SCREENCAST, "SelectSources", "oa{sv}",
                                      (handle, {"types": ("u", MONITOR), "multiple": ("b", True)})))
        if not token and say is not None:
            say(_(FIRST_TIME))
        code, results = self.bus.request(REMOTE, "Start", "osa{sv}", (handle, "", {}))
        if code != 0 or not int(results.get("devices", 0)) & POINTER:
            token_file.unlink(missing_ok=True)  # the next press asks again, and says so first
            raise refused()
        if results.get("restore_token"):  # single use: the next session restores with the new one
            token_file.parent.mkdir(parents=True, exist_ok=True)
            token_file.touch(mode=0o600)
            token_file.write_text(str(results["restore_token"]), encoding="utf-8")
        streams = [(int(node), (*props.get("position", ("ii", (0, 0)))[1], *props["size"][1]))
                   for node, props in results.get("streams", []) if "size" in props]
        if not streams:
            raise UserError(_("The desktop shared no screen with describe-screen, so it cannot aim the pointer."),
                            _("Press again, and share the whole screen when the desktop asks."))
        return handle, streams

    @staticmethod
    def _answer(answered: tuple[int, dict[str, Any]]) -> None:
        if answered[0] != 0:
            raise refused()

    def click(self, x: float, y: float, button: int, presses: int, gap: float) -> None:
        """Press at the logical point (x, y): absolute motion in the stream whose monitor holds it."""
        node, (left, top, *_size) = next(((n, r) for n, r in self.streams if _inside(r, x, y)), (None, (0, 0, 0, 0)))
        if node is None:
            raise UserError(_("That point is on no screen the desktop shared, so nothing was pressed."),
                            _("Capture again and press; if it keeps happening, share every screen when asked."))
        self._notify("NotifyPointerMotionAbsolute", "oa{sv}udd", node, float(x - left), float(y - top))
        for n in range(presses):
            if n:
                time.sleep(gap)
            for state in (PRESSED, RELEASED):
                self._notify("NotifyPointerButton", "oa{sv}iu", button, state)

    def _notify(self, method: str, signature: str, *args: Any) -> None:
        from jeepney import DBusAddress, new_method_call

        from describe_screen.capture.portal import BUS_NAME, OBJECT

        call = new_method_call(DBusAddress(OBJECT, bus_name=BUS_NAME, interface=REMOTE), method, signature,
                               (self.handle, {}, *args))
        reply = self.bus.conn.send_and_get_reply(call, timeout=10)
        if reply.header.message_type.name == "error":
            raise Closed(str(reply.body[0]) if reply.body else method)

    def layout(self) -> Rect:
        """The box around every shared monitor, in logical coordinates."""
        left, top = min(r[0] for _, r in self.streams), min(r[1] for _, r in self.streams)
        return (left, top, max(r[0] + r[2] for _, r in self.streams) - left,
                max(r[1] + r[3] for _, r in self.streams) - top)

    def close(self) -> None:
        from jeepney import DBusAddress, new_method_call

        from describe_screen.capture.portal import BUS_NAME

        with contextlib.suppress(OSError, TimeoutError):  # the desktop closes it with the connection anyway
            self.bus.conn.send_and_get_reply(new_method_call(DBusAddress(self.handle, bus_name=BUS_NAME,
                                                                         interface=SESSION), "Close"), timeout=5)
        self.bus.conn.close()


class Closed(Exception):
    """The desktop refused a pointer call: the session it belonged to has ended."""


_KEPT: list[Session] = []  # the daemon's one session, started at the first press


def click(x: float, y: float, extent: Rect, button: int, presses: int, gap: float,
          say: Callable[[str], None] | None = None) -> None:
    """Press `button` (an evdev code) at the point (x, y) of the desktop whose whole area is `extent` in the
    capture's coordinates
    (the screenshot portal's picture is in pixels; the portal's streams are in logical coordinates: the
    point is carried over in proportion). A session the desktop has ended is started anew, once."""
    from describe_screen.config import data_dir

    for attempt in (1, 2):
        if not _KEPT:
            _KEPT.append(Session(data_dir() / "remote-desktop-token", say))
        session = _KEPT[0]
        left, top, width, height = session.layout()
        lx = left + (x - extent[0]) * width / max(extent[2], 1)
        ly = top + (y - extent[1]) * height / max(extent[3], 1)
        try:
            session.click(lx, ly, button, presses, gap)
            return
        except (Closed, OSError) as exc:
            _KEPT.clear()
            session.close()
            if attempt == 2:
                raise UserError(_("The desktop refused to move the pointer ({problem}).", problem=exc),
                                _("Press again; if it keeps failing, restart describe-screen.")) from exc


def _inside(rect: Rect, x: float, y: float) -> bool:
    return rect[0] <= x < rect[0] + rect[2] and rect[1] <= y < rect[1] + rect[3]


def _property(bus: Any, interface: str, name: str) -> int:
    from jeepney import DBusAddress, Properties

    from describe_screen.capture.portal import BUS_NAME, OBJECT

    reply = bus.conn.send_and_get_reply(Properties(DBusAddress(OBJECT, bus_name=BUS_NAME,
                                                               interface=interface)).get(name), timeout=30)
    return 0 if reply.header.message_type.name == "error" else int(reply.body[0][1])
