"""Hotkeys on Wayland, where no program may watch the keyboard.

Two ways, in order:
1. The GlobalShortcuts portal (org.freedesktop.portal.GlobalShortcuts; KDE Plasma, GNOME 48 and
   later): the desktop tells us when a shortcut goes down and up, so push-to-talk works as on X11.
2. Otherwise the desktop's own key settings run describe-screen commands, which reach the running
   daemon: GNOME custom keybindings (written through gsettings, with the user's consent, and removable),
   or lines the user adds to the sway or Hyprland config. A desktop runs a command only when the key
   goes down, so there push-to-talk is: press to start the question, press again to send it.

`python -m describe_screen.wayland_keys show|install|remove [--desktop gnome|sway|hyprland]` is what
installer/install.sh runs.
"""

from __future__ import annotations

import argparse
import ast
import logging
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

from describe_screen.errors import UserError

log = logging.getLogger(__name__)

GLOBAL_SHORTCUTS = "org.freedesktop.portal.GlobalShortcuts"
COMMANDS = {
    "describe_screen": "describe --target screen", "describe_window": "describe --target window",
    "describe_pointer": "describe --target pointer", "describe_focus": "describe --target focus",
    "read_text": "read", "ask": "listen", "repeat": "repeat", "stop": "stop", "copy": "copy",
}
PRESS_TWICE = ("Push-to-talk becomes: press the ask key to start the question, and press it again to send it, "
               "because this desktop runs a command only when a key goes down.")
MEDIA_KEYS = "org.gnome.settings-daemon.plugins.media-keys"
GNOME_PATH = "/org/gnome/settings-daemon/plugins/media-keys/custom-keybindings/describe-screen-{}/"
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


def sway_line(combo: str, command: str) -> str:
    names = {"ctrl": "Ctrl", "alt": "Mod1", "alt_gr": "Mod5", "shift": "Shift", "cmd": "Mod4"}
    mods, key = split(combo)
    return f"bindsym {'+'.join([*(names[m] for m in mods), key])} exec {command}"


def hyprland_line(combo: str, command: str) -> str:
    names = {"ctrl": "CTRL", "alt": "ALT", "alt_gr": "MOD5", "shift": "SHIFT", "cmd": "SUPER"}
    mods, key = split(combo)
    return f"bind = {' '.join(names[m] for m in mods)}, {key}, exec, {command}"


def gnome_accelerator(combo: str) -> str:
    names = {"ctrl": "<Control>", "alt": "<Alt>", "alt_gr": "<Mod5>", "shift": "<Shift>", "cmd": "<Super>"}
    mods, key = split(combo)
    return "".join(names[m] for m in mods) + key


def portal_trigger(combo: str) -> str:
    """The portal's preferred_trigger form (the XDG shortcuts format): 'CTRL+ALT+d'."""
    names = {"ctrl": "CTRL", "alt": "ALT", "alt_gr": "ALT", "shift": "SHIFT", "cmd": "LOGO"}
    mods, key = split(combo)
    return "+".join([*(names[m] for m in mods), key])


def commands(bindings: dict[str, str], program: str = "describe-screen") -> list[tuple[str, str, str]]:
    """(action, combo, command) for every bound action the desktop can run."""
    return [(action, combo, f"{program} {COMMANDS[action]}") for action, combo in bindings.items()
            if combo and action in COMMANDS]


