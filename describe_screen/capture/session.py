"""Which desktop this is, decided once: the capture, hotkey and doctor paths all follow this answer.

A Wayland session is used through the desktop's own interfaces (never through Xwayland, which shows
only X11 programs' windows and would make the screen look empty); an X11 session as before.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
from dataclasses import dataclass

from describe_screen.i18n import _


@dataclass(frozen=True)
class Session:
    kind: str  # "x11", "wayland", "windows" or "macos"
    compositor: str = ""  # on Wayland: "sway", "hyprland", "river", "gnome", "kde" or "" when unknown

    @property
    def wlroots(self) -> bool:
        """wlroots compositors offer screencopy to every client: grim captures without asking."""
        return self.compositor in ("sway", "hyprland", "river", "wayfire")

    def describe(self) -> str:
        """For doctor: the session in plain words."""
        if self.kind != "wayland":
            return {"x11": _("an X11 session"), "windows": "Windows", "macos": "macOS"}[self.kind]
        return _("a Wayland session ({compositor})", compositor=self.compositor) if self.compositor else _(
            "a Wayland session")


SIGNS = ("WAYLAND_DISPLAY", "XDG_SESSION_TYPE", "XDG_CURRENT_DESKTOP", "SWAYSOCK", "HYPRLAND_INSTANCE_SIGNATURE")


def current() -> Session:
    """The session of this process. A daemon's environment never changes, so it never switches paths
    halfway; the answer is kept per environment, so a changed one (in tests) is looked at anew."""
    return _detect(sys.platform, tuple(os.environ.get(name, "") for name in SIGNS))


@functools.cache
def _detect(platform: str, signs: tuple[str, ...]) -> Session:
    if platform == "win32":
        return Session("windows")
    if platform == "darwin":
        return Session("macos")
    wayland_display, session_type, desktop, swaysock, hyprland = signs
    if not (wayland_display or session_type == "wayland"):
        return Session("x11")
    desktop = desktop.lower()
    if swaysock or "sway" in desktop:
        compositor = "sway"
    elif hyprland or "hyprland" in desktop:
        compositor = "hyprland"
    else:
        compositor = next((name for name in ("gnome", "kde", "river", "wayfire") if name in desktop), "")
    return Session("wayland", compositor)


def have(program: str) -> bool:
    return shutil.which(program) is not None
