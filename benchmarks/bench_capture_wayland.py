"""Request to pixels on Wayland beside X11: how long one `capture("screen")` takes on each path.

    .venv/bin/python benchmarks/bench_capture_wayland.py [--runs 15]

Starts Xvfb (1280x720), a headless sway (pixman) and a headless GNOME Shell (virtual monitor), each
1280x720 with a GTK window, then captures the screen in turns — X11 (mss), sway through grim (wlroots
screencopy), sway through the screenshot portal (xdg-desktop-portal-wlr), GNOME through its portal
(xdg-desktop-portal-gnome, screenshots allowed in the permission store as the user's Allow would) —
interleaved, so the machine's load falls on all alike. The first request to each portal (which starts
the portal services) is left out. Prints a Markdown table to paste into
BENCHMARKS.md: medians, and each Wayland path's median ratio to X11 with its range over the rounds.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from wayland_session import HeadlessDesktop, HeadlessGnome, HeadlessSway

from describe_screen.capture import capture
from describe_screen.virtual_display import start_xvfb

WAYLAND_KEYS = ("WAYLAND_DISPLAY", "XDG_SESSION_TYPE", "XDG_CURRENT_DESKTOP", "SWAYSOCK", "XDG_RUNTIME_DIR",
                "DBUS_SESSION_BUS_ADDRESS", "DESCRIBE_SCREEN_DATA")


def timed(setup: Callable[[], None], how: str) -> float:
    setup()
    start = time.perf_counter()
    shot = capture("screen", wayland=how)
    elapsed = time.perf_counter() - start
    assert shot.image.size == (1280, 720), shot.image.size
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    xvfb, display = start_xvfb("1280x720x24")
    sway = HeadlessSway(portals=("wlr", "gtk"))
    gnome = HeadlessGnome()
    saved = dict(os.environ)
    try:
        for desktop in (sway, gnome):
            desktop.gtk_window("Report", "Quarterly report ready for review", "Cancel", "Send")
        gnome.answer_screenshots("yes")

        def x11() -> None:
            os.environ.clear()
            os.environ.update({k: v for k, v in saved.items() if k not in WAYLAND_KEYS}, DISPLAY=display)

        def inside(desktop: HeadlessDesktop) -> Callable[[], None]:
            def enter() -> None:
                os.environ.clear()
                os.environ.update(saved, **{k: desktop.env[k] for k in WAYLAND_KEYS if k in desktop.env})
                for name in ("DISPLAY", *(k for k in WAYLAND_KEYS if k not in desktop.env)):
                    os.environ.pop(name, None)
            return enter

        timed(inside(sway), "portal")  # starts xdg-desktop-portal and its back-ends: not part of a request
        timed(inside(gnome), "portal")
        times: dict[str, list[float]] = {"x11": [], "screencopy": [], "portal": [], "gnome": []}
        for _ in range(args.runs):
            times["x11"].append(timed(x11, "auto"))
            times["screencopy"].append(timed(inside(sway), "screencopy"))
            times["portal"].append(timed(inside(sway), "portal"))
            times["gnome"].append(timed(inside(gnome), "portal"))
    finally:
        os.environ.clear()
        os.environ.update(saved)
        sway.close()
        gnome.close()
        xvfb.terminate()
        xvfb.wait()
    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"{time.strftime('%Y-%m-%d')}; {args.runs} rounds, interleaved\n")
    print("| Path (1280x720) | Request to pixels, median | Ratio to X11, median (range) |")
    print("|---|---|---|")
    labels = {"x11": "X11, mss (Xvfb)", "screencopy": "Wayland, grim (wlroots screencopy, sway)",
              "portal": "Wayland, screenshot portal (xdg-desktop-portal-wlr, sway)",
              "gnome": "Wayland, screenshot portal (xdg-desktop-portal-gnome, GNOME Shell 43)"}
    for name, values in times.items():
        ratios = [v / x for v, x in zip(values, times["x11"], strict=True)]
        ratio = "1" if name == "x11" else (f"{statistics.median(ratios):.1f} "
                                           f"({min(ratios):.1f}-{max(ratios):.1f})")
        print(f"| {labels[name]} | {statistics.median(values) * 1000:.0f} ms | {ratio} |")


if __name__ == "__main__":
    main()
