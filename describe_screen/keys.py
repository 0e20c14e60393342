"""Hotkey strings as the settings file writes them ("<ctrl>+<alt>+d"): checked, normalised and said.

Pure text, no display and no pynput: the settings check, `doctor` and every hotkey backend (pynput on
X11, Windows and macOS; the desktop's own bindings on Wayland) share it without importing each other.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

from describe_screen.errors import UserError
from describe_screen.i18n import N_, _

# Modifiers in the order the normalised form lists them; left/right variants mean the same key,
# because pynput folds them together before comparing.
MODIFIERS = ("ctrl", "alt", "alt_gr", "shift", "cmd")
SIDED = {f"{m}_{side}": m for m in ("ctrl", "alt", "shift", "cmd") for side in ("l", "r")}
NAMED_KEYS = frozenset((
    *MODIFIERS, *SIDED, "backspace", "caps_lock", "delete", "down", "end", "enter", "esc", "home", "left",
    "page_down", "page_up", "right", "space", "tab", "up", "insert", "menu", "num_lock", "pause",
    "print_screen", "scroll_lock", "media_play_pause", "media_volume_mute", "media_volume_down",
    "media_volume_up", "media_previous", "media_next", *(f"f{n}" for n in range(1, 21)),
))
EXAMPLE = (N_("Write it like <ctrl>+<alt>+d: key names in angle brackets such as <ctrl>, <alt>, <shift>, <cmd>, "
           "<f1> to <f20>, <space>, and single letters or digits as they are."))


def parse_hotkey(combo: str, key_name: str) -> str:
    """Check a combo and return its normal form (modifiers first, in a fixed order, lower case).

    Works without a display and without importing pynput, so `doctor` can check settings anywhere.
    """
    def bad(problem: str) -> UserError:
        return UserError(_("Setting {key_name} is {combo!r}: {problem}.",
                           key_name=key_name, combo=combo, problem=problem), _(EXAMPLE))

    parts, start = [], 0
    for i, char in enumerate(combo):  # split on "+", but a "+" that starts a part is the plus key
        if char == "+" and i != start:
            parts.append(combo[start:i])
            start = i + 1
    if start == len(combo):
        raise bad(_("it is empty or ends with +"))
    parts.append(combo[start:])
    mods, keys = set(), []
    for part in parts:
        if len(part) == 1 and part.strip():
            token = part.lower()
        elif len(part) > 2 and part[0] == "<" and part[-1] == ">":
            name = part[1:-1].strip().lower()
            name = SIDED.get(name, name)
            if name not in NAMED_KEYS and not name.isdigit():  # digits: a raw virtual key code
                raise bad(_("{part} is not a key name", part=part))
            if name in MODIFIERS:
                if name in mods:
                    raise bad(_("{part} appears twice", part=part))
                mods.add(name)
                continue
            token = f"<{name}>"
        elif part.strip().isalnum():
            bracketed = "<" + part.strip().lower() + ">"
            raise bad(_("{part!r} is not a key; put key names in angle brackets, like {bracketed}", part=part,
                        bracketed=bracketed))
        else:
            raise bad(_("{part!r} is not a key", part=part))
        if token in keys:
            raise bad(_("{part} appears twice", part=part))
        keys.append(token)
    if not keys:
        raise bad(_("it has only modifier keys; add the key to press with them, such as d"))
    if not mods and any(len(k) == 1 for k in keys):
        raise bad(_("a letter or digit without <ctrl>, <alt> or <cmd> would fire while you type; add a modifier"))
    return "+".join([f"<{m}>" for m in MODIFIERS if m in mods] + keys)


# Keys as a person says them, by the settings' names; each desktop's own spellings ("Mod1", "<Primary>") map
# onto these names through its aliases. The cmd key is the one with the system's logo: Super on Linux desktops.
SPOKEN_KEYS = {
    "ctrl": N_("Control"), "alt": N_("Alt"), "alt_gr": N_("Alt Graph"), "shift": N_("Shift"), "super": N_("Super"),
    "cmd": {"darwin": N_("Command"), "win32": N_("Windows")}.get(sys.platform, N_("Super")),
    "enter": N_("Enter"), "space": N_("Space"), "tab": N_("Tab"), "esc": N_("Escape"),
    "backspace": N_("Backspace"), "delete": N_("Delete")}


def spoken_key(name: str, aliases: Mapping[str, str] | None = None) -> str:
    """A key as a person says it, in the user's language: 'ctrl' -> 'Control'; with a desktop's `aliases`,
    its own spelling too ('Mod1' -> 'Alt'); a letter as its capital, other names as written."""
    ours = (aliases or {}).get(name.lower(), name.lower())
    if ours in SPOKEN_KEYS:
        return _(SPOKEN_KEYS[ours])
    return name.upper() if len(name) == 1 else name


def spoken_hotkey(combo: str) -> str:
    """'<ctrl>+<alt>+d' -> 'Control Alt D', the way a person says it."""
    return " ".join(spoken_key(part.strip("<>").capitalize()) for part in combo.split("+"))


# Each action by its name for people, in the English msgid the setting's own words (hotkeys.<action>), so an
# English line says what the settings file writes; tests hold it to HotkeyConfig's fields.
ACTIONS = {
    "describe_screen": N_("describe screen"), "describe_window": N_("describe window"),
    "describe_pointer": N_("describe pointer"), "read_text": N_("read text"), "ask": N_("ask"),
    "repeat": N_("repeat"), "stop": N_("stop"), "copy": N_("copy"), "describe_focus": N_("describe focus"),
    "explore_next": N_("explore next"), "explore_previous": N_("explore previous"),
    "explore_next_button": N_("explore next button"), "explore_previous_button": N_("explore previous button"),
    "explore_next_field": N_("explore next field"), "explore_previous_field": N_("explore previous field"),
    "explore_next_heading": N_("explore next heading"), "explore_previous_heading": N_("explore previous heading"),
    "explore_next_row": N_("explore next row"), "explore_previous_row": N_("explore previous row"),
    "explore_below": N_("explore below"), "explore_above": N_("explore above"), "explore_where": N_("explore where"),
    "press": N_("press"), "double_click": N_("double click"), "right_click": N_("right click"),
}


def spoken_action(action: str) -> str:
    """'describe_screen' -> 'Bildschirm beschreiben (hotkeys.describe_screen)': the action in the user's
    language, then the setting that changes its key, which a translated name no longer spells."""
    said = _(ACTIONS[action])
    return said if said == action.replace("_", " ") else f"{said} (hotkeys.{action})"
