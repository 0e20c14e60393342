"""A file the user names (--image, --audio) checked before it is opened, and named as what it is.

Opening a named pipe for reading waits for a writer that may never come, and a device can be read
forever, so anything but a regular file is refused by its kind first. The path is said as the user gave
it: a link is named as the link, with what it leads to.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from describe_screen.errors import UserError
from describe_screen.i18n import N_, _

KINDS = ((stat.S_ISDIR, N_("a folder")), (stat.S_ISFIFO, N_("a named pipe")), (stat.S_ISCHR, N_("a character device")),
         (stat.S_ISBLK, N_("a block device")), (stat.S_ISSOCK, N_("a socket")))
WHATS = {"image": N_("image"), "sound": N_("sound")}  # the kinds of file asked for, said in the messages


def regular_file(path: Path, what: str, fix: str) -> None:
    """Raise a UserError unless `path` is (or links to) a regular file; `what` is "image" or "sound"."""
    link = path.is_symlink()
    article, what = _article(what), _(WHATS.get(what, what))
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        if link:
            raise UserError(_("{path} is a link to {readlink}, which does not exist.",
                              path=path, readlink=os.readlink(path)), fix) from None
        raise UserError(_("The {what} file {path} does not exist.", what=what, path=path), fix) from None
    except OSError as exc:
        raise UserError(_("The {what} file {path} cannot be opened: {reason}.",
                          what=what, path=path, reason=exc.strerror or exc),
                        _("Check that you are allowed to read it.")) from exc
    if stat.S_ISREG(mode):
        return
    kind = _(next((name for test, name in KINDS if test(mode)), N_("something other than a plain file")))
    said = _("a link to {kind}", kind=kind) if link else kind
    hint = _("Give the path of one file inside it.") if stat.S_ISDIR(mode) else fix
    # {article} is English's "a" or "an"; the other languages' messages leave it out
    raise UserError(_("{path} is {said}, not {article} {what} file.",
                      path=path, said=said, article=article, what=what), hint)


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"
