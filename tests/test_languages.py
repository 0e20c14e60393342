"""Each shipped language end to end, as a user of that language meets it: the daemon started under LANG
of that language, on a real window in that language, says its ready message, a describe, a read, an
error and the answer to a typed question in that language's sentences only; `doctor` prints only them.

Checked word by word: every word spoken is a word of that language's catalog (its msgstrs), or one of
the screen's own words (the window's text, as the text reader may read it, a letter off).
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from difflib import SequenceMatcher

import pytest
from babel.messages.pofile import read_po
from catalogs import catalogs, messages
from test_e2e import DaemonProcess

from describe_screen import i18n
from describe_screen.config import HotkeyConfig

# language: (LANG, window title, window text, buttons, a question about the buttons)
CASES = {
    "de": ("de_DE.UTF-8", "Änderungen speichern", "Möchten Sie die Änderungen am Bericht speichern?",
           ("Speichern", "Verwerfen", "Abbrechen"), "Welche Schaltflächen gibt es?"),
    "fr": ("fr_FR.UTF-8", "Enregistrer les modifications", "Voulez-vous enregistrer les modifications du rapport ?",
           ("Enregistrer", "Ignorer", "Annuler"), "Quels sont les boutons ?"),
    "es": ("es_ES.UTF-8", "Guardar cambios", "¿Desea guardar los cambios en el informe?",
           ("Guardar", "Descartar", "Cancelar"), "¿Qué botones hay?"),
    "pt": ("pt_BR.UTF-8", "Salvar alterações", "Deseja salvar as alterações no relatório?",
           ("Salvar", "Descartar", "Cancelar"), "Quais são os botões?"),
    "it": ("it_IT.UTF-8", "Salva modifiche", "Vuoi salvare le modifiche al rapporto?",
           ("Salva", "Scarta", "Annulla"), "Quali pulsanti ci sono?"),
}
WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")
SCREEN_LIKE = 0.75  # a spoken word this close to one of the window's words is the screen's (OCR slips)


def words(text: str) -> list[str]:
    """The words of a text, lower case; a lone letter is a key's name ("Control Alt D"), not a word."""
    return [w for w in WORD.findall(text.lower()) if len(w) > 1]


def vocabulary(code: str) -> set[str]:
    """Every word of the catalog's translations, placeholders left out."""
    with catalogs()[code].open("rb") as f:
        catalog = read_po(f, locale=code)
    said: set[str] = set()
    for message in catalog:
        for string in message.string if isinstance(message.string, tuple) else (message.string,):
            said.update(words(re.sub(r"\{[^{}]*\}", " ", string or "")))
    return said


def english() -> set[str]:
    """The words of the English messages: none may be heard in another language unless it is its word too."""
    found: set[str] = set()
    for message in messages():
        for text in message if isinstance(message, tuple) else (message,):
            found.update(words(re.sub(r"\{[^{}]*\}", " ", text)))
    return found


def foreign(text: str, code: str, screen: set[str]) -> list[str]:
    """The words of `text` that are neither the catalog's nor the screen's."""
    own = vocabulary(code)
    return [w for w in words(text) if w not in own and not any(
        SequenceMatcher(None, w, s).ratio() >= SCREEN_LIKE for s in screen)]


def environment(lang: str) -> dict[str, str]:
    """The desktop locale of that language, nothing else: LANGUAGE (the tests' English) unset."""
    return {"LANG": lang, "LANGUAGE": "", "LC_ALL": "", "LC_MESSAGES": ""}


@pytest.mark.parametrize("code", list(CASES))
def test_the_daemon_speaks_only_the_users_language(code, window, tmp_path, xvfb) -> None:
    lang, title, text, buttons, question = CASES[code]
    ready = i18n.catalog(code).gettext("describe-screen is ready.").split()[-1].rstrip(".")
    window(title, text, buttons=buttons)
    (tmp_path / "d").mkdir()
    d = DaemonProcess(tmp_path / "d", xvfb, "[speech]\ncues = false\n", env=environment(lang), ready=ready)
    try:  # each request said in full before the next (a new request cuts the speech of the one before)
        d.client.request({"cmd": "repeat"})  # an error: nothing described yet
        spoken = d.wait_idle(0)["spoken"]
        for request in ({"cmd": "describe", "target": "screen"}, {"cmd": "read", "target": "screen"},
                        {"cmd": "ask", "target": "screen", "question": question}):
            reply = d.client.request(request)
            assert reply["event"] == "done", (request, reply)
            spoken = d.wait_idle(len(spoken))["spoken"]
    finally:
        d.stop()
        d.log.close()
    said = " ".join(spoken)
    print(said)
    screen = set(words(" ".join([title, text, *buttons])))
    assert not foreign(said, code, screen), f"not {code}: {foreign(said, code, screen)} in: {said}"
    assert len(spoken) >= 5  # ready, the error, the describe, the read, the answer: each was said
    assert i18n.catalog(code).gettext("describe-screen is ready.") in said
    assert i18n.catalog(code).gettext("There is nothing to repeat yet.") in said
    frame = i18n.catalog(code).gettext("The buttons are {names}.").split("{")[0]  # the answer, in the language
    assert frame in said and all(b in said for b in buttons), said


@pytest.fixture(scope="module")
def english_doctor(xvfb) -> str:
    return doctor({"LANGUAGE": "en"}, xvfb)


def doctor(env: dict[str, str], display: str) -> str:
    """doctor's report, its paths left out (their folder names are no sentence's words)."""
    run = subprocess.run([sys.executable, "-m", "describe_screen", "doctor"], capture_output=True, text=True,
                         env=dict(os.environ, DISPLAY=display, **env), timeout=300)
    return re.sub(r"\S*/\S*", " ", run.stdout)


@pytest.mark.parametrize("code", list(CASES))
def test_doctor_prints_only_the_users_language(code, xvfb, english_doctor) -> None:
    """Every word doctor prints is the catalog's, or one the English report prints that is no English
    message's word (a path, a version, a provider's or a setting's name)."""
    out = doctor(environment(CASES[code][0]), xvfb)
    print(out)
    technical = set(words(english_doctor)) - english()
    setting_names = {w for f in dataclasses.fields(HotkeyConfig) for w in words(f.name.replace("_", " "))}
    names = {w for name in [*i18n.NAMES.values(), *i18n.ENVIRONMENT, CASES[code][0]] for w in words(name)}
    leaked = [w for w in words(out) if w not in vocabulary(code) | technical | setting_names | names]
    assert not leaked, f"not {code}: {sorted(set(leaked))}"
    name = i18n.NAMES[code]
    assert f"{name} ({code}), " in out
