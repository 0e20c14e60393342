"""Pressing a point on the screen for the user (a click, double click or right click), and telling
whether the screen changed.

Each desktop has its one route for the pointer: on X11 the XTest extension (python-xlib), the way
xdotool does it; on wlroots desktops (sway, Hyprland, river, Wayfire) their virtual-pointer protocol
(virtual_pointer.py); on GNOME and KDE Plasma the remote-desktop portal. Nothing here decides *whether*
to press: the daemon does, only on the user's request, after saying what will be pressed.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from describe_screen.errors import UserError
from describe_screen.i18n import N_, _

if TYPE_CHECKING:
    from PIL.Image import Image
    from Xlib.display import Display

    from describe_screen.capture import Capture
    from describe_screen.reader import Box

# the routes, as doctor names them (translated where said)
ROUTE_X11 = N_("X11 XTest")
ROUTE_WLROOTS = N_("the wlroots virtual-pointer protocol")
ROUTE_PORTAL = N_("the desktop's remote-desktop portal")
# how each route is allowed, said by doctor after the route
ALLOWED = {ROUTE_X11: N_("Every program of an X11 session may use it: there is nothing to allow."),
           ROUTE_WLROOTS: N_("The compositor lets every program of your session use it: there is nothing to allow."),
           ROUTE_PORTAL: N_("At the first press the desktop asks whether describe-screen may control the pointer and "
                            "share the screen (only to aim the pointer; nothing is recorded): allow it (on GNOME, "
                            "turn on Allow remote interaction, then choose Share). The answer is kept until you "
                            "withdraw it in the desktop's privacy settings.")}
CLICKS = {"click": (1, 1), "double": (1, 2), "right": (3, 1)}  # how -> (pointer button, presses)
LINUX_BUTTONS = {1: 0x110, 2: 0x112, 3: 0x111}  # X11 pointer buttons -> Linux input codes (BTN_LEFT, ...) for Wayland
CLICK_WORDS = {"click": N_("Pressing {name}."), "double": N_("Double-clicking {name}."),
               "right": N_("Right-clicking {name}.")}
SETTLE_STEP = 0.25  # s between looks at the screen while it settles after a press
SETTLE_LIMIT = 4.0  # s: an animation that never stops is described as it is then
CLICK_GAP = 0.08  # s between the two presses of a double click (well inside any double-click time)
DIFFERENCE = 32  # a pixel differs when a colour channel moved this much (not JPEG-like noise)
CHANGED_PIXELS = 120  # fewer differing pixels than this is a blinking caret, not a change


def route() -> str:
    """How presses reach the screen here (one of the ROUTE_ names), checked to work; a UserError says why
    there is no way."""
    from describe_screen import remote_desktop, virtual_pointer
    from describe_screen.capture import session

    where = session.current()
    if where.kind == "wayland":
        if where.wlroots:
            virtual_pointer.check()
            return ROUTE_WLROOTS
        remote_desktop.check()
        return ROUTE_PORTAL
    if where.kind != "x11":
        raise UserError(_("Pressing controls is not available on {describe} yet.", describe=where.describe()),
                        _("Exploring and reading the elements still work."))
    with _display() as dpy:
        if not dpy.has_extension("XTEST"):
            raise UserError(_("The X server lacks the XTEST extension, so describe-screen cannot press anything."),
                            _("Enable XTEST in the X server's settings (it is on by default in Xorg and Xvfb)."))
    return ROUTE_X11


def click(x: int, y: int, how: str = "click", say: Callable[[str], None] | None = None) -> None:
    """Move the pointer to the screen point (x, y) and press: "click", "double" or "right". On Wayland
    (x, y) are in the capture's screen coordinates (a capture's origin and scale give them); `say` tells
    the user, before the desktop asks, what it will ask (the remote-desktop portal, the first time)."""
    from describe_screen import capture, remote_desktop, virtual_pointer
    from describe_screen.capture import session

    button, presses = CLICKS[how]
    where = session.current()
    if where.kind == "wayland" and where.wlroots:
        virtual_pointer.click(x, y, LINUX_BUTTONS[button], presses, CLICK_GAP)
    elif where.kind == "wayland":
        remote_desktop.click(x, y, capture.extent(), LINUX_BUTTONS[button], presses, CLICK_GAP, say)
    else:
        _click_x11(x, y, button, presses)


def _click_x11(x: int, y: int, button: int, presses: int) -> None:
    from Xlib import X
    from Xlib.ext import xtest

    with _display() as dpy:
        xtest.fake_input(dpy, X.MotionNotify, x=x, y=y)  # detail 0: absolute, on the root window
        dpy.sync()
        for n in range(presses):
            if n:
                time.sleep(CLICK_GAP)
            xtest.fake_input(dpy, X.ButtonPress, button)
            xtest.fake_input(dpy, X.ButtonRelease, button)
            dpy.sync()


def settled(grab: Callable[[], Capture], windows: Callable[[], dict]) -> tuple[Capture, dict]:
    """The capture and the windows once the screen has stopped changing after a press (a dialog takes
    a moment to open and draw), or as they are after SETTLE_LIMIT seconds."""
    time.sleep(SETTLE_STEP)
    last, shown = grab(), windows()
    deadline = time.monotonic() + SETTLE_LIMIT
    while time.monotonic() < deadline:
        time.sleep(SETTLE_STEP)
        now, now_shown = grab(), windows()
        if now_shown == shown and changed(last.image, now.image) is None:
            return now, now_shown
        last, shown = now, now_shown
    return last, shown


def changed(before: Image, after: Image, ignore: Box | None = None) -> Box | None:
    """Where `after` differs from `before` (the box around every differing pixel), or None when they are
    the same picture but for a caret or a few pixels; `ignore`: a box whose changes do not count (the
    pressed control, lit while the pointer rests on it)."""
    import numpy as np

    if before.size != after.size:
        return (0, 0, *after.size)
    differs = np.abs(np.asarray(before, np.int16) - np.asarray(after, np.int16)).max(axis=2) > DIFFERENCE
    if ignore is not None:
        x0, y0, x1, y1 = (max(0, int(v)) for v in ignore)
        differs[y0:y1, x0:x1] = False
    if int(differs.sum()) < CHANGED_PIXELS:
        return None
    rows, cols = np.nonzero(differs.any(axis=1))[0], np.nonzero(differs.any(axis=0))[0]
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


@contextlib.contextmanager
def _display() -> Iterator[Display]:
    """One X connection, closed after use."""
    from Xlib import display, error

    try:
        dpy = display.Display()
    except (error.DisplayError, error.ConnectionClosedError, OSError) as exc:
        name = os.environ.get("DISPLAY", "")
        raise UserError((_("Cannot connect to the X display {name}, so nothing can be pressed.", name=name) if name
                         else _("Cannot connect to the X display, so nothing can be pressed.")),
                        _("Run describe-screen inside your desktop session.")) from exc
    try:
        yield dpy
    finally:
        dpy.close()
