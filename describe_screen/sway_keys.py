"""describe-screen's keys in sway: a file of ours, included once from the user's sway config, and read
back from what sway itself loaded (over its IPC) to say which keys really work.

sway reads the first config it finds (sway(5)): ~/.sway/config, ~/.config/sway/config, ~/.i3/config,
~/.config/i3/config, and only when there is none, the system's /etc/sway/config. So a user without a
config who creates one loses every default binding; when there is none, the one made here begins by
including the system's config, then ours.
"""

from __future__ import annotations

import glob
import json
import os
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

from describe_screen.errors import UserError
from describe_screen.i18n import _
from describe_screen.keys import spoken_key
from describe_screen.wayland_keys import Bound, action_of, commands, split

SYSTEMS = (Path("/etc/sway/config"), Path("/usr/local/etc/sway/config"))  # where distributions put it
NAMES = {"ctrl": "Ctrl", "alt": "Mod1", "alt_gr": "Mod5", "shift": "Shift", "cmd": "Mod4"}
ALIASES = {"control": "ctrl", "mod1": "alt", "mod4": "super", "mod5": "alt_gr"}  # sway's modifier names not ours
HEADER = "# describe-screen's keys, written by `describe-screen keys install` (it rewrites this file).\n"


def sway_line(combo: str, command: str) -> str:
    mods, key = split(combo)
    return f"bindsym {'+'.join([*(NAMES[m] for m in mods), key])} exec {command}"


def spoken(keys: str) -> str:
    """'Ctrl+Mod1+d' -> 'Control Alt D'."""
    return " ".join(spoken_key(part, ALIASES) for part in keys.split("+"))


def _config_home() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")


def user_config() -> Path | None:
    """The user's own config, in sway's order of looking; None when sway would read the system's."""
    home = Path.home()
    for path in (home / ".sway/config", _config_home() / "sway/config", home / ".i3/config",
                 _config_home() / "i3/config"):
        if path.is_file():
            return path
    return None


def ours() -> Path:
    return _config_home() / "sway/config.d/describe-screen"


def install(bindings: dict[str, str], program: str) -> list[str]:
    """Write our file and include it from the user's config (made, including the system's, when there
    is none); then reload sway. Returns sentences saying what was done."""
    config = user_config()
    system = _system() if config is None else None  # before anything is written
    mine = ours()
    mine.parent.mkdir(parents=True, exist_ok=True)
    lines = [sway_line(combo, command) for _, combo, command in commands(bindings, program)]
    mine.write_text(HEADER + "\n".join(lines) + "\n", encoding="utf-8")
    said = [_("Wrote describe-screen's keys to {path}:", path=mine), *lines]
    include = f"include {shlex.quote(str(mine))}"
    if config is None:
        config = _config_home() / "sway/config"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text("# Made by describe-screen keys install: sway's own default configuration first, "
                          f"then describe-screen's keys.\ninclude {system}\n{include}\n", encoding="utf-8")
        said.append(_("You had no sway config, so {config} was made: it includes sway's default configuration "
                      "({system}), so every default key stays, and then describe-screen's keys.", config=config,
                      system=system))
    elif mine not in set(_included(config.read_text(encoding="utf-8", errors="replace"), config.parent)):
        with config.open("a", encoding="utf-8") as out:
            out.write(f"\n# describe-screen's keys\n{include}\n")
        said.append(_("Added one line to {config} that includes it.", config=config))
    said.append(reload())
    return said


def remove() -> str:
    """Empty our file, which the user's config still includes; a sentence saying so."""
    if ours().is_file():
        ours().write_text(HEADER, encoding="utf-8")
    return _("describe-screen's keys are out of {path}.", path=ours()) + " " + reload()


def _system() -> Path:
    """sway's default config, which a user without a config of their own runs."""
    found = next((path for path in SYSTEMS if path.is_file()), None)
    if found is None:
        raise UserError(_("You have no sway config, and sway's default one was not found (looked in {items}), so "
                          "a new config would lose sway's default keys.",
                          items=', '.join(map(str, SYSTEMS))),
                        _("Copy sway's default config to {path}, then run keys install again.",
                          path=_config_home() / 'sway/config'))
    return found


def reload() -> str:
    """Ask a running sway to read its config again; a sentence saying whether the keys work now."""
    if not os.environ.get("SWAYSOCK"):
        return _("sway is not running here: the keys work from the next time sway starts.")
    try:
        done = subprocess.run(["swaymsg", "reload"], capture_output=True, text=True, timeout=30)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        done = None
    if done is None or done.returncode:
        detail = (done.stdout + done.stderr).strip() if done else _("swaymsg did not answer")
        raise UserError(_("sway did not reload its config ({detail}).", detail=detail),
                        _("Fix what it names, then reload sway with Super Shift C."))
    return _("sway reloaded its config: the keys work now.")


def _included(text: str, folder: Path) -> Iterator[Path]:
    """The files a config's include lines name, expanded as sway does (~, variables, wildcards;
    relative to the config's folder)."""
    for line in text.splitlines():
        words = line.strip().split(None, 1)
        if len(words) == 2 and words[0] == "include":
            pattern = os.path.expandvars(os.path.expanduser(" ".join(shlex.split(words[1]))))
            for path in sorted(glob.glob(str(folder / pattern))):
                yield Path(path)


def _bindings(text: str, folder: Path, seen: set[Path]) -> Iterator[tuple[str, str]]:
    """(keys, command) of each default-mode `bindsym … exec …`, here and in the included files."""
    variables: dict[str, str] = {}
    depth = 0
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("set $"):
            name, _, value = line[4:].partition(" ")
            variables[name] = value.strip()
        words = line.split()
        if depth == 0 and words[:1] == ["bindsym"]:
            rest = [w for w in words[1:] if not w.startswith("--")]
            if len(rest) >= 3 and rest[1] == "exec":
                keys = rest[0]
                for name, value in variables.items():
                    keys = keys.replace(name, value)
                yield keys, line.split(" exec ", 1)[1].strip()
        depth += line.endswith("{") - line.startswith("}")
    for path in _included(text, folder):
        if path not in seen and path.is_file():
            seen.add(path)
            yield from _bindings(path.read_text(encoding="utf-8", errors="replace"), path.parent, seen)


def bound() -> dict[str, Bound] | None:
    """describe-screen's commands in the config the running sway loaded (asked over its IPC), with the
    files it includes; None when sway cannot be asked."""
    try:
        done = subprocess.run(["swaymsg", "-t", "get_config", "--raw"], capture_output=True, text=True, timeout=30)
        text = json.loads(done.stdout)["config"] if done.returncode == 0 else None
    except (FileNotFoundError, subprocess.TimeoutExpired, ValueError, KeyError):
        text = None
    if text is None:
        return None
    folder = (user_config() or SYSTEMS[0]).parent
    found = {}
    for keys, command in _bindings(text, folder, set()):
        if runs := action_of(command):
            found[runs[0]] = Bound(spoken(keys), runs[1])
    return found
