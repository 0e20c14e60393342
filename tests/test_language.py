"""The user's language from the locale, and the voice that speaks each line (read back from espeak-ng)."""

from __future__ import annotations

import pytest

from describe_screen import language
from describe_screen.config import SpeechConfig
from describe_screen.speech import Speaker

FAST = SpeechConfig(rate=400)
GERMAN = "Bitte speichern Sie die Datei, bevor Sie das Fenster schließen."
ENGLISH = "Please save the file before you close the window."
FRENCH = "Veuillez enregistrer le fichier avant de fermer la fenêtre."


@pytest.mark.parametrize(("environ", "code"), [
    ({"LANG": "de_DE.UTF-8"}, "de"),
    ({"LANG": "en_US.UTF-8", "LC_MESSAGES": "fr_FR.UTF-8"}, "fr"),
    ({"LANG": "de_DE.UTF-8", "LC_ALL": "pt_BR.UTF-8"}, "pt"),
    ({"LANGUAGE": "es:en", "LANG": "de_DE.UTF-8"}, "es"),
    ({"LANG": "it_IT@euro"}, "it"),
    ({"LANG": "C.UTF-8"}, "en"),
    ({"LC_ALL": "POSIX", "LANG": "de_DE.UTF-8"}, "en"),
    ({}, "en"),
])
def test_the_users_language_comes_from_the_locale_in_gettexts_order(environ, code) -> None:
    assert language.user_language(environ) == code


def test_a_line_is_told_only_when_long_enough_and_clear() -> None:
    assert language.text_language(GERMAN) == "de"
    assert language.text_language(FRENCH) == "fr"
    assert language.text_language(ENGLISH) == "en"
    assert language.text_language("Datei speichern") == ""  # two words: any identifier guesses
    assert language.text_language("File Edit View Help") == ""


def speak(tmp_path, monkeypatch, lang: str, lines: list[str]) -> tuple[list[tuple[str, str]], str]:
    monkeypatch.setenv("LANG", lang)
    for variable in ("LANGUAGE", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(variable, raising=False)
    speaker = Speaker(FAST, tmp_path / "speech.wav", paced=False)
    try:
        for line in lines:
            speaker.say(line)
        assert speaker.wait_idle(60)
        return list(speaker.voices), speaker.driver()
    finally:
        speaker.close()


def test_a_german_line_under_an_english_desktop_is_spoken_with_the_german_voice(tmp_path, monkeypatch) -> None:
    voices, driver = speak(tmp_path, monkeypatch, "en_GB.UTF-8", [ENGLISH, GERMAN, "Datei speichern", FRENCH])
    assert voices == [(ENGLISH, "gmw/en"), (GERMAN, "gmw/de"), ("Datei speichern", "gmw/en"), (FRENCH, "roa/fr")]
    assert "The voice English (Great Britain) (gmw/en) speaks English" in driver


def test_a_german_desktop_is_spoken_to_with_the_german_voice(tmp_path, monkeypatch) -> None:
    voices, driver = speak(tmp_path, monkeypatch, "de_DE.UTF-8", [GERMAN, "Datei speichern", ENGLISH])
    assert voices == [(GERMAN, "gmw/de"), ("Datei speichern", "gmw/de"), (ENGLISH, "gmw/en")]
    assert "The voice German (gmw/de) speaks German" in driver


@pytest.mark.parametrize(("lang", "voice"), [("fr_FR.UTF-8", "roa/fr"), ("es_ES.UTF-8", "roa/es"),
                                             ("pt_PT.UTF-8", "roa/pt"), ("it_IT.UTF-8", "roa/it")])
def test_each_shipped_language_has_its_espeak_voice(tmp_path, monkeypatch, lang, voice) -> None:
    voices, _ = speak(tmp_path, monkeypatch, lang, ["OK."])
    assert voices == [("OK.", voice)]


def test_a_desktop_language_without_a_voice_is_named_and_the_default_voice_speaks(tmp_path, monkeypatch) -> None:
    voices, driver = speak(tmp_path, monkeypatch, "xx_XX.UTF-8", ["OK."])
    assert voices == [("OK.", "gmw/en")]
    assert "No espeak-ng voice for the desktop language, xx, is installed" in driver
