"""describe-screen's keys as GNOME custom shortcuts (Settings, Keyboard, Custom Shortcuts), written
through gsettings beside the user's own, removable again, and read back to say which keys really work."""

from __future__ import annotations

import ast
import re
import subprocess

from describe_screen.errors import UserError
from describe_screen.i18n import _
from describe_screen.keys import ACTIONS, spoken_key
from describe_screen.wayland_keys import Bound, action_of, commands, split

MEDIA_KEYS = "org.gnome.settings-daemon.plugins.media-keys"
GNOME_PATH = "/org/gnome/settings-daemon/plugins/media-keys/custom-keybindings/describe-screen-{}/"
NAMES = {"ctrl": "<Control>", "alt": "<Alt>", "alt_gr": "<Mod5>", "shift": "<Shift>", "cmd": "<Super>"}
ALIASES = {"control": "ctrl", "primary": "ctrl", "mod5": "alt_gr"}  # GNOME's modifier names that are not ours


def accelerator(combo: str) -> str:
    mods, key = split(combo)
    return "".join(NAMES[m] for m in mods) + key


def spoken(accel: str) -> str:
    """'<Control><Alt>d' -> 'Control Alt D'."""
    mods = [spoken_key(m, ALIASES) for m in re.findall(r"<([^>]+)>", accel)]
    return " ".join([*mods, spoken_key(re.sub(r"<[^>]+>", "", accel), ALIASES)])


def _gsettings(*args: str) -> str:
    try:
        done = subprocess.run(["gsettings", *args], capture_output=True, text=True, timeout=20)
    except FileNotFoundError as exc:
        raise UserError(_("gsettings is not installed, so GNOME's key settings cannot be changed."),
                        _("Install libglib2.0-bin, or add the keys in Settings, Keyboard, Custom Shortcuts.")) from exc
    if done.returncode:
        raise UserError(_("GNOME's key settings could not be changed: {strip}.", strip=done.stderr.strip()),
                        _("Add the keys by hand in Settings, Keyboard, Keyboard Shortcuts, Custom Shortcuts."))
    return done.stdout.strip()


def _paths() -> list[str]:
    raw = _gsettings("get", MEDIA_KEYS, "custom-keybindings")
    return list(ast.literal_eval(raw.removeprefix("@as "))) if raw else []


def _schema(path: str) -> str:
    return f"{MEDIA_KEYS}.custom-keybinding:{path}"


def install(bindings: dict[str, str], program: str) -> list[str]:
    """Add one GNOME custom shortcut per action (keeping the user's own); returns what was bound."""
    paths = _paths()
    done = []
    for action, combo, command in commands(bindings, program):
        path = GNOME_PATH.format(action.replace("_", "-"))
        _gsettings("set", _schema(path), "name", f"describe-screen: {_(ACTIONS[action])}")  # as Settings reads it
        _gsettings("set", _schema(path), "command", command)
        _gsettings("set", _schema(path), "binding", accelerator(combo))
        if path not in paths:
            paths.append(path)
        done.append(f"{accelerator(combo)}: {command}")
    _gsettings("set", MEDIA_KEYS, "custom-keybindings", str(paths))
    return done


def remove() -> int:
    """Take out every describe-screen shortcut (and only those); returns how many."""
    paths = _paths()
    ours = [p for p in paths if "/describe-screen-" in p]
    for path in ours:
        _gsettings("reset-recursively", _schema(path))
    _gsettings("set", MEDIA_KEYS, "custom-keybindings", str([p for p in paths if p not in ours]))
    return len(ours)


def bound() -> dict[str, Bound] | None:
    """Every custom shortcut, ours or the user's own, that runs a describe-screen key command and has a
    key; None when GNOME's settings cannot be read."""
    found = {}
    try:
        for path in _paths():
            command = ast.literal_eval(_gsettings("get", _schema(path), "command") or "''")
            keys = ast.literal_eval(_gsettings("get", _schema(path), "binding") or "''")
            if keys and (runs := action_of(command)):
                found[runs[0]] = Bound(spoken(keys), runs[1])
    except (UserError, ValueError, SyntaxError):
        return None
    return found
