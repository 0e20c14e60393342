"""`describe-screen keys show|install|remove`: describe-screen's keys in a Wayland desktop's own settings,
each running this very program by its absolute path."""

from __future__ import annotations

import argparse
import shlex
from dataclasses import asdict

from describe_screen.config import Config
from describe_screen.i18n import _, ngettext
from describe_screen.wayland_keys import PRESS_TWICE, commands, hyprland_line, program

DESKTOPS = ("gnome", "sway", "hyprland")
HYPRLAND = "~/.config/hypr/hyprland.conf"


def add_parser(sub: argparse._SubParsersAction) -> None:
    keys = sub.add_parser("keys", help=_("bind the keys in a Wayland desktop's settings (GNOME, sway, Hyprland)"))
    keys.add_argument("keys_command", metavar="ACTION", choices=("show", "install", "remove"),
                      help=_("show: the bindings; install: add them; remove: take them out (GNOME)"))
    keys.add_argument("--desktop", choices=DESKTOPS, help=_("which desktop's settings (default: this session's)"))
    keys.add_argument("--program", help=_("the describe-screen the keys run (default: this one, by its full path)"))


def run(config: Config, args: argparse.Namespace) -> int:
    from describe_screen.capture.session import current

    if args.desktop is None and current().kind != "wayland":  # binding them too would run each key twice
        print(_("This is {session}: the daemon hears its keys itself, so there is nothing to bind.",
                session=current().describe()))
        return 0
    runs = shlex.quote(args.program) if args.program else program()
    bindings = asdict(config.hotkeys)
    if args.desktop is None and current().compositor not in DESKTOPS:
        print(_("describe-screen can bind keys in {desktops}; on {session}, bind these commands to keys in the "
                "desktop's keyboard settings:", desktops=", ".join(DESKTOPS), session=current().describe()))
        print("\n".join(f"{combo}: {command}" for _, combo, command in commands(bindings, runs)))
        print(_(PRESS_TWICE))
        return 0
    args.desktop = args.desktop or current().compositor
    if args.desktop == "gnome":
        from describe_screen import gnome_keys

        if args.keys_command == "install":
            print(_("Bound in GNOME's keyboard settings:") + "\n" + "\n".join(gnome_keys.install(bindings, runs)))
        elif args.keys_command == "remove":
            print(ngettext("Removed {n} describe-screen shortcut from GNOME's keyboard settings.",
                           "Removed {n} describe-screen shortcuts from GNOME's keyboard settings.",
                           gnome_keys.remove()))
        else:
            print("\n".join(f"{gnome_keys.accelerator(c)}: {cmd}" for _, c, cmd in commands(bindings, runs)))
    elif args.desktop == "sway":
        from describe_screen import sway_keys

        if args.keys_command == "install":
            print("\n".join(sway_keys.install(bindings, runs)))
        elif args.keys_command == "remove":
            print(sway_keys.remove())
        else:
            print("\n".join(sway_keys.sway_line(combo, command) for _, combo, command in commands(bindings, runs)))
    else:
        if args.keys_command != "show":
            print(_("Hyprland keeps key bindings in its config file; add (or remove) these lines in {path}, and it "
                    "reads them at once:", path=HYPRLAND))
        print("\n".join(hyprland_line(combo, command) for _, combo, command in commands(bindings, runs)))
    print(_(PRESS_TWICE))
    return 0
