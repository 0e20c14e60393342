"""GNOME on Wayland, as far as it runs here: GNOME Shell 43 headless (a virtual monitor) with
xdg-desktop-portal-gnome, a native GTK window, the describe-screen command inside that session.

The desktop's permission question cannot be shown headless, so the user's answer is put into the
portal's permission store as the question would. Without an input device GNOME gives no window the
keyboard focus, so the focus target is proven on sway and X11 instead.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from wayland_session import HeadlessGnome


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


@pytest.fixture(scope="module")
def gnome() -> Iterator[HeadlessGnome]:
    with HeadlessGnome() as desktop:
        desktop.gtk_window("New message", "Quarterly report ready for review", "Cancel", "Send")
        yield desktop


def run(gnome: HeadlessGnome, tmp_path: Path, *args: str, config: str = "") -> tuple[int, str]:
    """One describe-screen command inside the session (no daemon: it does the job itself), speech to a WAV."""
    (tmp_path / "config.toml").write_text("[speech]\ncues = false\n" + config, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "describe_screen", *args, "--json", "--speech-file", str(tmp_path / "s.wav")],
        env={**gnome.env, "DESCRIBE_SCREEN_CONFIG": str(tmp_path / "config.toml"),
             "DESCRIBE_SCREEN_DATA": str(tmp_path / "data"), "DESCRIBE_SCREEN_SOCKET": str(tmp_path / "none")},
        capture_output=True, text=True, timeout=300)
    said = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    text = " ".join(event.get("result", {}).get("text", "") or event.get("problem", "") + " " + event.get("fix", "")
                    for event in said)
    return done.returncode, f"{text}\n{done.stderr}"


def test_read_through_gnomes_portal_speaks_the_window_words(gnome, tmp_path):
    gnome.answer_screenshots("yes")
    code, out = run(gnome, tmp_path, "read")
    assert code == 0, out
    assert (tmp_path / "data" / "screenshot-portal-asked").exists()  # the first time was announced (spoken)
    assert {"quarterly", "report", "ready", "review"} <= words(out), out
    pictures = list(Path(gnome.env["HOME"]).rglob("*.png"))
    assert not pictures, pictures  # the portal's file was read and deleted


def test_window_on_gnome_is_the_whole_screen_said_plainly(gnome, tmp_path):
    gnome.answer_screenshots("yes")
    code, out = run(gnome, tmp_path, "read", "--target", "window")
    assert code == 0, out
    assert out.startswith("This desktop does not tell programs where windows are, so the picture is the whole screen.")
    assert {"quarterly", "report", "cancel", "send"} <= words(out), out


def test_refused_screenshots_are_one_plain_sentence_not_blank(gnome, tmp_path):
    gnome.answer_screenshots("no")
    try:
        code, out = run(gnome, tmp_path, "describe")
    finally:
        gnome.answer_screenshots("yes")
    assert code != 0
    assert "keeps an earlier answer not to let describe-screen take screenshots" in out, out
    assert "DeletePermission screenshot screenshot" in out  # how to be asked again
    assert "blank" not in out.lower()
    assert not (tmp_path / "data" / "screenshot-portal-asked").exists()  # announced again next time


def test_grim_on_gnome_fails_in_plain_words(gnome, tmp_path):
    code, out = run(gnome, tmp_path, "describe", config='[capture]\nwayland = "screencopy"\n')
    assert code != 0
    assert "grim failed (compositor doesn't support wlr-screencopy-unstable-v1)" in out, out
    assert 'capture.wayland = "portal"' in out
    assert "blank" not in out.lower()


def test_doctor_on_gnome_names_the_portal_and_what_to_allow(gnome, tmp_path):
    done = gnome.run([sys.executable, "-m", "describe_screen", "doctor", "--json"], timeout=300)
    checks = {check["part"]: check for check in json.loads(done.stdout)}
    says = checks["Display"]["says"]
    assert "a Wayland session (gnome)" in says and "screenshot portal" in says and "choose Allow" in says
    assert "does not tell programs where windows are" in says
    assert checks["Hotkeys"]["status"] == "note"  # GNOME 43's portal has no global shortcuts
    assert checks["Pressing"]["status"] == "ok", checks["Pressing"]
    assert "uses the desktop's remote-desktop portal" in checks["Pressing"]["says"]


PRESS = """
from describe_screen import press
print(press.route(), flush=True)
press.click(640, 360, "click", lambda words: print(words, flush=True))
"""


def test_gnomes_own_portal_takes_the_press_session_and_asks_the_user(gnome, tmp_path):
    """GNOME's own portal accepts the session describe-screen sets up (pointer, remembered until revoked;
    the monitors) and puts up its question, said first; headless, nobody can answer it, so only the
    question is checked: its words are read off the screen while it waits."""
    from describe_screen import press, remote_desktop

    gnome.answer_screenshots("yes")
    asker = subprocess.Popen([sys.executable, "-c", PRESS], env={**gnome.env, "DESCRIBE_SCREEN_DATA": str(tmp_path)},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert asker.stdout is not None
        assert asker.stdout.readline().strip() == press.ROUTE_PORTAL
        assert asker.stdout.readline().strip() == remote_desktop.FIRST_TIME  # said before the desktop asks
        deadline = time.monotonic() + 60
        while True:  # the question takes a moment to appear
            code, out = run(gnome, tmp_path, "read")
            if {"remote", "desktop", "share", "interaction"} <= words(out) or time.monotonic() > deadline:
                break
        assert code == 0 and {"remote", "desktop", "share", "allow", "interaction"} <= words(out), out
        assert asker.poll() is None, asker.stderr.read() if asker.stderr else ""  # still waiting for the answer
    finally:
        asker.terminate()
        asker.wait(timeout=30)
