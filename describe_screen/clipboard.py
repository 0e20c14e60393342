"""Put text on the system clipboard ("copy last result"), using the platform's own clipboard tool."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

from describe_screen.errors import UserError
from describe_screen.i18n import _

PACKAGES = {"wl-copy": "wl-clipboard", "xclip": "xclip", "xsel": "xsel"}  # Linux tool -> package to install


def copy_text(text: str) -> None:
    """Copy `text` to the clipboard; UserError naming the tool to install when there is none."""
    command, encoding = _tool()
    # stderr goes to a file, not a pipe: xclip and wl-copy stay alive to serve the clipboard, and a pipe
    # they inherit would make us wait for them.
    with tempfile.TemporaryFile() as errors:
        try:
            result = subprocess.run(command, input=text.encode(encoding), stdout=subprocess.DEVNULL,
                                    stderr=errors, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise UserError(_("Copying failed: {command} did not run.", command=command[0]), _("Try again.")) from exc
        if result.returncode != 0:
            errors.seek(0)
            detail = errors.read().decode("utf-8", "replace").strip().splitlines()
            reason = f": {detail[-1]}" if detail else ""
            raise UserError(_("Copying failed: {command} reported an error{reason}.",
                              command=command[0], reason=reason),
                            _("Run describe-screen inside your desktop session and try again."))


def _tool() -> tuple[list[str], str]:
    """The clipboard command for this session and the text encoding it expects."""
    if sys.platform == "win32":
        return ["clip.exe"], "utf-16"  # clip.exe reads UTF-16 with a byte order mark as Unicode
    if sys.platform == "darwin":
        return ["pbcopy"], "utf-8"
    candidates = []
    if os.environ.get("WAYLAND_DISPLAY"):
        candidates.append(["wl-copy"])
    if os.environ.get("DISPLAY"):
        candidates += [["xclip", "-selection", "clipboard"], ["xsel", "--clipboard", "--input"]]
    if not candidates:
        raise UserError(_("Copying failed: there is no graphical session, so there is no clipboard."),
                        _("Run describe-screen inside your desktop session."))
    for command in candidates:
        if shutil.which(command[0]):
            return command, "utf-8"
    packages = [PACKAGES[c[0]] for c in candidates]
    raise UserError(_("Copying failed: no clipboard tool is installed."),
                    _("Install {items}, for example with: sudo apt install {packages}.",
                      items=' or '.join(packages), packages=packages[0]))
