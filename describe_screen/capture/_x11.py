"""Active window and pointer on X11 (python-xlib).

The active window is the window manager's _NET_ACTIVE_WINDOW; without a window manager that
property is absent, so the window holding the keyboard focus is used instead.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from describe_screen.errors import UserError
from describe_screen.i18n import N_, _

if TYPE_CHECKING:
    from Xlib.display import Display
    from Xlib.xobject.drawable import Window

RETRIES = 10  # connection attempts, 0.1 s apart
NO_DISPLAY_FIX = N_("Run describe-screen inside your desktop session, or try describe-screen demo for a virtual one.")


class Desktop:
    """One X connection for one capture: finds the active window and the pointer."""

    def __init__(self) -> None:
        if not os.environ.get("DISPLAY"):
            if os.environ.get("WAYLAND_DISPLAY"):
                raise UserError(_("The screen cannot be read: this is a Wayland session without X11 access."),
                                _("Log in with an X11 session (for example 'GNOME on Xorg'), or make sure "
                                  "Xwayland is running so DISPLAY is set."))
            raise UserError(_("No graphical display was found: the DISPLAY variable is not set."), _(NO_DISPLAY_FIX))
        from Xlib import display, error

        for attempt in range(RETRIES):
            try:
                self.dpy = display.Display()
                break
            except error.ConnectionClosedError as exc:  # the server is resetting after its last client left
                if attempt == RETRIES - 1:
                    raise UserError(_("Cannot connect to the display {DISPLAY}.", DISPLAY=os.environ['DISPLAY']),
                                    _(NO_DISPLAY_FIX)) from exc
                time.sleep(0.1)
            except (error.DisplayError, OSError) as exc:
                raise UserError(_("Cannot connect to the display {DISPLAY}.", DISPLAY=os.environ['DISPLAY']),
                                _(NO_DISPLAY_FIX)) from exc
        self.root = self.dpy.screen().root

    def __enter__(self) -> Desktop:
        return self

    def __exit__(self, *exc: object) -> None:
        self.dpy.close()

    def pointer_position(self) -> tuple[int, int]:
        reply = self.root.query_pointer()
        return reply.root_x, reply.root_y

    def active_window(self) -> tuple[str, tuple[int, int, int, int]]:
        """Title and (left, top, width, height) of the window the user is working in."""
        from Xlib import X, error

        dpy, root = self.dpy, self.root
        prop = root.get_full_property(dpy.intern_atom("_NET_ACTIVE_WINDOW"), X.AnyPropertyType)
        window = dpy.create_resource_object("window", prop.value[0]) if prop and prop.value[0] else None
        if window is None:
            focus = dpy.get_input_focus().focus
            if not isinstance(focus, int) and focus.id != root.id:
                window = focus
        if window is None:
            raise UserError(_("No window is active, so there is no window to describe."),
                            _("Switch to a window first, or describe the whole screen instead."))
        try:
            chain = _ancestors(window, root)
            geometry = chain[-1].get_geometry()  # a child of the root: x and y are screen coordinates
            title = next((t for t in (_title(dpy, w) for w in reversed(chain)) if t), "")
        except error.BadWindow as exc:
            raise UserError(_("The active window closed before it could be captured."),
                            _("Switch to the window you want and try again.")) from exc
        return title, (geometry.x, geometry.y, geometry.width, geometry.height)


    def windows(self) -> dict[int, tuple[str, tuple[int, int, int, int]]]:
        """The windows on the screen now (children of the root that are shown), bottom to top: their
        title and (left, top, width, height). A window manager's frame takes its client's title."""
        from Xlib import X, error

        found = {}
        for window in self.root.query_tree().children:
            try:
                if window.get_attributes().map_state != X.IsViewable:
                    continue
                g = window.get_geometry()
                title = _title(self.dpy, window) or next(
                    (t for t in (_title(self.dpy, c) for c in window.query_tree().children) if t), "")
            except error.BadWindow:  # closed while we looked
                continue
            found[window.id] = (title, (g.x, g.y, g.width, g.height))
        return found


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
