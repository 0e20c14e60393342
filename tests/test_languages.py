"""Each shipped language end to end, as a user of that language meets it: the daemon started under LANG
of that language, on a real window in that language, says its ready message, a describe, a read, an
error and the answer to a typed question in that language's sentences only; `doctor` prints only them.

Checked word by word: every word spoken is a word of that language's catalog (its msgstrs), or one of
the screen's own words (the window's text, as the text reader may read it, a letter off).
"""

from __future__ import annotations

import ast
import dataclasses
import gettext
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator
from difflib import SequenceMatcher

import pytest
from babel.messages.pofile import read_po
from catalogs import PACKAGE, catalogs, messages
from test_e2e import DaemonProcess
from test_screenreader import OrcaStandIn, SpeechServer

from describe_screen import i18n
from describe_screen.config import HotkeyConfig
from describe_screen.errors import UserError
from describe_screen.models import available
from describe_screen.options import COMMAND_TARGETS

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


def phrase_words() -> set[str]:
    """The words of every phrase (a text with a space) written in the package, docstrings left out: an
    English sentence part that reaches the user without the catalog is written there."""
    found: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {id(n.body[0].value) for n in ast.walk(tree) if isinstance(getattr(n, "body", None), list)
                      and n.body and isinstance(n.body[0], ast.Expr)}
        found.update(w for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
                     and id(n) not in docstrings and " " in n.value.strip()
                     for w in words(re.sub(r"\{[^{}]*\}", " ", n.value)))
    return found


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
    message's word and no word of a phrase written in the package (a path, a version, a provider's or a
    setting's dotted name): an English phrase that bypassed the catalog ("writing", "no cues") is neither.
    Each hotkey is said by its name in the language, with the setting that changes it."""
    out = doctor(environment(CASES[code][0]), xvfb)
    print(out)
    models = {w for m in available() for w in words(m.name)}  # model names, as "models install" takes them
    technical = set(words(english_doctor)) - english() - phrase_words() | models
    names = {w for name in [*i18n.NAMES.values(), *i18n.ENVIRONMENT, CASES[code][0]] for w in words(name)}
    leaked = [w for w in words(technical_words(out)) if w not in vocabulary(code) | technical | names]
    assert not leaked, f"not {code}: {sorted(set(leaked))}"
    name = i18n.NAMES[code]
    assert f"{name} ({code}), " in out
    said = i18n.catalog(code).gettext
    assert f"{said('describe screen')} (hotkeys.describe_screen): {said('Control')} {said('Alt')} D, " in out, out
    assert f"{said('ask')} (hotkeys.ask): " in out, out


def test_every_hotkey_action_has_a_name_to_be_said_by():
    from describe_screen.keys import ACTIONS

    assert set(ACTIONS) == {f.name for f in dataclasses.fields(HotkeyConfig)}
    assert all(said == action.replace("_", " ") for action, said in ACTIONS.items())  # English: the setting's words


GIVEN = ("<banana>", "sway", "xyzzy", "high", "tasks", "RuntimeError", "x")  # what formed_away gives them


def formed_away(tmp_path) -> list[str]:
    """Sentences formed one step away from where they are said (a helper's return, a name, an exception's
    reason, a placeholder's value), as the user meets them: in a problem, a doctor line, a spoken error."""
    from describe_screen import ipc, keys, models
    from describe_screen.capture.session import Session
    from describe_screen.screenreader import Unavailable, import_system
    from describe_screen.vlm.manifest import _check_manifest

    said = [models.needs({"cpu_cores": 8, "memory_gb": 8}), models.Machine(2, 7.6, False).says(),
            Session("x11").describe(), Session("wayland", "sway").describe(), Session("wayland").describe()]
    for combo in ("<ctrl>+", "<ctrl>+<banana>", "<ctrl>+<alt>+<ctrl>+d", "ctrl+d", "<ctrl>+<alt>", "d"):
        with pytest.raises(UserError) as bad:
            keys.parse_hotkey(combo, "hotkeys.describe_screen")
        said.append(bad.value.problem)
    with pytest.raises(Unavailable) as missing:
        import_system("xyzzy", folders=[str(tmp_path)])
    said.append(str(missing.value))
    for data in ({"family": "smolvlm", "rank": "high"}, {"family": "smolvlm", "tasks": [1]},
                 {"family": "smolvlm", "files": {"decoder.onnx": {}}}, {"family": "smolvlm", "speed": {"x": "a"}}):
        with pytest.raises(UserError) as damaged:
            _check_manifest(tmp_path / "manifest.json", data)
        said.append(damaged.value.problem)
    event = ipc._error_event(RuntimeError("x"))
    return [*said, event["problem"], event["fix"]]


def technical_words(text: str) -> str:
    """`text` without paths, files and dotted names (D-Bus names, settings): no sentence's words."""
    return re.sub(r"\S*\w[./]\w\S*", " ", text)


def english_words_left(code: str, said: list[str], names: Iterable[str] = ()) -> list[str]:
    """The words of `said` that are neither the catalog's nor one of `names` (what the sentences were
    given: proper names, a setting's value): an English word left in a sentence is one of these."""
    allowed = vocabulary(code) | {w for name in names for w in words(name)}
    return [w for w in words(technical_words(" ".join(said))) if w not in allowed]


@pytest.mark.parametrize("code", list(CASES))
def test_sentences_formed_away_from_where_they_are_said_are_in_the_users_language(code, desktop, tmp_path) -> None:
    """A key setting's problem, a damaged model file, a screen reader's missing module, the machine and a
    model's needs, the session, the daemon's own failure: each in the user's language, word by word."""
    english_said = formed_away(tmp_path)
    desktop(CASES[code][0])
    said = formed_away(tmp_path)
    print("\n".join(said))
    assert said != english_said
    left = english_words_left(code, said, GIVEN)
    assert not left, f"not {code}: {sorted(set(left))} in: {said}"


SPEECH_NAMES = ("Orca", "espeak-ng", "speech-dispatcher", "pyttsx3")  # proper names, the same in every language


@pytest.fixture
def screen_readers(tmp_path, monkeypatch) -> Iterator[None]:
    """speech-dispatcher and Orca 51's remote controller (tests/test_screenreader.py's stand-ins) running."""
    server, orca = SpeechServer(tmp_path / "speechd"), OrcaStandIn(tmp_path, "51")
    monkeypatch.setenv("SPEECHD_ADDRESS", server.address)
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", orca.address)
    yield
    orca.close()
    server.close()


@pytest.mark.parametrize("code", list(CASES))
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # speechd's client ends so
def test_doctors_speech_line_is_in_the_users_language(code, desktop, screen_readers, monkeypatch, tmp_path) -> None:
    """doctor's Speech line, whatever speaks: Orca's remote controller, speech-dispatcher when Orca's is
    passed over (and why), or our own voice into a WAV file: the reason, what speaks and where to, and
    the voice, in the user's language; only proper names, D-Bus names and paths are left as they are."""
    from functools import partial

    from describe_screen import speech
    from describe_screen.commands.doctor import check_speech
    from describe_screen.config import Config, SpeechConfig
    from describe_screen.screenreader import linux

    def lines() -> list[str]:
        config = Config()
        config.speech = SpeechConfig(output="screen-reader", cues=False)
        with monkeypatch.context() as m:
            m.setitem(linux.DIALECTS, "org.gnome.Orca1.Service", [linux.Dialect("Orca 51", present, old_stop)])
            passed_over = check_speech(config).line()
        own = SpeechConfig(output="pyttsx3")
        config.speech = own
        with monkeypatch.context() as m:
            m.setattr(speech, "Speaker", partial(speech.Speaker, speech_file=tmp_path / "speech.wav"))
            own_voice = check_speech(config).line()
        config.speech = SpeechConfig(output="screen-reader", cues=False)
        return [check_speech(config).line(), passed_over, own_voice]

    present = linux.Call("/org/gnome/Orca1/Service", "org.gnome.Orca1.Service", "PresentMessage", "s")
    old_stop = linux.Call("/org/gnome/Orca1/Service/SpeechAndVerbosityManager", "org.gnome.Orca1.Module",
                          "ExecuteCommand", "sb", ("InterruptSpeech", False))
    desktop(CASES[code][0])
    said = lines()
    print("\n".join(said))
    left = english_words_left(code, said, SPEECH_NAMES)  # espeak-ng's voice names are English ("German"): never said
    assert not left, f"not {code}: {sorted(set(left))} in: {said}"
    assert re.search(rf"\b[a-z]+/{code}\b", said[2]), said[2]  # our voice by its id, as the settings take it: gmw/de
    assert all(name in " ".join(said) for name in ("Orca 51", "speech-dispatcher", "espeak-ng")), said
    assert i18n.catalog(code).gettext("{reader}, no cues").format(reader="speech-dispatcher") in said[1]


def helps(env: dict[str, str]) -> str:
    """`--help` of the program and of the commands with help of their own."""
    return "\n".join(subprocess.run([sys.executable, "-m", "describe_screen", *command, "--help"], capture_output=True,
                                    text=True, env=dict(os.environ, **env), timeout=60).stdout
                     for command in ([], ["describe"], ["explore"], ["keys"], ["models"], ["models", "export"]))


def typed_names(text: str) -> set[str]:
    """The words a --help shows as typed, the same in every language: commands and options (the first
    word of a line indented 2 or 4), option strings, {choices} and METAVARS."""
    found = set()
    for line in text.splitlines():
        tokens = line.split()
        if tokens and len(line) - len(line.lstrip()) in (2, 4):
            found.add(tokens[0].rstrip(","))
        found.update(t for t in tokens if t.startswith(("-", "{", "[")) or t.isupper())
    return {w for token in found for w in words(token)}


@pytest.mark.parametrize("code", list(CASES))
def test_help_is_in_the_users_language(code) -> None:
    """Each command's help in the user's language, argparse's own words ("usage:", "options") too; only what
    is typed (commands, options, choices) is left as it is."""
    english_help, said = helps({"LANGUAGE": "en"}), helps(environment(CASES[code][0]))
    allowed = vocabulary(code) | typed_names(english_help)
    left = [w for w in words(technical_words(said)) if w not in allowed]
    assert not left, f"not {code}: {sorted(set(left))}"
    assert i18n.catalog(code).gettext("read all the text, in reading order") in " ".join(said.split())


def missing(c: gettext.NullTranslations) -> str:
    return c.gettext("the following arguments are required: %s") % "name"


def not_a_choice(c: gettext.NullTranslations) -> str:
    said = c.gettext("invalid choice: %(value)r (choose from %(choices)s)") % {
        "value": "nowhere", "choices": ", ".join(map(repr, COMMAND_TARGETS))}
    return c.gettext("argument %(argument_name)s: %(message)s") % {"argument_name": "--target", "message": said}


@pytest.mark.parametrize("code", ["en", *CASES])
@pytest.mark.parametrize(("line", "prog", "detail"), [
    (["models", "install"], "describe-screen models install", missing),
    (["describe", "--target", "nowhere"], "describe-screen describe", not_a_choice),
])
def test_a_command_line_not_understood_is_said_in_the_users_language_with_what_to_do(code, line, prog, detail):
    """The plain error, what to do, and argparse's own detail inside it, all in the user's language."""
    env = {"LANGUAGE": "en"} if code == "en" else environment(CASES[code][0])
    done = subprocess.run([sys.executable, "-m", "describe_screen", *line], capture_output=True,
                          text=True, env=dict(os.environ, **env), timeout=60)
    catalog = i18n.catalog(code)
    problem = catalog.gettext("This command line was not understood ({message}).").split("{")[0]
    fix = catalog.gettext("{prog} --help says what it takes.").format(prog=prog)
    assert done.returncode == 2 and done.stderr.startswith(f"describe-screen: {problem}") and fix in done.stderr, done
    assert f"({detail(catalog)})." in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
