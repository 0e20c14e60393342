"""A private X display (Xvfb) for machines with no screen: the demo and the tests use it."""

from __future__ import annotations

import os
import shutil
import subprocess

from describe_screen.errors import UserError
from describe_screen.i18n import _


def start_xvfb(size: str = "1280x720x24") -> tuple[subprocess.Popen, str]:
    """Start Xvfb on a free display number (Xvfb picks it and reports it through -displayfd).

    -noreset: by default the server resets whenever its last client disconnects, and a program that
    connects during the reset fails with "Can't open display" (seen between two xmessage windows).
    """
    if not shutil.which("Xvfb"):
        raise UserError(_("Xvfb, the virtual display, is not installed."),
                        _("Install it (Debian and Ubuntu: sudo apt-get install xvfb) or run installer/install.sh."))
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", size, "-nolisten", "tcp", "-noreset",
         "+extension", "RECORD"],
        pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        number = pipe.readline().strip()
    if not number:
        proc.kill()
        raise UserError(_("The virtual display Xvfb did not start."), _("Run describe-screen doctor to see why."))
    return proc, f":{number}"
