"""The user's language (from the desktop locale) and the language of a line of screen text.

One place reads the locale, so the voice, speech recognition and the vision prompt agree on the language.
A line's language is told by py3langid (a naive Bayes model over byte n-grams, 4.5 MB, about 0.2 ms a
line); short lines ("Datei speichern", "Settings") cannot be told reliably by any identifier, so only
lines long enough, and only confident answers, count.
"""

from __future__ import annotations

import functools
import os
import re
import threading
from collections.abc import Mapping
from typing import Any

DEFAULT = "en"
LOCALE_VARIABLES = ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")  # gettext's order of precedence
MIN_LETTERS = 20  # a line with fewer letters is not told: the identifier guesses on two words
MIN_WORDS = 3
MIN_CONFIDENCE = 0.8  # normalised probability; below it, the line keeps the user's voice

# English names, for instructions given to a vision model ("Answer in German.").
NAMES = {
    "en": "English", "de": "German", "fr": "French", "es": "Spanish", "pt": "Portuguese", "it": "Italian",
    "nl": "Dutch", "pl": "Polish", "cs": "Czech", "sk": "Slovak", "tr": "Turkish", "vi": "Vietnamese",
    "sv": "Swedish", "da": "Danish", "nb": "Norwegian", "no": "Norwegian", "fi": "Finnish", "hu": "Hungarian",
    "ro": "Romanian", "el": "Greek", "ru": "Russian", "uk": "Ukrainian", "bg": "Bulgarian", "ar": "Arabic",
    "he": "Hebrew", "fa": "Persian", "hi": "Hindi", "ja": "Japanese", "ko": "Korean", "zh": "Chinese",
}


def user_language(environ: Mapping[str, str] | None = None) -> str:
    """The desktop's language as an ISO 639-1 code ("de" for LANG=de_DE.UTF-8); "en" for C/POSIX or none.

    LANGUAGE may list several ("de:en"): the first one counts, as for gettext.
    """
    environ = os.environ if environ is None else environ
    for variable in LOCALE_VARIABLES:
        value = environ.get(variable, "").split(":")[0]
        if not value:
            continue
        code = re.split(r"[_.@-]", value)[0].lower()
        if code in ("c", "posix"):
            return DEFAULT
        if re.fullmatch(r"[a-z]{2,3}", code):
            return code
    return DEFAULT


def name(code: str) -> str:
    """The language's English name, or its code where we have none."""
    return NAMES.get(code, code)


def text_language(text: str) -> str:
    """The language `text` is written in, as an ISO 639-1 code, or "" where it cannot be told."""
    letters = sum(c.isalpha() for c in text)
    if letters < MIN_LETTERS or len(text.split()) < MIN_WORDS:
        return ""
    code, confidence = _identifier().classify(text)
    return str(code) if confidence >= MIN_CONFIDENCE else ""


_LOCK = threading.Lock()


@functools.cache
def _load() -> Any:
    from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_modelpath(MODEL_DIR / MODEL_FILE, norm_probs=True)


def _identifier() -> Any:
    """The identifier, loaded once (about half a second); warm_up() does it before the first line."""
    with _LOCK:
        return _load()


def warm_up() -> None:
    _identifier()
