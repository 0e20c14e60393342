"""The message catalogs: every sentence describe-screen forms goes through them, and every shipped
catalog translates every message, with the same placeholders; the language is the desktop's or the
settings'; plurals, numbers and lists follow it.
"""

from __future__ import annotations

import ast
import gettext
import os
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from catalogs import PACKAGE, catalogs, fields, messages

from describe_screen import i18n

LANGUAGES = ("de", "fr", "es", "pt", "it")
SPOKEN = {"UserError", "say", "speak", "Check", "tell"}  # calls whose text arguments reach the user
NARRATION = {"reader.py", "explore.py", "textqa.py", "describer.py", "daemon.py", "blank.py", "press.py",
             "hotkeys.py", "voice.py"}  # modules whose returned and yielded strings are said
KEYS = {"reader.py": {"kind"}, "blank.py": {"colour_name"}}  # their results are looked up, not said
ENGLISH_ONLY = {"a", "article", "n"}  # placeholders a translation may leave out (English articles, the count)


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
    """Text in a human language: two or more words of letters (not a path, a key or a separator)."""
    return sum(len(w) > 1 and w.isalpha() for w in text.replace(",", " ").replace(".", " ").split()) >= 2


def bypasses(path: Path, root: Path = PACKAGE) -> list[str]:
    """Sentences in `path` that reach the user without the catalog: text handed to UserError, say,
    speak, doctor's Check, a progress callback or a command's print, or returned and yielded by the
    narration modules."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    keys = {id(n) for fn in ast.walk(tree) if getattr(fn, "name", "") in KEYS.get(path.name, ())
            for n in ast.walk(fn)}  # functions that return keys, translated where they are said
    found = []
    for node in ast.walk(tree):
        said: list[ast.AST] = []
        if isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            if name in SPOKEN or (name == "print" and path.parent.name == "commands"):  # commands print to users
                said = [*node.args, *(k.value for k in node.keywords)]
        elif isinstance(node, (ast.Return, ast.Yield)) and path.name in NARRATION and node.value is not None:
            said = [] if id(node) in keys else [node.value]
        found += [f"{path.relative_to(root)}:{node.lineno}: {_words(a)!r}" for a in said if _is_words(_words(a))]
    return found


def test_no_sentence_the_program_forms_bypasses_the_catalog() -> None:
    found = [hit for path in sorted(PACKAGE.rglob("*.py")) for hit in bypasses(path)]
    assert not found, "not through _() or ngettext():\n" + "\n".join(found)


def test_the_check_finds_a_bare_sentence(tmp_path) -> None:
    """The scan can fail: an f-string problem, a bare fix, a yielded sentence are each found."""
    reader = tmp_path / "reader.py"
    reader.write_text('def f(x):\n    raise UserError(f"The file {x} is gone.", _("Fine."))\n\n'
                      'def g():\n    yield "A dialog with buttons"\n    say(_("Ready now.") + " Press it now.")\n')
    assert len(bypasses(reader, tmp_path)) == 3


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
