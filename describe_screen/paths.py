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
from describe_screen.i18n import _

KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe"), (stat.S_ISCHR, "a character device"),
         (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def regular_file(path: Path, what: str, fix: str) -> None:
    """Raise a UserError unless `path` is (or links to) a regular file; `what` is e.g. "image"."""
    link = path.is_symlink()
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
    kind = next((name for test, name in KINDS if test(mode)), "something other than a plain file")
    said = f"a link to {kind}" if link else kind
    hint = "Give the path of one file inside it." if stat.S_ISDIR(mode) else fix
    raise UserError(_("{path} is {said}, not {article} {what} file.",
                      path=path, said=said, article=_article(what), what=what), hint)


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"
