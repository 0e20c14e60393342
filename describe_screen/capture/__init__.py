"""Grab what the user wants described: a monitor, all monitors, the active window, the area
around the pointer, the focused object, an image file, or the clipboard image.

The session is picked once (session.current()). On X11, Windows and macOS pixels come from mss and
the active window and the pointer position from one small backend module per platform (_x11,
_windows, _macos), the way mss splits its own backends; a Wayland session has its own backend
(_wayland: grim or the screenshot portal, the compositor's IPC). The focused object comes from AT-SPI.
"""

from __future__ import annotations

import math
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from describe_screen.capture import session
from describe_screen.errors import UserError
from describe_screen.i18n import _
from describe_screen.options import TARGETS
from describe_screen.paths import regular_file

if TYPE_CHECKING:
    import mss
    from PIL import Image

    from describe_screen.capture import _wayland


# Larger pictures would take gigabytes to decode; no screen is this big (8K is 33 megapixels).
MAX_PIXELS = 100_000_000
# Pictures above an 8K screen's pixel count are shrunk by a whole factor as they are decoded: their text
# is still large enough to read, and the daemon's memory stays under a gigabyte.
MAX_DESCRIBE_PIXELS = 7680 * 4320

Rect = tuple[int, int, int, int]  # left, top, width, height in screen coordinates


@dataclass
class Capture:
    """One picture to describe, with where it came from (spoken back to the user and used for follow-ups)."""

    image: Image.Image  # RGB
    target: str  # one of TARGETS
    title: str = ""  # window title (or file name) when known
    note: str = ""  # said before the description, e.g. that only an animation's first frame is described
    origin: tuple[int, int] = (0, 0)  # top-left in screen coordinates
    taken_at: float = field(default_factory=time.time)
    context: str = ""  # what the desktop itself says about it (the focused object), spoken first
    scale: float = 1.0  # image pixels per screen coordinate (2 on a HiDPI Wayland output; 1 on X11)

    @property
    def on_screen(self) -> bool:
        """A picture of the screen (its pixels can be pressed), not a file or the clipboard."""
        return self.target not in ("image", "clipboard")

    @property
    def region(self) -> Rect:
        """Where the picture was taken, in screen coordinates."""
        return (*self.origin, round(self.image.width / self.scale), round(self.image.height / self.scale))

    def to_screen(self, x: float, y: float) -> tuple[int, int]:
        """The screen point under image pixel (x, y): through the capture's origin and scale."""
        return self.origin[0] + math.floor(x / self.scale), self.origin[1] + math.floor(y / self.scale)


def capture(target: str, *, image_path: Path | None = None, pointer_size: int = 480,
            say: Callable[[str], None] | None = None, wayland: str = "auto") -> Capture:
    """Take one capture of `target`; every failure is a UserError that says what to do.

    `say` tells the user, before it happens, that the desktop is about to ask for permission (the
    screenshot portal, the first time); `wayland` is the setting capture.wayland.
    """
    if target == "image":
        if image_path is None:
            raise UserError(_("No image file was given to describe."), _("Pass the path of a picture file."))
        path = Path(image_path).expanduser()
        image = load_image(path)
        note = _("This picture is animated; I describe its first frame.") + " " if image.info.get("animated") else ""
        return Capture(image, "image", title=path.name, note=note)
    if target == "clipboard":
        return Capture(_clipboard_image(), "clipboard")
    if target not in TARGETS:
        raise UserError(_("There is no capture target called {target!r}.", target=target),
                        _("Choose one of: {items}.", items=', '.join(TARGETS)))
    if session.current().kind == "wayland":
        from describe_screen.capture import _wayland

        with _wayland_desktop(wayland, say) as desktop:
            return _wayland.capture(desktop, target)
    with _backend().Desktop() as desktop, _screen() as sct:
        monitors = sct.monitors
        if target == "focus":
            return _focus_x11(sct, monitors[0])
        if target == "window":
            title, rect = desktop.active_window()
            return _grab(sct, _clip(rect, monitors[0], _("The active window")), "window", title)
        if target == "all":
            return _grab(sct, monitors[0], "all")
        x, y = desktop.pointer_position()
        monitor = next((m for m in monitors[1:] if _contains(m, x, y)), monitors[1])
        if target == "screen":
            return _grab(sct, monitor, "screen")
        half = pointer_size // 2
        region = _clip((x - half, y - half, pointer_size, pointer_size), monitor, _("The area around the pointer"))
        return _grab(sct, region, "pointer")


