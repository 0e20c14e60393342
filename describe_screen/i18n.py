"""The user's language for every sentence describe-screen forms: gettext message catalogs, plurals,
numbers and spoken lists ("A, B and C") as that language says them.

The language is the settings' `general.language`, or with "auto" the desktop locale as gettext reads it
(LANGUAGE, LC_ALL, LC_MESSAGES, LANG: the first one set). Catalogs are the .po files in
describe_screen/locale/<lang>/LC_MESSAGES/; they are compiled in memory with Babel when first needed, so
a wheel, a source checkout and an editable install read the same file and no compiled copy can drift
from it. English is the source language and needs no catalog (and no Babel import).

Messages are str.format templates with named placeholders: `_("A dialog titled {name}", name=title)`.
`N_` marks a message that is translated later, where it is used (module-level tables).
"""

from __future__ import annotations

import gettext
import io
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DOMAIN = "describe_screen"
LOCALE_DIR = Path(__file__).parent / "locale"
ENVIRONMENT = ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")  # gettext's order: the first one set wins
SOURCE = "en"
NAMES = {"en": "English", "de": "Deutsch", "fr": "français", "es": "español", "pt": "português", "it": "italiano"}
LIST_LOCALES = {"en": "en_GB"}  # "A, B and C": no comma before "and", as the English messages say it


@dataclass(frozen=True)
class Language:
    """The language messages are said in, and why: doctor names both."""

    code: str  # "de"; SOURCE when nothing shipped fits
    source: str  # where it came from: "general.language = 'de'", "LANG=de_DE.UTF-8", ...
    wanted: str = ""  # the language asked for when it has no catalog ("pl_PL.UTF-8"), else ""


def shipped() -> list[str]:
    """The languages with a catalog, and English."""
    found = {p.parent.parent.name for p in LOCALE_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.po")}
    return sorted({SOURCE, *found})


def code_of(value: str) -> str:
    """'de_DE.UTF-8@euro' -> 'de'; 'pt-BR' -> 'pt'; 'pl:en' -> 'pl'; 'C' and 'POSIX' -> 'en'."""
    value = value.split(":")[0].split(".")[0].split("@")[0].replace("-", "_").strip()
    if value in ("C", "POSIX", ""):
        return SOURCE
    return value.split("_")[0].lower()


def choose(setting: str = "auto", environ: Mapping[str, str] | None = None) -> Language:
    """The language to use: the setting unless it is "auto", else the locale's first set variable."""
    have = shipped()
    if setting and setting != "auto":
        code = code_of(setting)
        where = f"general.language = {setting!r}"  # a setting's name and value: the same in every language
        return Language(code, where) if code in have else Language(SOURCE, where, wanted=setting)
    environ = os.environ if environ is None else environ
    for name in ENVIRONMENT:
        value = environ.get(name, "")
        if not value:
            continue
        where = f"{name}={value}"
        candidates = [code_of(v) for v in value.split(":") if v] if name == "LANGUAGE" else [code_of(value)]
        for code in candidates:
            if code in have:
                return Language(code, where)
        return Language(SOURCE, where, wanted=value)
    return Language(SOURCE, "no locale set (LANGUAGE, LC_ALL, LC_MESSAGES and LANG are empty)")


def catalog(code: str) -> gettext.NullTranslations:
    """The compiled catalog of one language (English: the messages as written)."""
    po = LOCALE_DIR / code / "LC_MESSAGES" / f"{DOMAIN}.po"
    if code == SOURCE or not po.exists():
        return gettext.NullTranslations()
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with po.open("rb") as f:
        messages = read_po(f, locale=code, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, messages)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


_lock = threading.Lock()
_setting = "auto"
_current: tuple[Language, gettext.NullTranslations] | None = None


def use(setting: str) -> Language:
    """Take the language from the settings ("auto": the desktop's); called once the settings are read."""
    global _setting, _current
    with _lock:
        _setting, _current = setting, None
    return language()


def _state() -> tuple[Language, gettext.NullTranslations]:
    global _current
    with _lock:
        if _current is None:
            chosen = choose(_setting)
            _current = (chosen, catalog(chosen.code))
        return _current


def language() -> Language:
    return _state()[0]


def _(message: str, /, **values: Any) -> str:
    """`message` in the user's language, its {placeholders} filled from `values`."""
    text = _state()[1].gettext(message)
    return text.format(**values) if values else text


def unformatted(message: str, /) -> str:
    """`message` in the user's language, its placeholders left as they are: for a library that looks its
    messages up through gettext and fills in its own %-placeholders (argparse)."""
    return _state()[1].gettext(message)


def ngettext(singular: str, plural: str, n: int, /, **values: Any) -> str:
    """The form of a message for the count `n` (the language's plural rule); {n} is the count as a number."""
    text = _state()[1].ngettext(singular, plural, n)
    return text.format(n=number(n), **values)


def N_(message: str) -> str:
    """Marks a message for the catalog; it is translated with _() where it is said."""
    return message


def number(n: float) -> str:
    """A number as the language writes it (1,5 in German); English as Python writes it."""
    code = language().code
    if code == SOURCE:
        return f"{n:g}" if isinstance(n, float) else str(n)
    from babel.numbers import format_decimal

    return format_decimal(n, locale=code)


def spoken_list(items: list[str], either: bool = False) -> str:
    """"A, B and C" (or with `either`, "A, B or C") in the user's language."""
    if len(items) <= 1:
        return "".join(items)
    code = language().code
    from babel.lists import format_list

    return format_list(items, style="or" if either else "standard", locale=LIST_LOCALES.get(code, code))
