"""Questions answered from the text on rendered screens; questions text cannot answer give None."""

from __future__ import annotations

import pytest
from screens import dialog, page

from describe_screen.layout import TextLine
from describe_screen.ocr import TextRecognizer
from describe_screen.textqa import answer, find

SIZE = (1280, 720)


@pytest.fixture(scope="module")
def upload() -> list[TextLine]:
    screen = dialog("Upload failed", ["Error: the file photo.jpg is too large.",
                                      "The limit is 25 megabytes. Choose a smaller file."],
                    ["Retry", "Cancel"], theme="dark", font_name="liberation-sans", size=14)
    return TextRecognizer(provider="cpu").read(screen.image)


@pytest.fixture(scope="module")
def settings() -> list[TextLine]:
    screen = page(["Settings", "", "Warning", "", "Your password expires in 3 days", "",
                   "Display brightness", "Sound volume"], size=18)
    return TextRecognizer(provider="cpu").read(screen.image)


def ask(question: str, lines: list[TextLine], title: str = "") -> str | None:
    return answer(question, lines, title, SIZE)


def test_what_does_the_error_say(upload: list[TextLine]) -> None:
    said = ask("What does the error say?", upload)
    assert said == ("It says: Error: the file photo.jpg is too large. "
                    "The limit is 25 megabytes. Choose a smaller file.")
    assert ask("what is the error message", upload) == said


def test_a_lone_label_brings_the_text_after_it(settings: list[TextLine]) -> None:
    assert ask("What does the warning say?", settings) == "It says: Warning. Your password expires in 3 days."


def test_is_there_a_button(upload: list[TextLine]) -> None:
    assert ask("Is there a Retry button?", upload) == "Yes, a Retry button at the bottom right of the dialog."
    assert ask("is there a submit button", upload) == (
        "No, I cannot find a submit button. The buttons are Retry and Cancel.")
    assert ask("What buttons are there?", upload) == "The buttons are Retry and Cancel."


def test_is_there_some_text(upload: list[TextLine], settings: list[TextLine]) -> None:
    assert ask("Does it say megabytes?", upload) == (
        "Yes: The limit is 25 megabytes. Choose a smaller file, in the middle of the dialog.")
    assert ask("Is there a sound volume setting?", settings) is not None
    assert ask("Do you see Bluetooth?", settings) == "No, I cannot find bluetooth on the screen."


def test_where_is(upload: list[TextLine], settings: list[TextLine]) -> None:
    assert ask("Where is Cancel?", upload) == "The Cancel button is at the bottom right of the dialog."
    assert ask("Where's the password?", settings) == (
        "Password is at the top left, in the line: Your password expires in 3 days.")
    assert ask("where is the printer", settings) == "I cannot find printer on the screen."


def test_title_and_read_everything(upload: list[TextLine]) -> None:
    assert ask("What is the title?", upload) == "The title is Upload failed."
    assert ask("what is this window called", upload, title="Photos") == "The title is Photos."
    assert ask("Read the dialog.", upload) == (
        "Upload failed. Error: the file photo.jpg is too large. The limit is 25 megabytes. "
        "Choose a smaller file. Retry. Cancel.")


def test_questions_text_cannot_answer_return_none(upload: list[TextLine]) -> None:
    for question in ("What colour is the background?", "Describe the picture.", "Is the file saved?",
                     "Who is in the photo?", "What does the icon look like?"):
        assert ask(question, upload) is None, question
    assert ask("What does it say?", []) is None
    assert ask("What does the error say?", [TextLine("All good", (0, 0, 80, 20), 0.9)]) is None


def test_find_tolerates_one_misread_letter() -> None:
    lines = [TextLine("Meeting moved to Thursday aftemoon", (0, 0, 300, 20), 0.9)]
    assert find("afternoon", lines) is lines[0]
    assert find("breakfast", lines) is None


def test_what_is_a_value_on_the_screen() -> None:
    lines = [TextLine("Account statement", (40, 40, 300, 70), 0.99),
             TextLine("Balance: 4,512.30 on 12 October", (40, 90, 320, 110), 0.99),
             TextLine("error: connection refused by server at port 8080", (40, 200, 500, 220), 0.99)]
    assert ask("What is the balance?", lines) == "The balance is 4,512.30 on 12 October."
    assert ask("what does the error say", lines) == "It says: error: connection refused by server at port 8080."
    assert ask("What is the interest rate?", lines) is None


