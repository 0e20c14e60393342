"""Hotkeys on Wayland, where no program may watch the keyboard.

Two ways, in order:
1. The GlobalShortcuts portal (portal_keys.py; KDE Plasma, GNOME 48 and later): the desktop tells us
   when a shortcut goes down and up, so push-to-talk works as on X11.
2. Otherwise the desktop's own key settings run describe-screen commands, which reach the running
   daemon: GNOME custom keybindings (gnome_keys.py), a file of ours included from the sway config
   (sway_keys.py), or lines the user adds to the Hyprland config. A desktop runs a command only when
   the key goes down, so there push-to-talk is: press to start the question, press again to send it.
   `describe-screen keys show|install|remove` (commands/keys.py) sets them up.

This module says what the keys are in each desktop's spelling, and which of them are really bound.
There is no pointer key: Wayland never tells a program where the pointer is.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from describe_screen.errors import UserError
from describe_screen.hotkeys import HOTKEY_REQUESTS
from describe_screen.i18n import N_, _

COMMANDS = {
    "describe_screen": "describe --target screen", "describe_window": "describe --target window",
    "describe_focus": "describe --target focus",
    "read_text": "read", "ask": "listen", "repeat": "repeat", "stop": "stop", "copy": "copy",
    **{action: f"explore {request['move']}" for action, request in HOTKEY_REQUESTS.items()
       if request["cmd"] == "explore"},
    "press": "explore press", "double_click": "explore double-click", "right_click": "explore right-click",
}
PRESS_TWICE = N_("Push-to-talk becomes: press the ask key to start the question, and press it again to send it, "
                 "because this desktop runs a command only when a key goes down.")
# pynput key names -> XKB keysym names (what sway, Hyprland, GNOME and the portal spell)
KEYSYMS = {"space": "space", "enter": "Return", "esc": "Escape", "tab": "Tab", "backspace": "BackSpace",
           "delete": "Delete", "insert": "Insert", "home": "Home", "end": "End", "page_up": "Prior",
           "page_down": "Next", "up": "Up", "down": "Down", "left": "Left", "right": "Right",
           "print_screen": "Print", "pause": "Pause", "menu": "Menu", "scroll_lock": "Scroll_Lock"}


def split(combo: str) -> tuple[list[str], str]:
    """'<ctrl>+<alt>+d' -> (['ctrl', 'alt'], 'd'), with the key as an XKB keysym name."""
    from describe_screen.keys import parse_hotkey

    *mods, key = [part.strip("<>") for part in parse_hotkey(combo, "hotkey").split("+")]
    if key.startswith("f") and key[1:].isdigit():
        return mods, key.upper()
    return mods, KEYSYMS.get(key, key)


def hyprland_line(combo: str, command: str) -> str:
    names = {"ctrl": "CTRL", "alt": "ALT", "alt_gr": "MOD5", "shift": "SHIFT", "cmd": "SUPER"}
    mods, key = split(combo)
    return f"bind = {' '.join(names[m] for m in mods)}, {key}, exec, {command}"


def portal_trigger(combo: str) -> str:
    """The portal's preferred_trigger form (the XDG shortcuts format): 'CTRL+ALT+d'."""
    names = {"ctrl": "CTRL", "alt": "ALT", "alt_gr": "ALT", "shift": "SHIFT", "cmd": "LOGO"}
    mods, key = split(combo)
    return "+".join([*(names[m] for m in mods), key])


def commands(bindings: dict[str, str], program: str) -> list[tuple[str, str, str]]:
    """(action, combo, command) for every bound action the desktop can run; `program` in shell words."""
    return [(action, combo, f"{program} {COMMANDS[action]}") for action, combo in bindings.items()
            if combo and action in COMMANDS]


def program() -> str:
    """This program as a desktop can run it, in shell words: an absolute path, because a desktop's PATH
    seldom holds the virtualenv it was installed in (and a key that finds no program fails silently)."""
    argv0 = Path(sys.argv[0])
    if argv0.name == "describe-screen" and argv0.is_file():
        return shlex.quote(str(argv0.absolute()))
    script = Path(sys.executable).parent / "describe-screen"
    if script.is_file():
        return shlex.quote(str(script))
    return f"{shlex.quote(sys.executable)} -m describe_screen"


@dataclass(frozen=True)
class Bound:
    """A key the desktop really has bound to a describe-screen command."""

    keys: str  # as a person says them: "Control Alt D"
    program: str  # the first word of the command: what the desktop runs

    @property
    def runnable(self) -> bool:
        """A path the desktop can run whatever its PATH (a bare name may not be found there)."""
        return os.path.isabs(self.program) and os.access(self.program, os.X_OK)


def action_of(command: str) -> tuple[str, str] | None:
    """(action, program) when `command` runs one of describe-screen's key commands, else None."""
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    for action, sub in COMMANDS.items():
        tail = sub.split()
        head = words[:-len(tail)]
        if words[-len(tail):] != tail or not head:
            continue
        if head[-1].endswith("describe-screen") or head[-2:] == ["-m", "describe_screen"]:
            return action, head[0]
    return None


def bound_keys(compositor: str) -> dict[str, Bound] | None:
    """action -> the key this desktop really runs it with; None when this desktop cannot be asked."""
    if compositor == "sway":
        from describe_screen import sway_keys

        return sway_keys.bound()
    if compositor == "gnome":
        from describe_screen import gnome_keys

        return gnome_keys.bound()
    return None


def start(bindings: dict[str, str], on_press: Callable[[str], None], on_release: Callable[[str], None],
          report: Callable[[UserError], object]) -> object | None:
    """The portal's shortcuts when the desktop offers them (None when they failed, said through
    `report`); otherwise DesktopBindings: the keys the desktop's own settings really have."""
    from describe_screen import portal_keys
    from describe_screen.capture.session import current

    bindings = {action: combo for action, combo in bindings.items() if action in COMMANDS}
    if portal_keys.portal_version():
        listener = portal_keys.PortalShortcuts(bindings, on_press, on_release, report)
        try:
            listener.start()
            return listener
        except UserError as exc:
            report(UserError(_("Hotkeys are off. {problem}", problem=exc.problem), exc.fix))
        except OSError as exc:  # the bus went away or did not answer in time
            report(UserError(_("Hotkeys are off: the desktop's shortcuts portal failed ({exc}).", exc=exc),
                             _("Restart describe-screen; commands from a terminal still work.")))
        return None
    print("describe-screen: " + _("This Wayland desktop has no global shortcuts portal, so hotkeys are the key "
                                  "bindings in the desktop's own settings ({command} adds them).",
                                  command=program() + " keys install") + " " + _(PRESS_TWICE),
          file=sys.stderr, flush=True)
    found = bound_keys(current().compositor)
    return DesktopBindings({action: key.keys for action, key in (found or {}).items()}, known=found is not None)


class DesktopBindings:
    """Hotkeys are the desktop's own key bindings, which run describe-screen commands: nothing to listen
    to or stop here, but the user is told at start which keys work and how the ask key behaves."""

    def __init__(self, bound: dict[str, str], known: bool) -> None:
        """`bound`: action -> its key as said; `known`: whether the desktop could be asked at all."""
        self.bound = bound
        if bound or not known:
            self.note = _("On this desktop, press the ask key once to start a question and again to send it.")
        else:
            self.note = _("No keys are bound to describe-screen in this desktop yet. To bind them, run: {command}",
                          command=program() + " keys install")

    def stop(self) -> None:
        pass


if __name__ == "__main__":  # what earlier instructions said to run
    sys.exit(_("describe-screen: this moved. Run: describe-screen keys show (or install, or remove)."))
