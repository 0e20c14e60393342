"""The message catalogs: every sentence describe-screen forms goes through them, and every shipped
catalog translates every message, with the same placeholders; the language is the desktop's or the
settings'; plurals, numbers and lists follow it.
"""

from __future__ import annotations

import ast
import gettext
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from catalogs import PACKAGE, catalogs, fields, messages

from describe_screen import i18n

LANGUAGES = ("de", "fr", "es", "pt", "it")
KEYS = {"reader.py": {"kind"}, "blank.py": {"colour_name"}, "shapes.py": {"mark_before"}}  # their results are
# looked up, not said
ENGLISH_ONLY = {"a", "article", "n"}  # placeholders a translation may leave out (English articles, the count)
PERCENT = re.compile(r"%(?:\(\w+\))?[sr]")  # argparse's placeholders: %s, %r, %(name)s
CATALOG = {"_": 1, "N_": 1, "ngettext": 2}  # the calls whose first arguments are catalog messages
UNSAID_CALLS = {"log", "logging", "warnings", "re"}  # their text goes to the log, warnings or a regex, not to a person
# Text with words that no person hears or reads as describe-screen's own sentence, by module: what it is instead.
# Everything else with two words in it must be a catalog message, wherever it is formed.
UNSAID = {
    "asr.py": {"A question about what is on the computer screen."},  # Whisper's prompt for English speech only
    "atspi.py": {"file chooser", "page tab", "tool bar"},  # AT-SPI role names, looked up
    "reader.py": {"check box", "radio button"},  # the marks shapes.py tells apart, looked up
    "vlm/__init__.py": {" Answer in ."},  # the prompt a multilingual model gets (models are prompted in English)
    "vlm/florence2.py": {"What is the text in the image?", "What is the text in the image, with regions?",
                         "What does the image describe?", "Describe in detail what is shown in the image.",
                         "Describe with a paragraph what is shown in the image."},  # Florence-2's task prompts
    "model_server.py": {"Describe this screenshot in one or two short sentences for someone who cannot see it.",
                        "Text recognised on the screen:\n{text}\n\n"},  # prompts (PROMPTS), sent to the model
    "capture/portal.py": {"gdbus call --session --dest  --object-path  --method .DeletePermission screenshot "
                          "screenshot ''"},  # a command the user types
    "asr_models.py": {"describe-screen models install "},  # commands
    "scripts.py": {"describe-screen models install "},
    "wayland_keys.py": {"describe --target screen", "describe --target focus", "explore press", "bind = , , exec, ",
                        " keys install", "describe --target window"},  # command lines, Hyprland's config syntax
    "sway_keys.py": {"bindsym  exec "},  # sway's config syntax and the comments of the file it writes
    "vlm/onnx.py": {"physical id", "core id"},  # /proc/cpuinfo fields
    "sample_window.py": {"DejaVu Sans"},  # a font
    "i18n.py": {"no locale set (LANGUAGE, LC_ALL, LC_MESSAGES and LANG are empty)"},  # then the language is English
    "export/__init__.py": {"str | Path | None"},  # a type
    "export/qwen35.py": {"Qwen3.5 exports the weight sets , not "},  # a programming error (the manifest's sets)
    # programming errors: a caller passed what the code never passes
    "explore.py": {"unknown move "}, "ipc.py": {'an event needs an "event" name, got '},
    "speech.py": {"unknown cue "}, "synthesis.py": {"unknown error"},  # what the synthesiser gave for no reason, logged
    "vlm/qwen35.py": {" image tokens for a xx grid"},
}
UNSAID_PREFIXES = {"model_server.py": ("Describe this screenshot in detail",),
                   "sway_keys.py": ("# describe-screen's keys", "# Made by describe-screen")}
# Whole tables of words that are matched against what the user asked, or a model's chat template.
UNSAID_TABLES = {"textqa.py": {"WHOLE", "QUESTION_FORMS"}, "export/qwen35.py": {"CHAT_TEMPLATE"}}
UNSAID_EXCEPTIONS = {"SpeechLost"}  # synthesis.py's reasons for a lost sentence go to the log only