@pytest.fixture(scope="module")
def flight() -> list[TextLine]:
    screen = page(["Trip details", "", "Your flight to Lisbon is delayed", "New departure time: 14:35",
                   "Gate B12"], size=18)
    return TextRecognizer(provider="cpu").read(screen.image)


def test_a_yes_no_question_is_answered_by_quoting_the_screen(flight: list[TextLine]) -> None:
    assert ask("Is my flight delayed?", flight) == "It says: Your flight to Lisbon is delayed."
    assert ask("is my flight cancelled?", flight) is None  # the screen does not say: no guess
    assert ask("Where is my flight going?", flight) == "To Lisbon. It says: Your flight to Lisbon is delayed."


def test_the_article_agrees_with_the_button_name() -> None:
    lines = [TextLine("Are you sure?", (100, 100, 300, 120), 0.9), TextLine("OK", (200, 200, 230, 220), 0.9),
             TextLine("Undo", (260, 200, 310, 220), 0.9), TextLine("Cancel", (340, 200, 400, 220), 0.9)]
    for ln, frame in zip(lines[1:], [(190, 192, 240, 228), (250, 192, 320, 228), (330, 192, 410, 228)], strict=True):
        ln.frame = frame
    assert ask("Is there an OK button?", lines).startswith("Yes, an OK button")
    assert ask("is there an undo button", lines).startswith("Yes, an Undo button")
    assert ask("is there a cancel button", lines).startswith("Yes, a Cancel button")
    assert ask("is there an apply button", lines).startswith("No, I cannot find an apply button.")


@pytest.fixture
def german_dialog():
    """A German dialog, read, with the messages in German for the test's duration."""
    from describe_screen import i18n

    screen = dialog("Änderungen speichern", ["Möchten Sie die Änderungen an Bericht.odt speichern?"],
                    ["Speichern", "Verwerfen", "Abbrechen"])
    i18n.use("de")
    yield TextRecognizer(provider="cpu").read(screen.image)
    i18n.use("auto")


def test_a_german_question_about_a_german_dialog_is_answered_in_german(german_dialog) -> None:
    assert ask("Welche Schaltflächen gibt es?", german_dialog) == (
        "Die Schaltflächen heißen Speichern, Verwerfen und Abbrechen.")
    assert ask("Gibt es eine Schaltfläche Verwerfen?", german_dialog) == (
        "Ja, eine Schaltfläche Verwerfen unten im Dialog.")
    assert ask("Wo ist Abbrechen?", german_dialog) == "Die Schaltfläche Abbrechen ist unten rechts im Dialog."
    assert ask("Was steht da?", german_dialog).startswith("Änderungen speichern. Möchten Sie die Änderungen")
    assert ask("Was steht im Fenster?", german_dialog).startswith("Änderungen speichern. Möchten Sie die Änderungen")


# "What does it say?" as speakers of each language ask it; some as Whisper writes them down ("que" for "qué",
# no "¿"): each is answered with the window's words, in reading order.
SAYS = {
    "fr": ["Quel est le texte de la fenêtre ?", "Qu'est-ce qui est écrit à l'écran ?", "Qu'est-ce que ça dit ?",
           "Que dit la fenêtre ?"],
    "es": ["¿Qué está escrito en la pantalla?", "que está escrito en la pantalla.", "¿Qué pone en la ventana?",
           "¿Qué dice el mensaje?"],
    "pt": ["O que está escrito aqui?", "O que está escrito na tela?", "O que tem escrito na janela?",
           "O que diz a mensagem?"],
    "it": ["Qual è il testo dello schermo?", "Qual è il testo della finestra?", "Che cosa dice lo schermo?",
           "Cosa c'è scritto sullo schermo?"],
}


@pytest.mark.parametrize("code", list(SAYS))
def test_what_the_window_says_asked_in_the_users_language(code) -> None:
    from test_languages import CASES

    from describe_screen import i18n

    _, title, text, buttons, _ = CASES[code]
    lines = TextRecognizer(provider="cpu").read(dialog(title, [text], list(buttons)).image)
    i18n.use(code)
    try:
        for question in SAYS[code]:
            assert ask(question, lines) == f"{title}. {text} {'. '.join(buttons)}.", question
        if code == "es":  # the question word without its accent, as Whisper writes it
            assert ask("que botones hay", lines) == "Los botones son Guardar, Descartar y Cancelar."
    finally:
        i18n.use("auto")
