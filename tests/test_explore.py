"""Exploring a capture element by element: the order, the words said for each, moving by kind, below
and above, a table by rows and columns, and finding by words (pure: recognised lines in, words out)."""

from __future__ import annotations

from describe_screen.explore import Exploration
from describe_screen.reader import TextLine

SIZE = (1000, 700)


def line(text: str, x: int, y: int, h: int = 20, **extra) -> TextLine:
    return TextLine(text, (x, y, x + 12 * len(text), y + h), 0.99, **extra)


def button(text: str, x: int, y: int) -> TextLine:
    box = (x, y, x + 12 * len(text), y + 20)
    return TextLine(text, box, 0.99, frame=(box[0] - 10, box[1] - 8, box[2] + 10, box[3] + 8))


def dialog_lines() -> list[TextLine]:
    """A window: a tall heading, a sentence, a labelled field with text typed in, three buttons."""
    return [line("Export report", 200, 150, h=32), line("Choose where the report should be saved", 200, 210),
            line("Name", 200, 260, entry=(280, 252, 600, 290)), line("march.pdf", 290, 260),
            button("Save", 300, 400), button("Preview", 400, 400), button("Cancel", 550, 400)]


def walk(exploration: Exploration, move: str, times: int) -> list[str]:
    return [exploration.move(move) for _ in range(times)]


def test_exploring_says_each_element_in_reading_order_with_its_kind_words_and_place() -> None:
    said = walk(Exploration(dialog_lines(), SIZE), "next", 6)
    assert said == [
        "Heading, Export report, at the top left of the dialog.",
        "Text, Choose where the report should be saved, at the top of the dialog.",
        "Field, Name, march.pdf, 1 of 1, in the middle of the dialog.",
        "Button, Save, 1 of 3, at the bottom left of the dialog.",
        "Button, Preview, 2 of 3, at the bottom of the dialog.",
        "Button, Cancel, 3 of 3, at the bottom right of the dialog.",
    ]


def test_at_the_end_it_says_so_and_stays() -> None:
    explore = Exploration(dialog_lines(), SIZE)
    walk(explore, "next", 6)
    assert explore.move("next") == "Last element. Button, Cancel, 3 of 3, at the bottom right of the dialog."
    assert explore.move("previous").startswith("Button, Preview")


def test_moving_by_kind_skips_the_rest_and_says_when_there_is_no_more() -> None:
    explore = Exploration(dialog_lines(), SIZE)
    assert explore.move("next-button").startswith("Button, Save, 1 of 3")
    assert explore.move("next-button").startswith("Button, Preview, 2 of 3")
    assert explore.move("previous-field").startswith("Field, Name, march.pdf")
    assert explore.move("next-heading") == "No more headings after this."
    assert explore.move("previous-heading").startswith("Heading, Export report")
    assert explore.move("next-row") == "No more table rows after this."


def test_text_typed_in_a_field_is_never_a_button() -> None:
    lines = dialog_lines()
    lines[3].frame = (282, 254, 598, 288)  # the entry's outline is drawn around the typed text
    said = walk(Exploration(lines, SIZE), "next-button", 1)
    assert said == ["Button, Save, 1 of 3, at the bottom left of the dialog."]


def test_an_empty_field_says_empty() -> None:
    explore = Exploration([line("Search", 100, 100, entry=(180, 92, 500, 130)), button("Go", 520, 100)], SIZE)
    assert explore.move("next-field").startswith("Field, Search, empty, 1 of 1")


def table_lines() -> list[TextLine]:
    rows = [("Item", "Price", "Count"), ("Apples", "3 euros", "4"), ("Pears", "5 euros", "2"),
            ("Plums", "7 euros", "9")]
    return [line("Fruit prices", 100, 40, h=30)] + [
        line(text, 100 + 200 * c, 120 + 40 * r) for r, row in enumerate(rows) for c, text in enumerate(row)]


def test_a_table_is_walked_by_rows_and_down_its_columns() -> None:
    explore = Exploration(table_lines(), SIZE)
    assert explore.move("next-row") == "Table header, row 1 of 4: Item, Price, Count."
    assert explore.move("next-row") == "Row 2 of 4: Item Apples, Price 3 euros, Count 4."
    assert explore.move("next") == "Price, 3 euros, row 2 of 4, column 2 of 3."
    assert explore.move("below") == "Price, 5 euros, row 3 of 4, column 2 of 3."
    assert explore.move("below") == "Price, 7 euros, row 4 of 4, column 2 of 3."
    assert explore.move("below").startswith("Nothing below this. Price, 7 euros")
    assert explore.move("above") == "Price, 5 euros, row 3 of 4, column 2 of 3."
    assert explore.move("previous-row") == "Row 2 of 4: Item Apples, Price 3 euros, Count 4."
    assert explore.move("above").startswith("Column header, Item, column 1 of 3")


def test_below_goes_to_what_is_straight_under_it() -> None:
    explore = Exploration(dialog_lines(), SIZE)
    explore.move("next-field")
    assert explore.move("below").startswith("Button, Preview")  # the field's centre is over Preview
    assert explore.move("above").startswith("Field, Name")


def test_find_moves_to_the_best_word_match_and_says_where() -> None:
    explore = Exploration(dialog_lines(), SIZE)
    assert explore.find("preview") == "Button, Preview, 2 of 3, at the bottom of the dialog."
    assert explore.find("Cancel").startswith("Button, Cancel")
    assert explore.find("canzel").startswith("Button, Cancel")  # a misheard word still finds it
    assert explore.find("printer") is None
    assert explore.current is not None and explore.current.text == "Cancel"  # a miss leaves the cursor


def test_an_overview_says_the_text_the_fields_and_the_buttons() -> None:
    assert Exploration(dialog_lines(), SIZE).overview() == (
        "Export report. Choose where the report should be saved. Field Name, march.pdf. "
        "Buttons Save, Preview and Cancel.")
    assert Exploration(table_lines(), SIZE).overview() == "Fruit prices. A table with 4 rows."


def test_nothing_to_explore_is_said() -> None:
    assert Exploration([], SIZE).move("next") == "I found nothing to explore on this capture."


def test_where_before_any_move_starts_at_the_first_element() -> None:
    assert Exploration(dialog_lines(), SIZE).move("where") == (
        "Nothing chosen yet. Heading, Export report, at the top left of the dialog.")
