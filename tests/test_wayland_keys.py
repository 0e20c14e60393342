"""Wayland key bindings in the desktop's own settings: the lines for sway are valid sway config, and the
GNOME custom shortcuts are written through gsettings, keep the user's own, and come out again."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from dataclasses import asdict

import pytest

from describe_screen import gnome_keys, keys, sway_keys, wayland_keys
from describe_screen.config import HotkeyConfig

MEDIA_KEYS = gnome_keys.MEDIA_KEYS
MINE = "/org/gnome/settings-daemon/plugins/media-keys/custom-keybindings/custom0/"


def test_every_default_key_but_the_pointer_becomes_a_command_line_for_each_desktop():
    bindings = asdict(HotkeyConfig())
    found = {action: command for action, _, command in wayland_keys.commands(bindings, "/opt/ds")}
    assert found["ask"] == "/opt/ds listen"  # press to start, press again to send
    assert found["describe_focus"] == "/opt/ds describe --target focus"
    assert set(found) == set(bindings) - {"describe_pointer"}  # Wayland never says where the pointer is
    assert sway_keys.sway_line("<ctrl>+<alt>+f", "x") == "bindsym Ctrl+Mod1+f exec x"
    assert wayland_keys.hyprland_line("<ctrl>+<shift>+<f5>", "x") == "bind = CTRL SHIFT, F5, exec, x"
    assert gnome_keys.accelerator("<cmd>+<alt>+<space>") == "<Alt><Super>space"
    assert wayland_keys.portal_trigger("<ctrl>+<alt>+d") == "CTRL+ALT+d"


def test_a_bound_command_is_known_by_its_words_and_its_key_said():
    assert wayland_keys.action_of("'/my venv/bin/describe-screen' describe --target focus") == (
        "describe_focus", "/my venv/bin/describe-screen")
    assert wayland_keys.action_of("/usr/bin/python3 -m describe_screen listen") == ("ask", "/usr/bin/python3")
    assert wayland_keys.action_of("foot read") is None
    assert sway_keys.spoken("Ctrl+Mod1+d") == "Control Alt D"
    assert gnome_keys.spoken("<Control><Alt>f") == "Control Alt F"


@pytest.mark.parametrize("combo", ["<ctrl>+<alt_gr>+<shift>+<cmd>+d", "<ctrl>+<alt>+<space>", "<alt>+<f5>"])
def test_a_key_is_said_alike_by_the_settings_sway_and_gnome(combo, desktop):
    """Each desktop's spelling of the same keys ('Mod4', '<Super>', '<cmd>') is said with the same words, in the
    user's language; the AltGr and logo keys by their names, never as 'Alt_gr' or 'Command' on Linux."""
    desktop("de_DE.UTF-8")
    said = keys.spoken_hotkey(combo)
    assert sway_keys.spoken(sway_keys.sway_line(combo, "x").split()[1]) == said
    assert gnome_keys.spoken(gnome_keys.accelerator(combo)) == said
    assert said == {"<ctrl>+<alt_gr>+<shift>+<cmd>+d": "Steuerung Alt Gr Umschalt Super D",
                    "<ctrl>+<alt>+<space>": "Steuerung Alt Leertaste", "<alt>+<f5>": "Alt F5"}[combo]


