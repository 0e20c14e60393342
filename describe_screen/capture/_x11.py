"""Active window and pointer on X11 (python-xlib).

The active window is the window manager's _NET_ACTIVE_WINDOW; without a window manager that
property is absent, so the window holding the keyboard focus is used instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from describe_screen.errors import UserError

if TYPE_CHECKING:
    from Xlib.display import Display
    from Xlib.xobject.drawable import Window

NO_DISPLAY_FIX = "Run describe-screen inside your desktop session, or try describe-screen demo for a virtual one."


def check_access() -> None:
    """Fail early with a plain reason when there is no X display to read."""
    with _display():
        pass


@contextmanager
def _display() -> Iterator[Display]:
    if not os.environ.get("DISPLAY"):
        if os.environ.get("WAYLAND_DISPLAY"):
            raise UserError("The screen cannot be read: this is a Wayland session without X11 access.",
                            "Log in with an X11 session (for example 'GNOME on Xorg'), or make sure "
                            "Xwayland is running so DISPLAY is set.")
        raise UserError("No graphical display was found: the DISPLAY variable is not set.", NO_DISPLAY_FIX)
    from Xlib import display, error

    try:
        dpy = display.Display()
    except (error.DisplayError, error.ConnectionClosedError, OSError) as exc:
        raise UserError(f"Cannot connect to the display {os.environ['DISPLAY']}.", NO_DISPLAY_FIX) from exc
    try:
        yield dpy
    finally:
        dpy.close()


def pointer_position() -> tuple[int, int]:
    with _display() as dpy:
        reply = dpy.screen().root.query_pointer()
        return reply.root_x, reply.root_y


def active_window() -> tuple[str, tuple[int, int, int, int]]:
    """Title and (left, top, width, height) of the window the user is working in."""
    from Xlib import X, error

    with _display() as dpy:
        root = dpy.screen().root
        prop = root.get_full_property(dpy.intern_atom("_NET_ACTIVE_WINDOW"), X.AnyPropertyType)
        window = dpy.create_resource_object("window", prop.value[0]) if prop and prop.value[0] else None
        if window is None:
            focus = dpy.get_input_focus().focus
            if not isinstance(focus, int) and focus.id != root.id:
                window = focus
        if window is None:
            raise UserError("No window is active, so there is no window to describe.",
                            "Switch to a window first, or describe the whole screen instead.")
        try:
            chain = _ancestors(window, root)
            top = chain[-1]
            geometry = top.get_geometry()  # a child of the root: x and y are screen coordinates
            title = next((t for t in (_title(dpy, w) for w in reversed(chain)) if t), "")
        except error.BadWindow as exc:
            raise UserError("The active window closed before it could be captured.",
                            "Switch to the window you want and try again.") from exc
        return title, (geometry.x, geometry.y, geometry.width, geometry.height)


def _ancestors(window: Window, root: Window) -> list[Window]:
    """`window` and its parents up to (not including) the root: the last one is the top-level."""
    chain = [window]
    while (parent := chain[-1].query_tree().parent) and parent.id != root.id:
        chain.append(parent)
    return chain


def _title(dpy: Display, window: Window) -> str:
    """_NET_WM_NAME (UTF-8) when set, else the legacy WM_NAME (any encoding)."""
    from Xlib import X

    for atom, kind in (("_NET_WM_NAME", dpy.get_atom("UTF8_STRING")), ("WM_NAME", X.AnyPropertyType)):
        prop = window.get_full_property(dpy.get_atom(atom), kind)
        if prop and prop.value:
            value = prop.value
            return (value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)).strip()
    return ""
