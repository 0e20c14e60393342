"""The screenshot portal (org.freedesktop.portal.Screenshot of xdg-desktop-portal), over D-Bus with jeepney.

This is how a Wayland desktop without a permission-free route (GNOME, KDE Plasma) lets a program see
the screen: the program asks, the desktop may ask the user once, then answers with a picture file.
The portal writes that file into the user's pictures folder; it is read and deleted at once, so the
screen never stays on disk.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from describe_screen.errors import UserError
from describe_screen.i18n import N_, _

if TYPE_CHECKING:
    from PIL import Image

BUS_NAME = "org.freedesktop.portal.Desktop"
OBJECT = "/org/freedesktop/portal/desktop"
SCREENSHOT = "org.freedesktop.portal.Screenshot"
# each portal interface in plain words, for what is said when it does not answer
UNANSWERED = {  # what the user is told when the desktop leaves a request of this interface unanswered
    SCREENSHOT: N_("The desktop did not answer the screenshot request in time."),
    "org.freedesktop.portal.RemoteDesktop": N_("The desktop did not answer the pointer control request in time."),
    "org.freedesktop.portal.ScreenCast": N_("The desktop did not answer the screen sharing request in time."),
    "org.freedesktop.portal.GlobalShortcuts": N_("The desktop did not answer the shortcuts request in time.")}
STORE = "org.freedesktop.impl.portal.PermissionStore"
STORE_OBJECT = "/org/freedesktop/impl/portal/PermissionStore"
FORGET = (f"gdbus call --session --dest {STORE} --object-path {STORE_OBJECT} "
          f"--method {STORE}.DeletePermission screenshot screenshot ''")
ANSWER_SECONDS = 120  # the first time, the user reads the desktop's question and answers it
MISSING_FIX = (N_("Install xdg-desktop-portal and your desktop's portal (xdg-desktop-portal-gnome, -kde or -wlr), "
               "log out and in again, then try again."))
FIRST_TIME = (N_("Your desktop is about to ask whether describe-screen may take screenshots. Please allow it: "
              "that is how I see the screen to describe it. It asks only this once."))


class Bus:
    """One connection to the session bus for portal calls; a context manager that closes it."""

    def __init__(self) -> None:
        from jeepney.io.blocking import open_dbus_connection

        try:
            self.conn = open_dbus_connection(bus="SESSION")
        except (OSError, KeyError, ValueError) as exc:
            raise UserError(_("describe-screen cannot reach the desktop's message bus (D-Bus), which it needs to "
                              "ask the desktop for screenshots, shortcuts and pointer control."),
                            _("Run describe-screen inside your desktop session, where DBUS_SESSION_BUS_ADDRESS is "
                              "set.")) from exc

    def __enter__(self) -> Bus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.conn.close()

    def version(self, interface: str) -> int:
        """The portal interface's version, or 0 when this desktop does not offer it."""
        from jeepney import DBusAddress, Properties

        address = DBusAddress(OBJECT, bus_name=BUS_NAME, interface=interface)
        try:
            reply = self.conn.send_and_get_reply(Properties(address).get("version"), timeout=30)
        except TimeoutError:  # nothing answered for the portal's name
            return 0
        if reply.header.message_type.name == "error":
            return 0
        return int(reply.body[0][1])

    def stored_answer(self, table: str, key: str) -> str:
        """The user's stored answer for programs outside a sandbox (app id "") in the portal's permission
        store, e.g. "yes" or "no"; "" when none is stored or there is no store."""
        from jeepney import DBusAddress, new_method_call

        store = DBusAddress(STORE_OBJECT, bus_name=STORE, interface=STORE)
        try:
            reply = self.conn.send_and_get_reply(new_method_call(store, "Lookup", "ss", (table, key)), timeout=10)
        except TimeoutError:
            return ""
        if reply.header.message_type.name == "error":
            return ""
        answers = reply.body[0].get("", [])
        return answers[0] if answers else ""

    def request(self, interface: str, method: str, signature: str, args: tuple,
                timeout: float = ANSWER_SECONDS) -> tuple[int, dict[str, Any]]:
        """Call a portal method that answers through a Request object: (response code, results).

        The Request's path is known before the call (from the handle_token), so the answer is
        subscribed to first and cannot be missed.
        """
        from jeepney import DBusAddress, MatchRule, message_bus, new_method_call
        from jeepney.io.blocking import Proxy

        token = f"describe_screen_{secrets.token_hex(8)}"
        sender = self.conn.unique_name.lstrip(":").replace(".", "_")
        rule = MatchRule(type="signal", interface="org.freedesktop.portal.Request", member="Response",
                         path=f"{OBJECT}/request/{sender}/{token}")
        Proxy(message_bus, self.conn).AddMatch(rule)
        options = args[-1]
        options["handle_token"] = ("s", token)
        address = DBusAddress(OBJECT, bus_name=BUS_NAME, interface=interface)
        with self.conn.filter(rule) as answers:
            reply = self.conn.send_and_get_reply(new_method_call(address, method, signature, args), timeout=30)
            if reply.header.message_type.name == "error":
                detail = f" ({reply.body[0]})" if reply.body else ""
                raise UserError(_("The desktop's {portal} portal refused the request{detail}.",
                                  portal=interface.rsplit('.', 1)[-1], detail=detail),
                                _(MISSING_FIX))
            try:
                signal = self.conn.recv_until_filtered(answers, timeout=timeout)
            except TimeoutError as exc:
                raise UserError(_(UNANSWERED.get(interface, UNANSWERED[SCREENSHOT])),
                                _("If it showed a question, answer it, then try again.")) from exc
        code, results = signal.body
        return int(code), {key: value[1] for key, value in results.items()}


def screenshot(say: Callable[[str], None] | None = None, marker: Path | None = None) -> Image.Image:
    """The whole screen through the portal, non-interactive; the first time (no `marker` file yet),
    `say` tells the user what the desktop is about to ask and why, and the marker is made."""
    from describe_screen.capture import load_image

    with Bus() as bus:
        if not bus.version(SCREENSHOT):
            raise _missing("")
        if say is not None and marker is not None and not marker.exists():  # doctor says it in writing
            say(_(FIRST_TIME))
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
        code, results = bus.request(SCREENSHOT, "Screenshot", "sa{sv}", ("", {"interactive": ("b", False)}))
        refused = code != 0 and bus.stored_answer("screenshot", "screenshot") == "no"
    if (refused or code == 1) and marker is not None:
        marker.unlink(missing_ok=True)  # when the desktop asks again, say so first again
    if refused:
        raise UserError(_("The screen could not be captured: the desktop keeps an earlier answer not to let "
                          "describe-screen take screenshots."), _("To be asked again, run: {FORGET}",
                                                               FORGET=FORGET))
    if code == 1:
        raise UserError(_("The screen could not be captured: the screenshot request was refused or cancelled."),
                        _("Try again, and choose Allow when the desktop asks."))
    if code != 0 or "uri" not in results:
        raise UserError(_("The screen could not be captured: the desktop's screenshot portal failed."),
                        _("Try again; if it keeps failing, restart the session or run describe-screen doctor."))
    path = Path(unquote(urlparse(results["uri"]).path))
    try:
        return load_image(path)
    finally:
        path.unlink(missing_ok=True)  # the portal saved the screen in the pictures folder: never keep it


def _missing(detail: str) -> UserError:
    said = f" ({detail})" if detail else ""
    return UserError(_("The screen cannot be captured: this desktop offers no screenshot portal{said}.",
                       said=said),
                     _(MISSING_FIX))