def _words(node: ast.AST) -> str:
    """The literal text of a str constant, an f-string or a concatenation of them ('' for anything else)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(_words(v) for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _words(node.left) + " " + _words(node.right)
    if isinstance(node, ast.IfExp):
        return _words(node.body) + " " + _words(node.orelse)
    return ""


def _is_words(text: str) -> bool:
    """Text in a human language: two or more words of letters (not a path, a file, a D-Bus name or a key)."""
    return sum(len(w) > 1 and w.isalpha() for w in (t.strip(",.;:!?()'\"") for t in text.split())) >= 2


def bypasses(path: Path, root: Path = PACKAGE) -> list[str]:
    """Every sentence written in `path` that is not a catalog message, wherever it is formed: a sentence
    is as often said one step away from where it is written (returned by a helper, kept in an attribute,
    raised in an exception, handed to _() as a placeholder's value) as where it is said. Left out: the
    catalog's own messages, docstrings, the log, regular expressions, dictionary keys and compared
    values (looked up, not said) and what UNSAID names."""
    where = path.relative_to(root).as_posix()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip: set[int] = set()

    def leave_out(*nodes: ast.AST | None) -> None:
        skip.update(id(n) for node in nodes if node is not None for n in ast.walk(node))

    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and isinstance(body[0].value,
                                                                                            ast.Constant):
            leave_out(body[0])  # a docstring
        if isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            owner = getattr(getattr(node.func, "value", None), "id", "")
            if name in CATALOG:
                leave_out(*node.args[:CATALOG[name]])
            elif owner in UNSAID_CALLS or name in UNSAID_EXCEPTIONS:
                leave_out(node)
        elif isinstance(node, ast.Dict):
            leave_out(*node.keys)
        elif isinstance(node, ast.Compare):
            leave_out(node.left, *node.comparators)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in KEYS.get(where, ()):
            leave_out(node)  # it returns keys, translated where they are said
        elif isinstance(node, ast.Assign) and any(getattr(t, "id", "") in UNSAID_TABLES.get(where, ()) for t in
                                                  node.targets):
            leave_out(node.value)
        elif isinstance(node, ast.JoinedStr):
            skip.update(id(v) for v in node.values)  # its parts are read as the whole f-string
    found = []
    for node in ast.walk(tree):
        if id(node) in skip or not (isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant)
                                                                        and isinstance(node.value, str))):
            continue
        text = _words(node)
        if _is_words(text) and text not in UNSAID.get(where, ()) and not text.startswith(
                UNSAID_PREFIXES.get(where, ())):
            found.append(f"{where}:{node.lineno}: {text[:100]!r}")
    return found


def test_no_sentence_the_program_forms_bypasses_the_catalog() -> None:
    found = [hit for path in sorted(PACKAGE.rglob("*.py")) for hit in bypasses(path)]
    assert not found, "not through _() or ngettext():\n" + "\n".join(found)


def test_the_check_finds_a_bare_sentence(tmp_path) -> None:
    """The scan can fail: an f-string problem, a yielded sentence, a sentence added to a translated one,
    and the kinds doctor's Speech line was made of (a helper's return, an attribute, an exception's
    reason, a placeholder's value) are each found; docstrings, logs, keys and messages are not."""
    module = tmp_path / "speech.py"
    module.write_text('''"""A module."""
def f(x):
    """Says nothing."""
    raise UserError(f"The file {x} is gone.", _("Fine."))

def g():
    yield "A dialog with buttons"
    say(_("Ready now.") + " Press it now.")

class Output:
    def describe(self):
        return f"playing on {self.device}"

class Reader:
    def __init__(self, service):
        self.name = f"Orca's remote controller ({service})"
        if service == "two words":
            raise Unavailable("speech-dispatcher cannot be reached")
        log.warning("the reader went %s", "away for good")
        self.kinds = {"check box": _("A check box")}
        self.said = _("{reason} Speech works with {driver}.", reason="Orca is running", driver=self.name)
''')
    assert len(bypasses(module, tmp_path)) == 7, bypasses(module, tmp_path)


def test_no_function_that_translates_binds_the_name_underscore() -> None:
    """`_` as a throwaway name in a function that also calls _() would shadow the translation."""
    clashes = []
    for path in PACKAGE.rglob("*.py"):
        for fn in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inner = list(ast.walk(fn))
                scoped = {id(n) for c in inner if isinstance(c, ast.comprehension) for n in ast.walk(c.target)}
                binds = any(isinstance(n, ast.Name) and n.id == "_" and isinstance(n.ctx, ast.Store)
                            and id(n) not in scoped for n in inner)
                calls = any(isinstance(n, ast.Call) and getattr(n.func, "id", "") == "_" for n in inner)
                if binds and calls:
                    clashes.append(f"{path.relative_to(PACKAGE)}: {fn.name}")
    assert not clashes


def test_the_five_languages_are_shipped() -> None:
    assert set(LANGUAGES) <= set(catalogs())
    assert i18n.shipped() == sorted({"en", *catalogs()})


@pytest.mark.parametrize("code", LANGUAGES)
def test_each_catalog_translates_every_message_with_the_same_placeholders(code) -> None:
    wanted = messages()
    with catalogs()[code].open("rb") as f:
        catalog = read_po(f, locale=code)
    have = {m.id: m for m in catalog if m.id}
    assert set(have) == set(wanted), (f"missing: {sorted(map(str, set(wanted) - set(have)))[:10]}; "
                                      f"stale: {sorted(map(str, set(have) - set(wanted)))[:10]} "
                                      "(run: python tests/catalogs.py, then translate)")
    for msgid, message in have.items():
        assert not message.fuzzy, msgid
        ids = msgid if isinstance(msgid, tuple) else (msgid,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        forms = catalog.num_plurals if isinstance(msgid, tuple) else 1  # the language's plural forms, each
        assert len(strings) == forms and all(s.strip() for s in strings), f"untranslated: {msgid!r}"
        for string in strings:
            allowed = set().union(*(fields(i) for i in ids))
            assert fields(string) <= allowed, f"{code}: {string!r} names placeholders {msgid!r} lacks"
            assert allowed - fields(string) <= ENGLISH_ONLY, f"{code}: {string!r} drops a placeholder of {msgid!r}"
            if allowed:
                string.format(**dict.fromkeys(allowed, 1))  # a template that formats (1 fits {n}, {x:g}, {x!r})
            assert sorted(PERCENT.findall(string)) == sorted(PERCENT.findall(ids[0])), (
                f"{code}: {string!r} changes the %-placeholders of {msgid!r}")  # argparse's messages fill these


@pytest.mark.parametrize(("environ", "setting", "code", "source"), [
    ({"LANG": "de_DE.UTF-8"}, "auto", "de", "LANG=de_DE.UTF-8"),
    ({"LANG": "de_DE.UTF-8", "LC_MESSAGES": "fr_FR.UTF-8"}, "auto", "fr", "LC_MESSAGES=fr_FR.UTF-8"),
    ({"LANG": "de_DE.UTF-8", "LC_ALL": "es_ES.UTF-8", "LC_MESSAGES": "fr_FR.UTF-8"}, "auto", "es",
     "LC_ALL=es_ES.UTF-8"),
    ({"LANGUAGE": "pt_BR:pt:en", "LANG": "de_DE.UTF-8"}, "auto", "pt", "LANGUAGE=pt_BR:pt:en"),
    ({"LANG": "C.UTF-8"}, "auto", "en", "LANG=C.UTF-8"),
    ({}, "auto", "en", "no locale set (LANGUAGE, LC_ALL, LC_MESSAGES and LANG are empty)"),
    ({"LANG": "de_DE.UTF-8"}, "it", "it", "general.language = 'it'"),
])
def test_the_language_comes_from_the_settings_else_the_desktop_locale(environ, setting, code, source) -> None:
    chosen = i18n.choose(setting, environ)
    assert (chosen.code, chosen.source, chosen.wanted) == (code, source, "")


def test_a_language_without_a_catalog_is_english_and_says_what_was_asked() -> None:
    chosen = i18n.choose("auto", {"LANG": "pl_PL.UTF-8"})
    assert (chosen.code, chosen.wanted, chosen.source) == ("en", "pl_PL.UTF-8", "LANG=pl_PL.UTF-8")


@pytest.fixture
def language():
    """Use a language for the duration of a test, then the default again."""
    yield i18n.use
    i18n.use("auto")


def test_sentences_plurals_numbers_and_lists_follow_the_language(language) -> None:
    language("de")
    assert i18n._("A dialog titled {name}", name="Speichern") == "Ein Dialog mit dem Titel Speichern"
    assert i18n.ngettext("{n} row", "{n} rows", 1) == "1 Zeile"
    assert i18n.ngettext("{n} row", "{n} rows", 3) == "3 Zeilen"
    assert i18n.spoken_list(["Ja", "Nein", "Abbrechen"]) == "Ja, Nein und Abbrechen"
    assert i18n.spoken_list(["kurz", "ausführlich"], either=True) == "kurz oder ausführlich"
    assert i18n.number(1.5) == "1,5"
    language("fr")
    assert i18n.spoken_list(["Oui", "Non"]) == "Oui et Non"
    language("en")
    assert i18n.spoken_list(["Yes", "No", "Cancel"]) == "Yes, No and Cancel"
    assert i18n.ngettext("{n} row", "{n} rows", 2) == "2 rows"


def test_a_catalog_compiles_from_its_po_file_alone(tmp_path) -> None:
    """What a wheel ships (the .po) is all it needs: no compiled file, no build step."""
    compiled = i18n.catalog("de")
    assert isinstance(compiled, gettext.GNUTranslations)
    assert compiled.gettext("Copied.") == "Kopiert."
    assert not list(i18n.LOCALE_DIR.rglob("*.mo"))


def test_a_placeholder_may_have_any_name() -> None:
    """{message} and {singular} are placeholders like any other, not the functions' own arguments."""
    assert i18n._("{message} and {plural}", message="a", plural="b") == "a and b"
    assert i18n.ngettext("{singular}: {n}", "{plural}: {n}", 2, singular="x", plural="y") == "y: 2"


def test_the_settings_language_wins_over_the_desktops(tmp_path) -> None:
    """general.language = "fr" under a German desktop (and the tests' English LANGUAGE): French."""
    (tmp_path / "config.toml").write_text('[general]\nlanguage = "fr"\n', encoding="utf-8")
    env = dict(os.environ, LANG="de_DE.UTF-8", DESCRIBE_SCREEN_SOCKET=str(tmp_path / "none.sock"))
    run = subprocess.run([sys.executable, "-m", "describe_screen", "--config", str(tmp_path / "config.toml"), "status"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert run.stdout.strip() == i18n.catalog("fr").gettext(
        "No describe-screen daemon is running. Start it with: describe-screen daemon")


def test_the_argparse_messages_marked_for_the_catalogs_are_argparses_own() -> None:
    """The catalogs translate what this Python's argparse really says (its words changed between versions)."""
    import argparse

    from describe_screen.commands import cli

    source = Path(argparse.__file__).read_text()
    assert [m for m in cli.ARGPARSE if f"_('{m}')" not in source] == []
