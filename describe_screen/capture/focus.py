"""The `focus` target: the object with the keyboard focus, from AT-SPI, cropped to where it is when
that is known for sure, and always described with what AT-SPI says about it.

On X11 a program knows where its windows are, so its AT-SPI screen coordinates are right. On Wayland
a program is not told where its window is and usually reports it at the top-left corner: there the
crop comes from the compositor's window rectangle plus the object's place inside its window, or, when
the compositor does not say, only from coordinates that are plausible (window not at the origin,
object on the screen). Otherwise the whole screen is described, and the user is told no crop was made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from describe_screen.i18n import N_, _

if TYPE_CHECKING:
    from describe_screen.atspi import Focus
    from describe_screen.capture import Capture, Rect

MARGIN = 12  # pixels around the object, so its border and a label beside it stay in the picture
NO_CROP = N_("I could not find where it is on the screen, so the picture is the whole screen.")


def inside(rect: Rect | None, bounds: Rect) -> bool:
    """True when `rect` is non-empty and lies wholly on the screen `bounds`."""
    if rect is None or rect[2] <= 0 or rect[3] <= 0:
        return False
    return (bounds[0] <= rect[0] and bounds[1] <= rect[1]
            and rect[0] + rect[2] <= bounds[0] + bounds[2] and rect[1] + rect[3] <= bounds[1] + bounds[3])


def padded(rect: Rect, bounds: Rect) -> Rect:
    left, top = max(rect[0] - MARGIN, bounds[0]), max(rect[1] - MARGIN, bounds[1])
    right = min(rect[0] + rect[2] + MARGIN, bounds[0] + bounds[2])
    bottom = min(rect[1] + rect[3] + MARGIN, bounds[1] + bounds[3])
    return left, top, right - left, bottom - top


def place_x11(info: Focus, bounds: Rect) -> Rect | None:
    """On X11 the program's screen coordinates are right; only an object off the screen has no crop."""
    return padded(info.extents, bounds) if inside(info.extents, bounds) else None


def place_wayland(info: Focus, bounds: Rect, window: Rect | None) -> Rect | None:
    """`window`: the focused window's content rectangle from the compositor, when it tells."""
    if window is not None and info.in_window is not None:
        x, y, width, height = info.in_window
        rect = (window[0] + x, window[1] + y, width, height)
        return padded(rect, bounds) if inside(rect, window) and inside(rect, bounds) else None
    frame = info.window_extents
    if frame is None or frame[:2] == (0, 0) or not inside(frame, bounds) or not inside(info.extents, frame):
        return None  # the program does not know where its window is, so its coordinates are guesses
    return padded(info.extents, bounds) if info.extents else None


def finish(shot: Capture, info: Focus, cropped: bool) -> Capture:
    """Label the picture as the focus and attach what AT-SPI says, which is spoken first."""
    shot.target = "focus"
    shot.title = info.window
    shot.context = info.sentence() + ("" if cropped else " " + _(NO_CROP))
    return shot