def grab(rect: Rect, target: str, title: str = "", wayland: str = "auto") -> Capture:
    """The screen region `rect` now: to see whether a capture is stale, and a window that appeared."""
    if session.current().kind == "wayland":
        from describe_screen.capture import _wayland

        with _wayland_desktop(wayland) as desktop:
            return _wayland.part(desktop, rect, target, title, _("That part of the screen"))
    with _backend().Desktop(), _screen() as sct:
        return _grab(sct, _clip(rect, sct.monitors[0], _("That part of the screen")), target, title)


def windows() -> dict[int, tuple[str, Rect]]:
    """The windows shown, bottom to top, with their titles and places: a window that appears after a
    press is a dialog to describe."""
    if session.current().kind == "wayland":
        with _wayland_desktop() as desktop:
            return desktop.windows()
    with _backend().Desktop() as desktop:
        return desktop.windows()


def visible(x: int, y: int) -> bool:
    """True when the screen point (x, y) is on a monitor (nothing off the screen is ever pressed)."""
    if session.current().kind == "wayland":
        with _wayland_desktop() as desktop:
            return any(r[0] <= x < r[0] + r[2] and r[1] <= y < r[1] + r[3] for r, _ in desktop.screens())
    with _screen() as sct:
        return any(_contains(m, x, y) for m in sct.monitors[1:])


def extent() -> Rect:
    """The whole desktop in screen coordinates, on Wayland: what the remote-desktop portal's streams span."""
    with _wayland_desktop() as desktop:
        return desktop.outputs()[0]


def _wayland_desktop(wayland: str = "auto", say: Callable[[str], None] | None = None) -> _wayland.Desktop:
    """This Wayland session's desktop, its pixels taken as the setting capture.wayland says."""
    from describe_screen.capture import _wayland
    from describe_screen.config import data_dir

    how = _wayland.route(session.current(), wayland)
    return _wayland.Desktop(session.current(), how, say, data_dir() / "screenshot-portal-asked")


def _focus_x11(sct: mss.MSS, bounds: dict[str, int]) -> Capture:
    from describe_screen import atspi
    from describe_screen.capture import focus

    info = atspi.focused()
    screen = (bounds["left"], bounds["top"], bounds["width"], bounds["height"])
    rect = focus.place_x11(info, screen) or screen
    shot = _grab(sct, {"left": rect[0], "top": rect[1], "width": rect[2], "height": rect[3]}, "focus")
    return focus.finish(shot, info, cropped=rect != screen)


def load_image(path: Path) -> Image.Image:
    """Open a picture file as RGB, refusing missing, non-image and oversized files before decoding."""
    from PIL import Image, UnidentifiedImageError

    regular_file(path, "image", _("Check the path and try again."))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
    except Image.DecompressionBombError as exc:
        raise _too_large(path.name, None) from exc
    except UnidentifiedImageError as exc:
        raise UserError(_("{name} is not a picture this program can read.", name=path.name),
                        _("Use a PNG, JPEG, BMP, GIF, TIFF or WebP file.")) from exc
    except OSError as exc:
        raise UserError(_("The image file {path} cannot be opened: {reason}.",
                          path=path, reason=exc.strerror or exc),
                        _("Check that you are allowed to read it.")) from exc
    return _decode(image, path.name)


