"""Clicking on wlroots desktops (sway, Hyprland, river, Wayfire) through their virtual-pointer protocol.

wlroots lets any program of the session add a pointer device (wlr-virtual-pointer-unstable-v1) and move
it to an absolute point of the output layout, given as a fraction of the layout's extent. The extent is
the layout's logical size, read from the outputs' own logical geometry (xdg-output), so a point in
logical coordinates (what sway's IPC and the capture's origin and scale give) lands on that pixel on
a scaled output too. pywayland speaks the wire protocol; it carries the core and xdg-output protocols,
and the two wlroots interfaces are declared below from the protocol's definition (their requests, in
order, are the opcodes).
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterator
from typing import Any

from describe_screen.errors import UserError
from describe_screen.i18n import _

MANAGER = "zwlr_virtual_pointer_manager_v1"
RELEASED, PRESSED = 0, 1  # wl_pointer.button_state
# s for programs to see the new pointer device: where the seat had no pointer, they take one only now
PLUG_IN = 0.3


@functools.cache  # declared once per process: libwayland keeps pointers to them
def interfaces() -> tuple[Any, Any]:
    """The manager and pointer interfaces of wlr-virtual-pointer-unstable-v1, version 1."""
    from pywayland.protocol.wayland import WlSeat
    from pywayland.protocol_core import Argument, ArgumentType, Global, Interface, Proxy, Resource

    class Pointer(Interface):
        name, version = "zwlr_virtual_pointer_v1", 1

    class Manager(Interface):
        name, version = MANAGER, 1

    uint, fixed = Argument(ArgumentType.Uint), Argument(ArgumentType.Fixed)

    class PointerProxy(Proxy[Pointer]):
        interface = Pointer

        @Pointer.request(uint, fixed, fixed)
        def motion(self, time: int, dx: float, dy: float) -> None:
            self._marshal(0, time, dx, dy)

        @Pointer.request(uint, uint, uint, uint, uint)
        def motion_absolute(self, time: int, x: int, y: int, x_extent: int, y_extent: int) -> None:
            self._marshal(1, time, x, y, x_extent, y_extent)

        @Pointer.request(uint, uint, uint)
        def button(self, time: int, button: int, state: int) -> None:
            self._marshal(2, time, button, state)

        @Pointer.request(uint, uint, fixed)
        def axis(self, time: int, axis: int, value: float) -> None:
            self._marshal(3, time, axis, value)

        @Pointer.request()
        def frame(self) -> None:
            self._marshal(4)

        @Pointer.request(uint)
        def axis_source(self, axis_source: int) -> None:
            self._marshal(5, axis_source)

        @Pointer.request(uint, uint)
        def axis_stop(self, time: int, axis: int) -> None:
            self._marshal(6, time, axis)

        @Pointer.request(uint, uint, fixed, Argument(ArgumentType.Int))
        def axis_discrete(self, time: int, axis: int, value: float, discrete: int) -> None:
            self._marshal(7, time, axis, value, discrete)

        @Pointer.request()
        def destroy(self) -> None:
            self._marshal(8)
            self._destroy()

    class ManagerProxy(Proxy[Manager]):
        interface = Manager

        @Manager.request(Argument(ArgumentType.Object, interface=WlSeat, nullable=True),
                         Argument(ArgumentType.NewId, interface=Pointer))
        def create_virtual_pointer(self, seat: Any) -> PointerProxy:
            return self._marshal_constructor(0, Pointer, seat)

    for interface, proxy in ((Pointer, PointerProxy), (Manager, ManagerProxy)):
        interface._gen_c()
        interface.proxy_class = proxy
        interface.resource_class = type(f"{interface.__name__}Resource", (Resource,), {"interface": interface})
        interface.global_class = type(f"{interface.__name__}Global", (Global,), {"interface": interface})
    return Manager, Pointer


class Session:
    """One connection to the compositor with the globals a click needs: a seat, the outputs' logical
    geometry, and the virtual-pointer manager (None when the compositor does not offer it)."""

    def __init__(self, display: Any) -> None:
        from pywayland.protocol.wayland import WlOutput, WlSeat
        from pywayland.protocol.xdg_output_unstable_v1 import ZxdgOutputManagerV1

        manager_interface, _ = interfaces()
        self.display = display
        offered: dict[str, tuple[int, int]] = {}
        outputs: list[int] = []
        registry = display.get_registry()

        def global_(_: Any, name: int, interface: str, version: int) -> None:
            if interface == "wl_output":
                outputs.append(name)
            offered.setdefault(interface, (name, version))

        registry.dispatcher["global"] = global_
        display.roundtrip()
        self.manager = registry.bind(offered[MANAGER][0], manager_interface, 1) if MANAGER in offered else None
        self.seat = registry.bind(offered["wl_seat"][0], WlSeat, 1) if "wl_seat" in offered else None
        self.boxes: list[list[int]] = []  # x, y, width, height of each output, in logical coordinates
        if "zxdg_output_manager_v1" in offered:
            xdg = registry.bind(offered["zxdg_output_manager_v1"][0], ZxdgOutputManagerV1, 2)
            for name in outputs:
                box = [0, 0, 0, 0]
                self.boxes.append(box)
                watched = xdg.get_xdg_output(registry.bind(name, WlOutput, 1))
                watched.dispatcher["logical_position"] = lambda _, x, y, box=box: box.__setitem__(slice(0, 2), [x, y])
                watched.dispatcher["logical_size"] = lambda _, w, h, box=box: box.__setitem__(slice(2, 4), [w, h])
            display.roundtrip()

    def layout(self) -> tuple[int, int, int, int]:
        """The box around every output (left, top, width, height): what absolute motion spans."""
        boxes = [b for b in self.boxes if b[2] > 0 and b[3] > 0]
        if not boxes:
            raise UserError(_("This desktop did not say where its screens are, so I cannot aim the pointer."),
                            _("Use a desktop that offers the xdg-output protocol (sway, Hyprland, river, Wayfire "
                              "do)."))
        left, top = min(b[0] for b in boxes), min(b[1] for b in boxes)
        return (left, top, max(b[0] + b[2] for b in boxes) - left, max(b[1] + b[3] for b in boxes) - top)


@contextlib.contextmanager
def session() -> Iterator[Session]:
    """A connection to this session's compositor, closed after use."""
    try:
        from pywayland.client import Display
    except ImportError as exc:
        raise UserError(_("Pressing on this desktop needs the Python package pywayland, which is not installed."),
                        _("Install it: pip install pywayland (the installer does this).")) from exc
    display = Display()
    try:
        display.connect()
    except (ValueError, OSError, RuntimeError) as exc:
        raise UserError(_("This Wayland desktop cannot be reached, so nothing can be pressed."),
                        _("Run describe-screen inside your desktop session (WAYLAND_DISPLAY must name its "
                          "socket).")) from exc
    try:
        yield Session(display)
    except (RuntimeError, OSError) as exc:  # a protocol error: the compositor ends the connection
        raise UserError(_("The compositor broke off the connection ({problem}), so the press may not have happened.",
                          problem=exc),
                        _("Capture again and press again; if it keeps failing, restart the session.")) from exc
    finally:
        display.disconnect()


