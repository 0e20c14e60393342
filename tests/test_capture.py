"""Capture on a real X server: pixels, titles and regions, plus the plain-language refusals."""

from __future__ import annotations

import struct
import subprocess
import time
import zlib
from pathlib import Path

import pytest
from PIL import Image

from describe_screen.capture import MAX_PIXELS, capture, load_image
from describe_screen.clipboard import copy_text
from describe_screen.errors import UserError


def png_header(path: Path, width: int, height: int) -> Path:
    """A PNG that declares a size but holds no pixel data: cheap to make, refused before decoding."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


def set_active(display: str, window_id: int | None) -> None:
    """Play the window manager: set (or remove) _NET_ACTIVE_WINDOW on the root window."""
    from Xlib import X, Xatom
    from Xlib.display import Display

    dpy = Display(display)
    root = dpy.screen().root
    atom = dpy.intern_atom("_NET_ACTIVE_WINDOW")
    if window_id is None:
        root.delete_property(atom)
    else:
        root.change_property(atom, Xatom.WINDOW, 32, [window_id], X.PropModeReplace)
    dpy.sync()
    dpy.close()


def focus(display: str, window_id: int) -> None:
    from Xlib import X
    from Xlib.display import Display

    dpy = Display(display)
    dpy.set_input_focus(dpy.create_resource_object("window", window_id), X.RevertToParent, X.CurrentTime)
    dpy.sync()
    dpy.close()


def mouse_to(display: str, x: int, y: int) -> None:
    subprocess.run(["xdotool", "mousemove", str(x), str(y)], check=True, timeout=10,
                   env={"DISPLAY": display, "PATH": "/usr/bin:/bin"})


def test_window_target_uses_net_active_window(xvfb, window) -> None:
    win = window("Red Report", "Hello", bg="#ff0000", fg="#ff0000", buttons=())
    set_active(xvfb, win.window_id)
    try:
        shot = capture("window")
    finally:
        set_active(xvfb, None)
    assert shot.target == "window"
    assert shot.title == "Red Report"
    assert shot.origin == (0, 0)
    assert shot.image.mode == "RGB"
    width, height = shot.image.size
    assert 50 < width < 1280 and 20 < height < 720  # the window, not the whole screen
    assert shot.image.getpixel((2, 2)) == (255, 0, 0)
    assert shot.image.getpixel((width - 2, height - 2)) == (255, 0, 0)


def test_window_target_without_window_manager_uses_focus(xvfb, window) -> None:
    set_active(xvfb, None)
    win = window("Green Notes", "Hi", bg="#00ff00", fg="#00ff00", buttons=())
    focus(xvfb, win.window_id)
    shot = capture("window")
    assert shot.title == "Green Notes"
    assert shot.image.getpixel((3, 3)) == (0, 255, 0)
    assert shot.image.size[0] < 1280


def test_screen_and_all_targets_grab_the_monitor(xvfb, window) -> None:
    window("Blue", "x", bg="#0000ff", fg="#0000ff", buttons=())
    mouse_to(xvfb, 640, 360)
    screen = capture("screen")
    assert screen.target == "screen" and screen.image.size == (1280, 720)
    assert screen.image.getpixel((1, 1)) == (0, 0, 255)
    everything = capture("all")
    assert everything.image.size == (1280, 720)
    assert everything.image.getpixel((1, 1)) == (0, 0, 255)


def test_pointer_region_is_centred_and_clipped(xvfb, window) -> None:
    window("Blue", "x", bg="#0000ff", fg="#0000ff", buttons=())
    mouse_to(xvfb, 600, 400)
    middle = capture("pointer", pointer_size=100)
    assert middle.origin == (550, 350) and middle.image.size == (100, 100)
    mouse_to(xvfb, 10, 20)
    corner = capture("pointer", pointer_size=100)
    assert corner.origin == (0, 0) and corner.image.size == (60, 70)
    assert corner.image.getpixel((10, 20)) == (0, 0, 255)
    mouse_to(xvfb, 1275, 715)
    far = capture("pointer", pointer_size=100)
    assert far.origin == (1225, 665) and far.image.size == (55, 55)


def test_image_file_is_read_as_rgb_with_transparency_on_white(tmp_path) -> None:
    picture = Image.new("RGBA", (4, 3), (10, 20, 30, 255))
    picture.putpixel((0, 0), (0, 0, 0, 0))
    path = tmp_path / "shot.png"
    picture.save(path)
    shot = capture("image", image_path=path)
    assert shot.title == "shot.png" and shot.image.mode == "RGB" and shot.image.size == (4, 3)
    assert shot.image.getpixel((0, 0)) == (255, 255, 255)
    assert shot.image.getpixel((3, 2)) == (10, 20, 30)
    Image.new("L", (1, 1), 7).save(tmp_path / "dot.png")
    assert load_image(tmp_path / "dot.png").getpixel((0, 0)) == (7, 7, 7)  # 1x1 goes through


def test_image_file_errors_are_plain(tmp_path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        capture("image", image_path=tmp_path / "missing.png")
    (tmp_path / "notes.png").write_text("just words")
    with pytest.raises(UserError, match="not a picture") as err:
        capture("image", image_path=tmp_path / "notes.png")
    assert "PNG" in err.value.fix
    whole = tmp_path / "whole.png"
    Image.new("RGB", (64, 64), "red").save(whole)
    (tmp_path / "cut.png").write_bytes(whole.read_bytes()[:80])
    with pytest.raises(UserError, match="damaged"):
        capture("image", image_path=tmp_path / "cut.png")
    with pytest.raises(UserError, match="is a folder"):
        capture("image", image_path=tmp_path)
    with pytest.raises(UserError, match="No image file"):
        capture("image")
    with pytest.raises(UserError, match="no capture target"):
        capture("desk")


@pytest.mark.parametrize("size", [(30000, 30000), (12000, 9000)])
def test_huge_image_is_refused_from_its_header(tmp_path, size) -> None:
    path = png_header(tmp_path / "huge.png", *size)
    start = time.perf_counter()
    with pytest.raises(UserError, match="too large") as err:
        capture("image", image_path=path)
    assert time.perf_counter() - start < 1.0
    assert f"{MAX_PIXELS // 1_000_000} megapixels" in err.value.problem
    assert err.value.fix


def clipboard_shows(display: str, expected: str, target: str = "UTF8_STRING", timeout: float = 3.0) -> bool:
    """Whether the clipboard comes to hold `expected` (xclip takes it over just after it returns)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(["xclip", "-selection", "clipboard", "-t", target, "-o"], capture_output=True,
                             timeout=10, env={"DISPLAY": display, "PATH": "/usr/bin:/bin"})
        got = out.stdout.decode("utf-8", "replace")
        if got == expected or expected in got.splitlines():  # TARGETS lists one type a line
            return True
        time.sleep(0.05)
    return False