def test_sway_accepts_the_printed_lines_which_run_the_program_by_its_full_path(tmp_path):
    shown = subprocess.run([sys.executable, "-m", "describe_screen", "keys", "show", "--desktop", "sway"],
                           env={**os.environ, "DESCRIBE_SCREEN_CONFIG": str(tmp_path / "none.toml")},
                           capture_output=True, text=True, timeout=60)
    lines = [line for line in shown.stdout.splitlines() if line.startswith("bindsym")]
    assert len(lines) == len(asdict(HotkeyConfig())) - 1 and "press it again to send it" in shown.stdout
    assert all(line.split(" exec ")[1].startswith("/") for line in lines), lines
    assert not any("Mod1+p " in line for line in lines)  # no pointer key
    config = tmp_path / "sway.conf"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    not_root = ["unshare", "--user"] if os.geteuid() == 0 else []  # sway refuses to run as root
    checked = subprocess.run([*not_root, "sway", "--validate", "--config", str(config)],
                             env={**os.environ, "XDG_RUNTIME_DIR": str(tmp_path), "WLR_BACKENDS": "headless",
                                  "WLR_LIBINPUT_NO_DEVICES": "1", "WLR_RENDERER": "pixman"},
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stderr[-2000:]


def test_gnome_shortcuts_are_added_beside_the_users_own_and_removed_again(tmp_path):
    env = {**os.environ, "GSETTINGS_BACKEND": "keyfile", "XDG_CONFIG_HOME": str(tmp_path),
           "DESCRIBE_SCREEN_CONFIG": str(tmp_path / "none.toml")}

    def gsettings(*args: str) -> str:
        done = subprocess.run(["gsettings", *args], env=env, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def keys(action: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "describe_screen", "keys", action, "--desktop", "gnome",
                               "--program", "/opt/ds/describe-screen"], env=env, capture_output=True, text=True,
                              timeout=60)

    gsettings("set", MEDIA_KEYS, "custom-keybindings", f"['{MINE}']")
    assert keys("install").returncode == 0
    paths = ast.literal_eval(gsettings("get", MEDIA_KEYS, "custom-keybindings"))
    assert paths[0] == MINE and len(paths) == len(asdict(HotkeyConfig()))  # ours, but no pointer key
    focus = f"{MEDIA_KEYS}.custom-keybinding:{gnome_keys.GNOME_PATH.format('describe-focus')}"
    assert gsettings("get", focus, "binding") == "'<Control><Alt>f'"
    assert gsettings("get", focus, "command") == "'/opt/ds/describe-screen describe --target focus'"
    assert gsettings("get", focus, "name") == "'describe-screen: describe focus'"
    env.update(LANGUAGE="de", LANG="de_DE.UTF-8")  # GNOME's Settings (and the screen reader) read it in German
    assert keys("install").returncode == 0
    assert gsettings("get", focus, "name") == "'describe-screen: Fokus beschreiben'"
    env.update(LANGUAGE="en", LANG="C.UTF-8")
    read_back = subprocess.run([sys.executable, "-c", "from describe_screen import gnome_keys\n"
                                "for a, b in gnome_keys.bound().items(): print(a, '|', b.keys, '|', b.program)"],
                               env=env, capture_output=True, text=True, timeout=60)
    bound = {line.split(" | ")[0]: line.split(" | ")[1:] for line in read_back.stdout.splitlines()}
    assert bound["describe_focus"] == ["Control Alt F", "/opt/ds/describe-screen"], read_back.stderr
    ours = len(asdict(HotkeyConfig())) - 1  # every key but the pointer's; the user's own shortcut is not ours
    assert len(bound) == ours and "describe_pointer" not in bound
    removed = keys("remove")
    assert removed.returncode == 0 and f"Removed {ours}" in removed.stdout
    assert ast.literal_eval(gsettings("get", MEDIA_KEYS, "custom-keybindings")) == [MINE]
    assert gsettings("get", focus, "binding") == "''"


def test_the_ready_message_names_only_keys_that_are_really_bound():
    from describe_screen.hotkeys import HotkeyListener, ready_words

    everything = HotkeyListener(asdict(HotkeyConfig()), lambda action: None)  # X11: all of its own keys
    assert ready_words(everything) == "describe-screen is ready. Press Control Alt D to describe the screen."
    assert ready_words(None) == "describe-screen is ready."  # --no-hotkeys
    none_yet = wayland_keys.DesktopBindings({}, known=True)
    assert ready_words(none_yet).startswith("describe-screen is ready. No keys are bound to describe-screen")
    assert ready_words(none_yet).endswith(f"{wayland_keys.program()} keys install")
    some = wayland_keys.DesktopBindings({"ask": "Control Alt A"}, known=True)
    assert ready_words(some) == ("describe-screen is ready. On this desktop, press the ask key once to start a "
                                 "question and again to send it.")


@pytest.mark.parametrize(("desktop", "hint"), [("sway", "the Super key and an arrow key"), ("GNOME", "Alt Tab")])
def test_with_no_active_window_the_hint_uses_this_desktops_keys(monkeypatch, desktop, hint):
    from types import SimpleNamespace

    from describe_screen import atspi
    from describe_screen.errors import UserError

    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-1")
    monkeypatch.setenv("XDG_CURRENT_DESKTOP", desktop)
    monkeypatch.delenv("SWAYSOCK", raising=False)
    window = SimpleNamespace(get_state_set=lambda: SimpleNamespace(contains=lambda state: False))
    app = SimpleNamespace(get_child_count=lambda: 1, get_child_at_index=lambda i: window)
    desk = SimpleNamespace(get_child_count=lambda: 1, get_child_at_index=lambda i: app)
    fake = SimpleNamespace(get_desktop=lambda i: desk, StateType=SimpleNamespace(ACTIVE=1))
    with pytest.raises(UserError) as raised:
        atspi._active_window(fake)
    assert hint in raised.value.fix
    assert desktop != "sway" or "Alt Tab" not in raised.value.fix


def test_keys_install_outside_wayland_binds_nothing_so_no_key_runs_twice(tmp_path):
    env = {key: value for key, value in os.environ.items()
           if key not in ("WAYLAND_DISPLAY", "XDG_SESSION_TYPE", "SWAYSOCK", "XDG_CONFIG_HOME")}
    done = subprocess.run([sys.executable, "-m", "describe_screen", "keys", "install"], capture_output=True, text=True,
                          env={**env, "HOME": str(tmp_path), "DESCRIBE_SCREEN_CONFIG": str(tmp_path / "none.toml")},
                          timeout=60)
    assert done.returncode == 0 and "the daemon hears its keys itself, so there is nothing to bind" in done.stdout
    assert not list(tmp_path.iterdir())