# -- 1. the GlobalShortcuts portal ---------------------------------------------------------------
class PortalShortcuts:
    """Shortcuts registered with the desktop through the portal; Activated/Deactivated are press/release."""

    def __init__(self, bindings: dict[str, str], on_press: Callable[[str], None],
                 on_release: Callable[[str], None]) -> None:
        self.bindings = {action: combo for action, combo in bindings.items() if combo}
        self.on_press, self.on_release = on_press, on_release
        self._bus: Any = None
        self._session = ""
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def start(self) -> None:
        from describe_screen.capture.portal import Bus

        bus = Bus()
        try:
            rule = self._bind(bus)
        except BaseException:
            bus.conn.close()
            raise
        self._bus = bus
        self._thread = threading.Thread(target=self._listen, args=(bus, rule), name="portal-keys", daemon=True)
        self._thread.start()

    def _bind(self, bus: Any) -> Any:
        """CreateSession, then BindShortcuts (the desktop may ask the user to confirm the keys); returns
        the match rule for the session's Activated and Deactivated signals, already subscribed."""
        from jeepney import MatchRule, message_bus
        from jeepney.io.blocking import Proxy

        code, results = bus.request(GLOBAL_SHORTCUTS, "CreateSession", "a{sv}",
                                    ({"session_handle_token": ("s", "describe_screen_keys")},))
        if code != 0:
            raise UserError("The desktop refused to give describe-screen its shortcuts.",
                            "Allow them when the desktop asks, then restart describe-screen.")
        self._session = str(results["session_handle"])
        shortcuts = [(action, {"description": ("s", action.replace("_", " ")),
                               "preferred_trigger": ("s", portal_trigger(combo))})
                     for action, combo in self.bindings.items()]
        code, _ = bus.request(GLOBAL_SHORTCUTS, "BindShortcuts", "oa(sa{sv})sa{sv}",
                              (self._session, shortcuts, "", {}))
        if code != 0:
            raise UserError("The desktop did not accept describe-screen's shortcuts.",
                            "Choose the keys when the desktop asks, then restart describe-screen.")
        rule = MatchRule(type="signal", interface=GLOBAL_SHORTCUTS)
        Proxy(message_bus, bus.conn).AddMatch(rule)
        return rule

    def _listen(self, bus: Any, rule: Any) -> None:
        from jeepney.low_level import HeaderFields

        conn = bus.conn
        with conn.filter(rule, bufsize=64) as signals:
            while not self._stopping.is_set():
                try:
                    signal = conn.recv_until_filtered(signals, timeout=0.5)
                except TimeoutError:
                    continue
                except OSError:
                    return
                session, action = signal.body[0], signal.body[1]
                if session != self._session or action not in self.bindings:
                    continue
                pressed = signal.header.fields.get(HeaderFields.member) == "Activated"
                callback = self.on_press if pressed else self.on_release
                try:
                    callback(action)
                except Exception:
                    log.exception("hotkey callback for %s failed", action)

    def stop(self) -> None:
        """End the portal session; a held push-to-talk key gets its release."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._bus is not None:
            from jeepney import DBusAddress, new_method_call

            from describe_screen.capture.portal import BUS_NAME

            close = new_method_call(DBusAddress(self._session, bus_name=BUS_NAME,
                                                interface="org.freedesktop.portal.Session"), "Close")
            try:
                self._bus.conn.send_and_get_reply(close, timeout=5)
            except OSError:  # the desktop ends the session itself when the connection closes
                pass
            finally:
                self._bus.conn.close()
            self._bus = None


def portal_version() -> int:
    from describe_screen.capture.portal import Bus

    try:
        with Bus() as bus:
            return bus.version(GLOBAL_SHORTCUTS)
    except UserError:
        return 0


def start(bindings: dict[str, str], on_press: Callable[[str], None], on_release: Callable[[str], None],
          report: Callable[[UserError], object]) -> PortalShortcuts | DesktopBindings | None:
    """The portal's shortcuts when the desktop offers them (None when they failed, said through
    `report`); otherwise DesktopBindings, and a printed note that the desktop's own key settings run
    the commands (set up by the installer)."""
    if portal_version():
        listener = PortalShortcuts(bindings, on_press, on_release)
        try:
            listener.start()
            return listener
        except UserError as exc:
            report(UserError(f"Hotkeys are off. {exc.problem}", exc.fix))
        except OSError as exc:  # the bus went away or did not answer in time
            report(UserError(f"Hotkeys are off: the desktop's shortcuts portal failed ({exc}).",
                             "Restart describe-screen; commands from a terminal still work."))
        return None
    print("describe-screen: this Wayland desktop has no global shortcuts portal, so hotkeys are the key bindings "
          f"in the desktop's own settings (installer/install.sh can add them). {PRESS_TWICE}",
          file=sys.stderr, flush=True)
    return DesktopBindings()


class DesktopBindings:
    """Hotkeys are the desktop's own key bindings, which run describe-screen commands: nothing to listen
    to or stop here, but the user is told at start how the ask key behaves."""

    note = "On this desktop, press the ask key once to start a question and again to send it."

    def stop(self) -> None:
        pass


# -- 2. the desktop's own key settings -----------------------------------------------------------
def _gsettings(*args: str) -> str:
    try:
        done = subprocess.run(["gsettings", *args], capture_output=True, text=True, timeout=20)
    except FileNotFoundError as exc:
        raise UserError("gsettings is not installed, so GNOME's key settings cannot be changed.",
                        "Install libglib2.0-bin, or add the keys in Settings, Keyboard, Custom Shortcuts.") from exc
    if done.returncode:
        raise UserError(f"GNOME's key settings could not be changed: {done.stderr.strip()}.",
                        "Add the keys by hand in Settings, Keyboard, Keyboard Shortcuts, Custom Shortcuts.")
    return done.stdout.strip()


def _gnome_list() -> list[str]:
    raw = _gsettings("get", MEDIA_KEYS, "custom-keybindings")
    return list(ast.literal_eval(raw.removeprefix("@as "))) if raw else []


def gnome_install(bindings: dict[str, str], program: str) -> list[str]:
    """Add one GNOME custom shortcut per action (keeping the user's own); returns what was bound."""
    paths = _gnome_list()
    done = []
    for action, combo, command in commands(bindings, program):
        path = GNOME_PATH.format(action.replace("_", "-"))
        schema = f"{MEDIA_KEYS}.custom-keybinding:{path}"
        _gsettings("set", schema, "name", f"describe-screen: {action.replace('_', ' ')}")
        _gsettings("set", schema, "command", command)
        _gsettings("set", schema, "binding", gnome_accelerator(combo))
        if path not in paths:
            paths.append(path)
        done.append(f"{gnome_accelerator(combo)}: {command}")
    _gsettings("set", MEDIA_KEYS, "custom-keybindings", str(paths))
    return done


def gnome_remove() -> int:
    """Take out every describe-screen shortcut (and only those); returns how many."""
    paths = _gnome_list()
    ours = [p for p in paths if "/describe-screen-" in p]
    for path in ours:
        _gsettings("reset-recursively", f"{MEDIA_KEYS}.custom-keybinding:{path}")
    _gsettings("set", MEDIA_KEYS, "custom-keybindings", str([p for p in paths if p not in ours]))
    return len(ours)


def main(argv: list[str] | None = None) -> int:
    from dataclasses import asdict

    from describe_screen import config as settings
    from describe_screen.capture.session import current

    parser = argparse.ArgumentParser(prog="python -m describe_screen.wayland_keys",
                                     description="Bind describe-screen's keys in a Wayland desktop's settings.")
    parser.add_argument("action", choices=("show", "install", "remove"))
    parser.add_argument("--desktop", choices=("gnome", "sway", "hyprland"), default=current().compositor or "gnome")
    parser.add_argument("--program", default="describe-screen",
                        help="the command the keys run, in shell words (quote a path with spaces)")
    args = parser.parse_args(argv)
    bindings = asdict(settings.load().hotkeys)
    try:
        if args.desktop == "gnome":
            if args.action == "install":
                print("Bound in GNOME's keyboard settings:\n" + "\n".join(gnome_install(bindings, args.program)))
            elif args.action == "remove":
                print(f"Removed {gnome_remove()} describe-screen shortcut(s) from GNOME's keyboard settings.")
            else:
                print("\n".join(f"{gnome_accelerator(c)}: {cmd}" for _, c, cmd in commands(bindings, args.program)))
        else:
            line = sway_line if args.desktop == "sway" else hyprland_line
            where = "~/.config/sway/config" if args.desktop == "sway" else "~/.config/hypr/hyprland.conf"
            if args.action != "show":
                print(f"{args.desktop} keeps key bindings in its config file; add (or remove) these lines in {where},"
                      " then reload it:")
            print("\n".join(line(combo, command) for _, combo, command in commands(bindings, args.program)))
    except UserError as exc:
        print(f"describe-screen: {exc}", file=sys.stderr)
        return 1
    print(PRESS_TWICE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