def test_clipboard_image_and_empty_clipboard(xvfb, tmp_path) -> None:
    path = tmp_path / "clip.png"
    Image.new("RGB", (5, 4), (1, 2, 3)).save(path)
    env = {"DISPLAY": xvfb, "PATH": "/usr/bin:/bin"}
    # xclip stays alive to serve the selection until someone else owns it (or the display closes).
    subprocess.run(["xclip", "-selection", "clipboard", "-t", "image/png", "-i", str(path)], env=env,
                   check=True, timeout=10)
    assert clipboard_shows(xvfb, "image/png", "TARGETS")
    shot = capture("clipboard")
    assert shot.target == "clipboard" and shot.image.size == (5, 4)
    assert shot.image.getpixel((4, 3)) == (1, 2, 3)
    subprocess.run(["xclip", "-selection", "clipboard", "-i"], input=b"only text", env=env, check=True,
                   timeout=10)
    assert clipboard_shows(xvfb, "only text")
    with pytest.raises(UserError, match="no picture"):
        capture("clipboard")


def test_no_display_is_explained(monkeypatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(UserError, match="DISPLAY") as err:
        capture("screen")
    assert "demo" in err.value.fix
    monkeypatch.setenv("DISPLAY", ":987")
    with pytest.raises(UserError, match="Cannot connect to the display :987"):
        capture("window")
    monkeypatch.delenv("DISPLAY")
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    with pytest.raises(UserError, match="Wayland") as err:
        capture("pointer")
    assert "focused object" in err.value.fix  # Wayland never tells where the pointer is


def test_copy_text_round_trips_through_the_clipboard(xvfb) -> None:
    copy_text("Saved 3 files. Café ✓")
    assert clipboard_shows(xvfb, "Saved 3 files. Café ✓")


def test_copy_text_names_the_missing_tool(xvfb, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(UserError, match="no clipboard tool") as err:
        copy_text("x")
    assert "xclip" in err.value.fix
    monkeypatch.delenv("DISPLAY")
    with pytest.raises(UserError, match="no graphical session"):
        copy_text("x")


def test_repeated_captures_on_an_idle_server(monkeypatch) -> None:
    """An X server with no clients resets when our last connection closes; the next capture must still work."""
    from conftest import start_xvfb

    server, display = start_xvfb("640x480x24")
    monkeypatch.setenv("DISPLAY", display)
    try:
        sizes = [capture(target).image.size for target in ("screen", "pointer", "all", "screen")]
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert sizes == [(640, 480), (480, 480), (640, 480), (640, 480)]


def test_wayland_session_never_reads_the_blank_xwayland_screen(monkeypatch) -> None:
    """Xwayland would hand back a blank picture instead of the Wayland windows: a Wayland session goes
    through the desktop's screenshot portal instead, and says so plainly when it cannot reach it."""
    from conftest import start_xvfb

    server, display = start_xvfb("320x200x24")  # nothing on it: one flat colour
    monkeypatch.setenv("DISPLAY", display)
    monkeypatch.setenv("XDG_SESSION_TYPE", "wayland")
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")
    try:
        with pytest.raises(UserError, match="message bus") as err:
            capture("screen")
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert "blank" not in str(err.value)


def test_an_animated_picture_gives_its_first_frame_and_says_so(tmp_path) -> None:
    frames = [Image.new("RGB", (40, 30), colour) for colour in ("red", "blue", "green")]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    shot = capture("image", image_path=tmp_path / "anim.gif")
    assert shot.image.getpixel((5, 5)) == (255, 0, 0)
    assert "animated" in shot.note and "first frame" in shot.note
    frames[0].save(tmp_path / "still.gif")
    assert capture("image", image_path=tmp_path / "still.gif").note == ""


def test_a_huge_jpeg_is_shrunk_while_it_is_decoded(tmp_path) -> None:
    """Decoded in a fresh process, so its peak memory is the decoding's alone."""
    import sys

    make = "from PIL import Image; Image.new('RGB', (10000, 9000), 'white').save({!r}, quality=50)"
    subprocess.run([sys.executable, "-c", make.format(str(tmp_path / "huge.jpg"))], check=True)
    probe = ("import resource; from PIL import Image; from describe_screen.capture import capture; "
             "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; "
             f"shot = capture('image', image_path={str(tmp_path / 'huge.jpg')!r}); "
             "print(*shot.image.size, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)")
    width, height, grew_mb = map(int, subprocess.run([sys.executable, "-c", probe], check=True, text=True,
                                                     capture_output=True).stdout.split())
    assert (width, height) == (5000, 4500)  # a whole factor, straight from the JPEG decoder
    assert grew_mb < 200, grew_mb  # full size would be 270 MB decoded, plus its RGB copy
