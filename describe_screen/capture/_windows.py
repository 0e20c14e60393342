"""Active window and pointer on Windows (user32 and dwmapi through ctypes)."""

from __future__ import annotations

import ctypes
from ctypes import wintypes

from describe_screen.capture._stateless import StatelessDesktop
from describe_screen.errors import UserError
from describe_screen.i18n import _

# Window bounds without the invisible resize border that GetWindowRect includes on Windows 10 and later.
DWMWA_EXTENDED_FRAME_BOUNDS = 9


class Desktop(StatelessDesktop):
    """Finds the foreground window and the pointer; Windows needs no connection or permission for it."""

    def pointer_position(self) -> tuple[int, int]:
        return pointer_position()

    def active_window(self) -> tuple[str, tuple[int, int, int, int]]:
        return active_window()


def pointer_position() -> tuple[int, int]:
    point = wintypes.POINT()
    if not ctypes.windll.user32.GetCursorPos(ctypes.byref(point)):
        raise UserError(_("The pointer position cannot be read."), _("Move the mouse and try again."))
    return point.x, point.y


def active_window() -> tuple[str, tuple[int, int, int, int]]:
    """Title and (left, top, width, height) of the foreground window."""
    user32 = ctypes.windll.user32
    hwnd = user32.GetForegroundWindow()
    if not hwnd:
        raise UserError(_("No window is active, so there is no window to describe."),
                        _("Switch to a window first, or describe the whole screen instead."))
    rect = wintypes.RECT()
    found = ctypes.windll.dwmapi.DwmGetWindowAttribute(
        wintypes.HWND(hwnd), DWMWA_EXTENDED_FRAME_BOUNDS, ctypes.byref(rect), ctypes.sizeof(rect)) == 0
    if not found and not user32.GetWindowRect(wintypes.HWND(hwnd), ctypes.byref(rect)):
        raise UserError(_("The active window closed before it could be captured."),
                        _("Switch to the window you want and try again."))
    length = user32.GetWindowTextLengthW(wintypes.HWND(hwnd))
    buffer = ctypes.create_unicode_buffer(length + 1)
    user32.GetWindowTextW(wintypes.HWND(hwnd), buffer, length + 1)
    return buffer.value.strip(), (rect.left, rect.top, rect.right - rect.left, rect.bottom - rect.top)
