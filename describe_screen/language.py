"""The user's language (from the desktop locale) and the language of a line of screen text.

i18n reads the setting and the locale in one place, so the messages, the voice, speech recognition and the
vision prompt agree on the language.
A line's language is told by py3langid (a naive Bayes model over byte n-grams, 4.5 MB, about 0.2 ms a
line); short lines ("Datei speichern", "Settings") cannot be told reliably by any identifier, so only
lines long enough, and only confident answers, count.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Mapping
from typing import Any

DEFAULT = "en"
MIN_LETTERS = 20  # a line with fewer letters is not told: the identifier guesses on two words
MIN_WORDS = 3
MIN_CONFIDENCE = 0.8  # normalised probability; below it, the line keeps the user's voice
SURE = 0.8  # for a short accented line: "Salvează" is Romanian at 0.61, "Cài đăt tài khon" Vietnamese at 0.99

# English names, for instructions given to a vision model ("Answer in German.").
NAMES = {
    "en": "English", "de": "German", "fr": "French", "es": "Spanish", "pt": "Portuguese", "it": "Italian",
    "nl": "Dutch", "pl": "Polish", "cs": "Czech", "sk": "Slovak", "tr": "Turkish", "vi": "Vietnamese",
    "sv": "Swedish", "da": "Danish", "nb": "Norwegian", "no": "Norwegian", "fi": "Finnish", "hu": "Hungarian",
    "ro": "Romanian", "el": "Greek", "ru": "Russian", "uk": "Ukrainian", "bg": "Bulgarian", "ar": "Arabic",
    "he": "Hebrew", "fa": "Persian", "hi": "Hindi", "ja": "Japanese", "ko": "Korean", "zh": "Chinese",
}


def user_language(environ: Mapping[str, str] | None = None) -> str:
    """The language the user asked for, as an ISO 639-1 code ("de" for LANG=de_DE.UTF-8): the
    general.language setting, else the desktop locale in gettext's order (i18n reads both), whether or not
    our messages are translated into it: a Polish desktop still has Polish questions listened for and
    Polish screen text read. "en" for C/POSIX or no locale. `environ`: a locale to read instead of the
    process's (and the setting)."""
    from describe_screen import i18n

    chosen = i18n.language() if environ is None else i18n.choose(environ=environ)
    return i18n.code_of(chosen.wanted) if chosen.wanted else chosen.code


def name(code: str) -> str:
    """The language's English name, or its code where we have none: for a vision model's instructions."""
    return NAMES.get(code, code)


def spoken_name(code: str) -> str:
    """The language's name in the language our sentences are in ("Deutsch" in German, "allemand" in
    French), from Babel's CLDR data; its code where CLDR has none."""
    from babel import Locale, UnknownLocaleError

    from describe_screen import i18n

    try:
        return Locale.parse(code).get_display_name(i18n.language().code) or code
    except (ValueError, UnknownLocaleError):
        return code


@functools.lru_cache(maxsize=1024)
def text_language(text: str) -> str:
    """The language `text` is written in, as an ISO 639-1 code, or "" where it cannot be told. Remembered per
    text: the text reader asks it of a line twice (scripts.Alphabets.garbled, then scripts.carons)."""
    letters = sum(c.isalpha() for c in text)
    if letters < MIN_LETTERS or len(text.split()) < MIN_WORDS:
        return ""
    code, confidence = _identifier().classify(text)
    return str(code) if confidence >= MIN_CONFIDENCE else ""


def accented_language(text: str) -> str:
    """The language of a short line with accented letters ("Cài đặt", "Mở tệp"), where the identifier is
    sure of it, or "". Accents carry most of what tells a short line's language, so such a line can be told
    where a plain one ("Settings") cannot; for the text reader's checks, not for choosing a voice."""
    if all(c.isascii() for c in text if c.isalpha()):
        return ""
    code, confidence = _identifier().classify(text)
    return str(code) if confidence >= SURE else ""


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
