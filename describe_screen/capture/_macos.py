"""Active window and pointer on macOS (Quartz, from pyobjc-framework-Quartz)."""

from __future__ import annotations

from describe_screen.capture._stateless import StatelessDesktop
from describe_screen.errors import UserError
from describe_screen.i18n import _


class Desktop(StatelessDesktop):
    """Finds the frontmost window and the pointer, after checking the screen-recording permission."""

    def __init__(self) -> None:
        import Quartz

        preflight = getattr(Quartz, "CGPreflightScreenCaptureAccess", None)  # macOS 10.15 and later
        if preflight is not None and not preflight():  # without it captures show only the wallpaper
            Quartz.CGRequestScreenCaptureAccess()
            raise UserError(_("macOS has not allowed describe-screen to record the screen."),
                            _("Open System Settings, Privacy and Security, Screen Recording, allow the app that "
                              "runs describe-screen, then restart it."))

    def pointer_position(self) -> tuple[int, int]:
        return pointer_position()

    def active_window(self) -> tuple[str, tuple[int, int, int, int]]:
        return active_window()


def pointer_position() -> tuple[int, int]:
    import Quartz

    point = Quartz.CGEventGetLocation(Quartz.CGEventCreate(None))
    return int(point.x), int(point.y)


def active_window() -> tuple[str, tuple[int, int, int, int]]:
    """Title and (left, top, width, height) of the frontmost normal window (layer 0)."""
    import Quartz

    options = Quartz.kCGWindowListOptionOnScreenOnly | Quartz.kCGWindowListExcludeDesktopElements
    for info in Quartz.CGWindowListCopyWindowInfo(options, Quartz.kCGNullWindowID) or []:
        if info.get("kCGWindowLayer", 1) != 0:
            continue
        bounds = info["kCGWindowBounds"]
        owner, name = info.get("kCGWindowOwnerName", ""), info.get("kCGWindowName", "")
        title = f"{name} - {owner}" if name and owner else (name or owner)
        return str(title), (int(bounds["X"]), int(bounds["Y"]), int(bounds["Width"]), int(bounds["Height"]))
    raise UserError(_("No window is active, so there is no window to describe."),
                    _("Switch to a window first, or describe the whole screen instead."))
