"""Wayland: the desktop's own interfaces, never Xwayland (which sees only X11 programs).

Pixels come from wlroots screencopy through `grim` on sway, Hyprland, river and Wayfire (standard
there and needs no permission), else from the screenshot portal (GNOME, KDE Plasma: the desktop may
ask the user once). Window rectangles come from the compositor's IPC where it has one (sway,
Hyprland); the pointer position is not given to programs on Wayland at all.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

from describe_screen.capture.session import Session, have
from describe_screen.errors import UserError
from describe_screen.i18n import _

if TYPE_CHECKING:
    from PIL import Image

    from describe_screen.capture import Capture, Rect

GRIM_SECONDS = 20
POINTER = UserError(_("This Wayland desktop does not tell programs where the pointer is, so I cannot describe the "
                      "area around it."),
                    _("Describe the focused object instead (the focus key, Control Alt F, or describe-screen "
                      "describe --target focus), or the whole screen."))


def route(session: Session, setting: str) -> str:
    """'screencopy' (grim) or 'portal', from the setting capture.wayland; 'auto' picks screencopy where the
    compositor offers it to every program, else the portal."""
    if setting == "auto":
        return "screencopy" if session.wlroots and have("grim") else "portal"
    return setting


class Desktop:
    """One capture on Wayland: the outputs, the focused window, and the pixels."""

    def __init__(self, session: Session, how: str, say: Callable[[str], None] | None, marker: Path | None) -> None:
        self.session, self.how, self.say, self.marker = session, how, say, marker
        self._whole: Image.Image | None = None  # the portal answers with every output at once

    def __enter__(self) -> Desktop:
        return self

    def __exit__(self, *exc: object) -> None:
        self._whole = None

    def pointer_position(self) -> tuple[int, int]:
        raise POINTER

    def active_window(self) -> tuple[str, Rect] | None:
        """Title and content rectangle of the focused window, or None when the compositor has no IPC."""
        if self.session.compositor == "sway" and have("swaymsg"):
            node = _focused_node(_ipc(["swaymsg", "-t", "get_tree", "-r"]))
            if node is None:
                raise UserError(_("No window is active, so there is no window to describe."),
                                _("Switch to a window first, or describe the whole screen instead."))
            return str(node.get("name") or ""), _content(node)
        if self.session.compositor == "hyprland" and have("hyprctl"):
            window = _ipc(["hyprctl", "-j", "activewindow"])
            if not window or "at" not in window:
                raise UserError(_("No window is active, so there is no window to describe."),
                                _("Switch to a window first, or describe the whole screen instead."))
            return str(window.get("title") or ""), (*window["at"], *window["size"])
        return None

    def windows(self) -> dict[int, tuple[str, Rect]]:
        """The windows shown now, with their titles and content rectangles, from the compositor's IPC
        (empty where it has none: a dialog is then noticed by the pixels that changed); floating ones,
        which are above the others, last."""
        if self.session.compositor == "sway" and have("swaymsg"):
            shown = [node for node in _views(_ipc(["swaymsg", "-t", "get_tree", "-r"]))
                     if node.get("pid") and node.get("visible")]
            shown.sort(key=lambda node: node["type"] == "floating_con")
            return {node["id"]: (str(node.get("name") or ""), _content(node)) for node in shown}
        if self.session.compositor == "hyprland" and have("hyprctl"):
            return {int(str(c["address"]), 16): (str(c.get("title") or ""), (*c["at"], *c["size"]))
                    for c in _ipc(["hyprctl", "-j", "clients"]) or [] if c.get("mapped") and not c.get("hidden")}
        return {}

    def outputs(self) -> tuple[Rect, Rect]:
        """(all outputs together, the focused output), in screen coordinates."""
        found = self.screens()
        left = min(r[0] for r, _ in found)
        top = min(r[1] for r, _ in found)
        right = max(r[0] + r[2] for r, _ in found)
        bottom = max(r[1] + r[3] for r, _ in found)
        focused = next((r for r, f in found if f), found[0][0])
        return (left, top, right - left, bottom - top), focused

    def screens(self) -> list[tuple[Rect, bool]]:
        """Each output's rectangle in screen (logical) coordinates, and whether it has the focus."""
        found: list[tuple[Rect, bool]] = []
        if self.session.compositor == "sway" and have("swaymsg"):
            found = [((o["rect"]["x"], o["rect"]["y"], o["rect"]["width"], o["rect"]["height"]), o.get("focused"))
                     for o in _ipc(["swaymsg", "-t", "get_outputs", "-r"]) or [] if o.get("active")]
        elif self.session.compositor == "hyprland" and have("hyprctl"):
            found = [((m["x"], m["y"], m["width"], m["height"]), m.get("focused"))
                     for m in _ipc(["hyprctl", "-j", "monitors"]) or []]
        if not found:  # no IPC: the whole desktop is one picture, as the portal gives it
            width, height = self.whole().size
            return [((0, 0, width, height), True)]
        return found

    def grab(self, rect: Rect) -> Image.Image:
        if self.how == "screencopy":
            return _grim(["-g", f"{rect[0]},{rect[1]} {rect[2]}x{rect[3]}"])
        whole = self.whole()
        return whole.crop((rect[0], rect[1], rect[0] + rect[2], rect[1] + rect[3]))

    def whole(self) -> Image.Image:
        if self._whole is None:
            if self.how == "screencopy":
                self._whole = _grim([])
            else:
                from describe_screen.capture import portal

                self._whole = portal.screenshot(self.say, self.marker)
        return self._whole