def _decode(image: Image.Image, name: str) -> Image.Image:
    """Check the header size, then decode (shrunk when huge) and flatten transparency onto white (as a
    viewer shows it). An animation gives its first frame, marked with info["animated"]."""
    from PIL import Image

    width, height = image.size
    if width * height > MAX_PIXELS:
        raise _too_large(name, (width, height))
    factor = math.ceil(math.sqrt(width * height / MAX_DESCRIBE_PIXELS))
    animated = getattr(image, "n_frames", 1) > 1
    try:
        if factor > 1 and image.format == "JPEG":
            image.draft("RGB", (width // factor, height // factor))  # the decoder itself scales down
        image.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise UserError(_("{name} is damaged or incomplete, so it cannot be read.", name=name),
                        _("Save the picture again, or take a new screenshot.")) from exc
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, "white")
        flat.paste(rgba, mask=rgba.getchannel("A"))
        rgb = flat
    else:
        rgb = image.convert("RGB")
    if factor > 1 and rgb.size == (width, height):  # not a JPEG, or its decoder could not scale
        rgb = rgb.reduce(factor)
    rgb.info["animated"] = animated
    return rgb


def _too_large(name: str, size: tuple[int, int] | None) -> UserError:
    megapixels = MAX_PIXELS // 1_000_000
    return UserError(_("{name} is too large to describe ({width} by {height} pixels); the limit is {megapixels} "
                       "megapixels.", name=name, width=size[0], height=size[1], megapixels=megapixels) if size else
                     _("{name} is too large to describe; the limit is {megapixels} megapixels.",
                       name=name, megapixels=megapixels),
                     _("Shrink or crop the picture and try again."))


def _clipboard_image() -> Image.Image:
    from PIL import Image, ImageGrab, UnidentifiedImageError

    try:
        content = ImageGrab.grabclipboard()
    except UnidentifiedImageError:  # some xclip versions hand over copied text when asked for an image
        content = None
    except NotImplementedError as exc:
        raise UserError(_("The clipboard cannot be read: no clipboard tool is installed."),
                        _("Install xclip (on X11) or wl-clipboard (on Wayland).")) from exc
    except (ChildProcessError, OSError) as exc:
        raise UserError(_("The clipboard cannot be read."),
                        _("Run describe-screen inside your desktop session and copy the picture again.")) from exc
    if isinstance(content, list):  # copied files: use the first picture among them
        for name in content:
            try:
                return load_image(Path(name))
            except UserError:
                continue
        content = None
    if not isinstance(content, Image.Image):
        raise UserError(_("The clipboard has no picture in it."),
                        _("Copy an image first, for example with the Print Screen key, then try again."))
    return _decode(content, _("The clipboard picture"))


def _backend() -> ModuleType:
    """The backend module for this platform; its Desktop class finds the active window and the pointer."""
    if sys.platform == "win32":
        from describe_screen.capture import _windows as backend
    elif sys.platform == "darwin":
        from describe_screen.capture import _macos as backend
    else:
        from describe_screen.capture import _x11 as backend
    return backend


@contextmanager
def _screen() -> Iterator[mss.MSS]:
    """One mss connection for the whole capture (opened inside the backend's, so an X server
    with no other clients never resets between our steps)."""
    import mss

    try:
        with mss.MSS() as sct:
            yield sct
    except mss.ScreenShotError as exc:
        raise _refused(exc) from exc


def _grab(sct: mss.MSS, region: dict[str, int], target: str, title: str = "") -> Capture:
    from PIL import Image

    shot = sct.grab(region)
    image = Image.frombytes("RGB", shot.size, shot.rgb)
    return Capture(image, target, title=title, origin=(region["left"], region["top"]))


def _refused(exc: Exception) -> UserError:
    if sys.platform == "darwin":
        return UserError(_("The screen could not be captured: macOS has not allowed screen recording."),
                         _("Open System Settings, Privacy and Security, Screen Recording, allow the app that runs "
                           "describe-screen, then restart it."))
    return UserError(_("The screen could not be captured: {exc}.", exc=exc),
                     _("Run describe-screen inside your desktop session, or try describe-screen demo."))


def _contains(monitor: dict[str, int], x: int, y: int) -> bool:
    return (monitor["left"] <= x < monitor["left"] + monitor["width"]
            and monitor["top"] <= y < monitor["top"] + monitor["height"])


def _clip(rect: Rect, bounds: dict[str, int], what: str) -> dict[str, int]:
    """The part of `rect` inside `bounds`, as an mss region."""
    left, top = max(rect[0], bounds["left"]), max(rect[1], bounds["top"])
    right = min(rect[0] + rect[2], bounds["left"] + bounds["width"])
    bottom = min(rect[1] + rect[3], bounds["top"] + bounds["height"])
    if right <= left or bottom <= top:
        raise UserError(_("{what} is off the screen, so there is nothing to capture.", what=what),
                        _("Bring it back onto the screen, or describe the whole screen instead."))
    return {"left": left, "top": top, "width": right - left, "height": bottom - top}
