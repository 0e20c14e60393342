"""The message catalogs' maintenance: every message the package marks (_, N_, ngettext), extracted with
Babel as `pybabel extract` does, and the .po files updated to hold exactly those messages.

    python tests/catalogs.py      # after changing messages: adds new ones (empty), drops gone ones
"""

from __future__ import annotations

import string
import sys
from datetime import datetime, timezone
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "describe_screen"
sys.path.insert(0, str(ROOT))

from describe_screen.i18n import DOMAIN, LOCALE_DIR  # noqa: E402

KEYWORDS = {"_": None, "N_": None, "ngettext": (1, 2)}
FIXED_DATE = datetime(2026, 12, 6, tzinfo=timezone.utc)  # no date churn in the files on every update


def messages() -> dict[str | tuple[str, str], list[str]]:
    """{msgid (or (singular, plural)): [where it is used]} for every marked message in the package."""
    found: dict[str | tuple[str, str], list[str]] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
            PACKAGE, method_map=[("**.py", "python")], keywords=KEYWORDS, comment_tags=()):
        if isinstance(message, tuple):
            message = tuple(m for m in message if m is not None)
            message = message[0] if len(message) == 1 else message
        if message:
            found.setdefault(message, []).append(f"{filename}:{lineno}")
    return found


def catalogs() -> dict[str, Path]:
    """{language code: its .po file} for every shipped catalog."""
    return {p.parent.parent.name: p for p in sorted(LOCALE_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.po"))}


def fields(message: str) -> set[str]:
    """The str.format placeholders of a message ({name}, {n}), by name; a message with a literal brace
    (a JSON example) and no values is never formatted, so its braces name nothing."""
    try:
        names = {name.split("!")[0].split(":")[0] for _, name, _, _ in string.Formatter().parse(message)
                 if name is not None}
    except ValueError:  # not a template (a literal brace): nothing to fill
        return set()
    return {name for name in names if name.isidentifier()}


def update(code: str, translations: dict | None = None) -> Path:
    """Write the catalog of `code` with exactly the package's messages, keeping what is translated."""
    path = LOCALE_DIR / code / "LC_MESSAGES" / f"{DOMAIN}.po"
    old = {}
    if path.exists():
        with path.open("rb") as f:
            old = {m.id: m.string for m in read_po(f, locale=code) if m.id}
    old.update(translations or {})
    catalog = Catalog(locale=code, domain=DOMAIN, project="describe-screen", version="0.1.0",
                      copyright_holder="describe-screen", msgid_bugs_address="-", fuzzy=False,
                      header_comment=f"# {code} messages of describe-screen: see describe_screen/i18n.py and "
                                     f"tests/catalogs.py.",
                      last_translator="describe-screen developers", language_team=code,
                      creation_date=FIXED_DATE, revision_date=FIXED_DATE)
    for message, where in messages().items():
        catalog.add(message, old.get(message) or ("", "") if isinstance(message, tuple) else old.get(message, ""),
                    locations=[(w.split(":")[0], int(w.split(":")[1])) for w in where[:3]],
                    flags=("python-brace-format",) if any(fields(m) for m in _forms(message)) else ())
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        write_po(f, catalog, width=116, include_lineno=False, sort_output=False)
    return path


def _forms(message: str | tuple[str, ...]) -> tuple[str, ...]:
    return message if isinstance(message, tuple) else (message,)


if __name__ == "__main__":
    for code in sys.argv[1:] or list(catalogs()):
        print(update(code))
