"""Pressing a point on the screen for the user (a click, double click or right click), and telling
whether the screen changed.

On X11 the pointer is moved and its buttons pressed through the XTest extension (python-xlib), the
way xdotool does it. Wayland lets no program move the pointer; its routes (the remote-desktop portal,
wlroots' virtual-pointer protocol) are not built yet, and this is said plainly. Nothing here decides
*whether* to press: the daemon does, only on the user's request, after saying what will be pressed.
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

ROUTE_X11 = "X11 XTest"
CLICKS = {"click": (1, 1), "double": (1, 2), "right": (3, 1)}  # how -> (pointer button, presses)
CLICK_WORDS = {"click": N_("Pressing {name}."), "double": N_("Double-clicking {name}."),
               "right": N_("Right-clicking {name}.")}
SETTLE_STEP = 0.25  # s between looks at the screen while it settles after a press
SETTLE_LIMIT = 4.0  # s: an animation that never stops is described as it is then
CLICK_GAP = 0.08  # s between the two presses of a double click (well inside any double-click time)
DIFFERENCE = 32  # a pixel differs when a colour channel moved this much (not JPEG-like noise)
CHANGED_PIXELS = 120  # fewer differing pixels than this is a blinking caret, not a change
WAYLAND_NOT_YET = (N_("Pressing controls is not available on Wayland yet: Wayland lets no program move the "
                   "pointer, and the desktop's remote-desktop route is not built yet."))


def route() -> str:
    """How presses reach the screen here ("X11 XTest"); a UserError says why there is no way."""
    from describe_screen.capture import session

    where = session.current()
    if where.kind == "wayland":
        raise UserError(_(WAYLAND_NOT_YET), _("Log in with an X11 session to press controls with describe-screen; "
                                           "exploring and reading work on Wayland too."))
    if where.kind != "x11":
        raise UserError(_("Pressing controls is not available on {describe} yet.", describe=where.describe()),
                        _("Exploring and reading the elements still work."))
    with _display() as dpy:
        if not dpy.has_extension("XTEST"):
            raise UserError(_("The X server lacks the XTEST extension, so describe-screen cannot press anything."),
                            _("Enable XTEST in the X server's settings (it is on by default in Xorg and Xvfb)."))
    return ROUTE_X11


def click(x: int, y: int, how: str = "click") -> None:
    """Move the pointer to the screen point (x, y) and press: "click", "double" or "right"."""
    from Xlib import X
    from Xlib.ext import xtest

    button, presses = CLICKS[how]
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
