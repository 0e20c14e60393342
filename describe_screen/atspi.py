"""The focused object and the active window, read from the accessibility bus (AT-SPI) as Orca reads them.

It works the same on X11 and Wayland, because programs publish their own widgets there. The binding
is GObject introspection's Atspi through PyGObject. PyGObject from PyPI compiles at install time (it
needs a C compiler and the girepository and cairo development packages), so the system's python3-gi
is used instead: when `gi` is not importable, the distribution's dist-packages folder is appended to
the module path. Appending never shadows a package of the virtualenv, and the system's PyGObject
matches the system's Atspi typelib.
"""

from __future__ import annotations

import sys
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from describe_screen import i18n
from describe_screen.errors import UserError
from describe_screen.i18n import N_, _

SYSTEM_PACKAGES = Path("/usr/lib/python3/dist-packages")
TIMEOUT_MS = 3000  # a program that stopped answering must not freeze the daemon
MAX_TEXT = 400  # characters of the object's own text passed on as context
MAX_NEARBY = 6
# Ancestors worth naming as where the object is ("in the dialog 'New message'"), and the words for them.
CONTAINERS = {"dialog": N_("the dialog '{name}'"), "alert": N_("the alert '{name}'"),
              "file chooser": N_("the file chooser '{name}'"), "frame": N_("the window '{name}'"),
              "window": N_("the window '{name}'"), "page tab": N_("the tab '{name}'"),
              "tool bar": N_("the toolbar '{name}'"), "menu": N_("the menu '{name}'"),
              "group": N_("the group '{name}'")}
INSTALL_FIX = N_("Install python3-gi and gir1.2-atspi-2.0 (installer/install.sh does it), then restart "
                 "describe-screen.")

Rect = tuple[int, int, int, int]
_lock = threading.Lock()


@dataclass
class Focus:
    """What the user's keyboard focus is on, in the words a screen reader would use."""

    role: str  # AT-SPI's role name ("push button"); said in the user's language where AT-SPI has it
    name: str
    description: str = ""
    text: str = ""
    container: str = ""  # e.g. "the dialog 'New message'"
    nearby: list[str] = field(default_factory=list)
    window: str = ""  # the active window's title
    extents: Rect | None = None  # on the screen, as the program believes
    in_window: Rect | None = None  # relative to its own window
    window_extents: Rect | None = None  # the window's own frame on the screen, as the program believes

    def sentence(self) -> str:
        """'A push button, 'Send', in the dialog 'New message'.' plus description, text and neighbours."""
        article = "An" if self.role[:1].lower() in "aeiou" else "A"  # {a}: English only
        what = (_("{a} {role}, '{name}'", a=article, role=self.role, name=self.name) if self.name else
                _("{a} {role}, without a name", a=article, role=self.role))
        words = _("{what}, in {container}.", what=what, container=self.container) if self.container else what + "."
        if self.description and self.description != self.name:
            words += f" {self.description.rstrip('.')}."
        if self.text and self.text != self.name:
            words += " " + _("It holds the text: {text}.", text=self.text.rstrip("."))
        if self.nearby:
            words += " " + _("Nearby: {items}.", items=", ".join(self.nearby))
        return words


def focused() -> Focus:
    """The object with the keyboard focus in the active window; a UserError says why there is none."""
    atspi = _atspi()
    with _lock:
        window = _active_window(atspi)
        title = window.get_name() or ""
        found = _focused_in(atspi, window)
        if found is None:
            raise UserError(_("Nothing has the keyboard focus in the window '{title}'.", title=title),
                            _("Press Tab to move to something, then try again."))
        return _describe(atspi, found, title, window)


def active_window_name() -> str:
    """The active window's title, or '' when no program says which window is active."""
    atspi = _atspi()
    with _lock:
        try:
            return _active_window(atspi).get_name() or ""
        except UserError:
            return ""


def check() -> None:
    """Raise a UserError, saying what to install, when the accessibility library is missing."""
    _atspi()