def no_protocol() -> UserError:
    """The compositor has no zwlr_virtual_pointer_manager_v1 (GNOME, KDE): the portal's route is theirs."""
    return UserError(_("This desktop does not offer the virtual-pointer protocol, so describe-screen cannot press "
                       "anything here."), _("Use sway, Hyprland, river or Wayfire (they offer it to every program), "
                                            "or press with the keyboard; exploring and reading still work."))


def check() -> None:
    """Raise a UserError unless a virtual pointer can be made here."""
    with session() as wl:
        if wl.manager is None:
            raise no_protocol()
        wl.layout()


def click(x: int, y: int, button: int, presses: int, gap: float) -> None:
    """Move a virtual pointer to the logical point (x, y) and press `button` (a Linux input code, as
    wl_pointer has them) `presses` times, `gap` seconds apart."""
    with session() as wl:
        if wl.manager is None:
            raise no_protocol()
        left, top, width, height = wl.layout()
        pointer = wl.manager.create_virtual_pointer(wl.seat)
        wl.display.roundtrip()
        time.sleep(PLUG_IN)
        pointer.motion_absolute(_now(), x - left, y - top, width, height)
        pointer.frame()
        for n in range(presses):
            if n:
                wl.display.roundtrip()
                time.sleep(gap)
            for state in (PRESSED, RELEASED):
                pointer.button(_now(), button, state)
                pointer.frame()
        pointer.destroy()
        wl.display.roundtrip()


def _now() -> int:
    """A timestamp in milliseconds, as input devices give them (it wraps around at 32 bits)."""
    return int(time.monotonic() * 1000) & 0xFFFFFFFF