def capture(desktop: Desktop, target: str) -> Capture:
    """`target` is screen, all, window or focus (pointer is refused: Wayland does not say where it is)."""
    from describe_screen import atspi
    from describe_screen.capture import focus as _focus

    if target == "pointer":
        raise POINTER
    everything, output = desktop.outputs()
    if target == "all":
        return _shot(desktop, everything, "all")
    if target == "screen":
        return _shot(desktop, output, "screen")
    window = desktop.active_window()
    if target == "window":
        if window is not None:
            return part(desktop, window[1], "window", window[0], _("The active window"))
        shot = _shot(desktop, output, "window")
        name = atspi.active_window_name() if _can_atspi(atspi) else ""
        shot.title = name
        shot.context = _("This desktop does not tell programs where windows are, so the picture is the whole "
                         "screen.") + (" " + _("The active window is '{name}'.", name=name) if name else "")
        return shot
    info = atspi.focused()
    region = _focus.place_wayland(info, everything, window[1] if window else None)
    shot = _shot(desktop, region or output, "focus")
    return _focus.finish(shot, info, cropped=region is not None)


def part(desktop: Desktop, rect: Rect, target: str, title: str, what: str) -> Capture:
    """The part of `rect` on the screens (a window may be partly off them); `what` names it when it is all off."""
    from describe_screen.capture import _clip

    bounds = dict(zip(("left", "top", "width", "height"), desktop.outputs()[0], strict=True))
    inside = _clip(rect, bounds, what)
    return _shot(desktop, (inside["left"], inside["top"], inside["width"], inside["height"]), target, title)


def _shot(desktop: Desktop, rect: Rect, target: str, title: str = "") -> Capture:
    from describe_screen.capture import Capture

    image = desktop.grab(rect)
    return Capture(image, target, title=title, origin=(rect[0], rect[1]), scale=image.width / max(rect[2], 1))


def _can_atspi(atspi: Any) -> bool:
    try:
        atspi.check()
    except UserError:
        return False
    return True


def _grim(args: list[str]) -> Image.Image:
    from PIL import Image

    try:
        done = subprocess.run(["grim", "-t", "ppm", *args, "-"], capture_output=True, timeout=GRIM_SECONDS)
    except FileNotFoundError as exc:
        raise UserError(_("The screen cannot be captured: grim is not installed."),
                        _("Install grim (sudo apt install grim), or set capture.wayland = \"portal\" in the "
                          "settings file.")) from exc
    except subprocess.TimeoutExpired as exc:
        raise UserError(_("The screen could not be captured: the compositor did not answer in time."),
                        _("Try again; if it keeps happening, restart the session.")) from exc
    if done.returncode or not done.stdout:
        said = done.stderr.decode(errors="replace").strip().splitlines()
        raise UserError(_("The screen could not be captured: grim failed ({reason}).",
                          reason=said[-1] if said else _("no picture")),
                        _("Set capture.wayland = \"portal\" in the settings file to capture through the desktop's "
                          "screenshot portal instead."))
    image = Image.open(BytesIO(done.stdout))
    image.load()
    return image.convert("RGB")


def _ipc(argv: list[str]) -> Any:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return json.loads(done.stdout) if done.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, json.JSONDecodeError):
        return None


def _focused_node(tree: Any) -> dict | None:
    """The focused view in sway's tree (a container or a floating one)."""
    return next((node for node in _views(tree) if node.get("focused")), None)


def _views(tree: Any) -> Iterator[dict]:
    """Every container in sway's tree, tiled or floating (a window's has its program's "pid")."""
    stack = [tree] if isinstance(tree, dict) else []
    while stack:
        node = stack.pop()
        if node.get("type") in ("con", "floating_con"):
            yield node
        stack.extend(node.get("nodes", []) + node.get("floating_nodes", []))


def _content(node: dict) -> Rect:
    """A sway window's content rectangle: its container's place plus the window's own offset in it."""
    outer, inner = node["rect"], node.get("window_rect") or {}
    return (outer["x"] + inner.get("x", 0), outer["y"] + inner.get("y", 0),
            inner.get("width") or outer["width"], inner.get("height") or outer["height"])