def _atspi() -> Any:
    try:
        import gi
    except ImportError:
        if SYSTEM_PACKAGES.is_dir() and str(SYSTEM_PACKAGES) not in sys.path:
            sys.path.append(str(SYSTEM_PACKAGES))
        try:
            import gi
        except ImportError as exc:
            raise UserError(_("The focused object cannot be found: the accessibility library (PyGObject) is not "
                              "installed."), _(INSTALL_FIX)) from exc
    try:
        gi.require_version("Atspi", "2.0")
        from gi.repository import Atspi
    except (ValueError, ImportError) as exc:
        raise UserError(_("The focused object cannot be found: the accessibility library (Atspi) is not installed."),
                        _(INSTALL_FIX)) from exc
    Atspi.set_timeout(TIMEOUT_MS, TIMEOUT_MS)
    # get_*_iface answer None for an interface an object lacks, which is what is wanted here.
    warnings.filterwarnings("ignore", r"Atspi\.Accessible\.get_\w+_iface is deprecated", DeprecationWarning)
    return Atspi


def _active_window(atspi: Any) -> Any:
    desktop = atspi.get_desktop(0)
    apps = [desktop.get_child_at_index(i) for i in range(desktop.get_child_count())]
    if not apps:
        raise UserError(_("No program shares its accessibility information, so I cannot find the focus."),
                        _("Turn on accessibility in your desktop settings (on GNOME: Settings, Accessibility, or "
                          "run: gsettings set org.gnome.desktop.interface toolkit-accessibility true), then "
                          "restart the program."))
    for app in apps:
        try:
            windows = [app.get_child_at_index(i) for i in range(app.get_child_count())]
        except Exception:  # a program that quit or hangs (gi raises GLib.Error): skip it
            continue
        for window in windows:
            try:
                if window is not None and window.get_state_set().contains(atspi.StateType.ACTIVE):
                    return window
            except Exception:  # the same
                continue
    raise UserError(_("No window is active, so there is no focused object to describe."),
                    _("Switch to a window first, {switch_keys}, then try again.", switch_keys=_switch_keys()))


def _switch_keys() -> str:
    """How this desktop switches windows by default: sway and Hyprland have no Alt Tab."""
    from describe_screen.capture.session import current

    if current().compositor in ("sway", "hyprland", "river"):
        return _("for example with the Super key and an arrow key")
    return _("for example with Alt Tab")


def _focused_in(atspi: Any, window: Any) -> Any:
    """The focused descendant, asked of the program in one call (the Collection interface)."""
    states = atspi.StateSet.new([atspi.StateType.FOCUSED])
    match = atspi.CollectionMatchType
    rule = atspi.MatchRule.new(states, match.ALL, {}, match.NONE, [], match.NONE, [], match.NONE, False)
    found = window.get_collection_iface().get_matches(rule, atspi.CollectionSortOrder.CANONICAL, 1, True)
    return found[0] if found else None


def _describe(atspi: Any, obj: Any, title: str, window: Any) -> Focus:
    container = ""
    parent = obj.get_parent()
    while parent is not None and not container:
        kind = CONTAINERS.get(parent.get_role_name() or "")
        if kind and parent.get_name():
            container = _(kind, name=parent.get_name())
        parent = parent.get_parent()
    english = i18n.language().code == i18n.SOURCE  # else AT-SPI's own translation of the role, when it has one
    role = (obj.get_role_name() if english else obj.get_localized_role_name()) or _("object")
    return Focus(role=role, name=(obj.get_name() or "").strip(),
                 description=(obj.get_description() or "").strip(), text=_text(obj), container=container,
                 nearby=_nearby(obj), window=title, extents=_extents(atspi, obj, atspi.CoordType.SCREEN),
                 in_window=_extents(atspi, obj, atspi.CoordType.WINDOW),
                 window_extents=_extents(atspi, window, atspi.CoordType.SCREEN))


def _text(obj: Any) -> str:
    text = obj.get_text_iface()
    if text is None:
        return ""
    count = text.get_character_count()
    return " ".join((text.get_text(0, min(count, MAX_TEXT)) or "").split())


def _nearby(obj: Any) -> list[str]:
    """Names of the object's named siblings, in order: what the user would Tab to next."""
    parent = obj.get_parent()
    if parent is None:
        return []
    names = []
    for i in range(min(parent.get_child_count(), 50)):
        sibling = parent.get_child_at_index(i)
        if sibling is not None and sibling != obj and (name := (sibling.get_name() or "").strip()):
            names.append(name)
    return names[:MAX_NEARBY]


def _extents(atspi: Any, obj: Any, coords: Any) -> Rect | None:
    component = obj.get_component_iface()
    if component is None:
        return None
    box = component.get_extents(coords)
    if box.width <= 0 or box.height <= 0:
        return None
    return box.x, box.y, box.width, box.height
