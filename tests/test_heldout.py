"""Structure on screens the reader was never tuned on (issue 20): what kind of screen, its title first,
every real button and none invented, forms as label-value pairs and never a table, no invented field,
wrapped lines spoken as sentences; and the words and their order kept."""

from __future__ import annotations

import re

import numpy as np
import pytest
from heldout import Held, build
from test_corpus import recall

from describe_screen import layout, reader
from describe_screen.layout import TextLine
from describe_screen.ocr import TextRecognizer, photographed


@pytest.fixture(scope="module")
def held(xvfb: str, tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Held, list[TextLine]]]:
    ocr = TextRecognizer(provider="cpu")
    return [(case, ocr.read(case.image)) for case in build(tmp_path_factory.mktemp("heldout"), xvfb)]


def _plain(text: str) -> list[str]:
    return [w for w in (re.sub(r"[^a-z0-9'äöüß]", "", w.lower()) for w in text.split()) if w]


def in_order(expected: list[str], spoken: list[str]) -> tuple[int, int]:
    """(words of `expected` said in its order, words said at all): a longest common subsequence."""
    want, said = _plain(" ".join(expected)), _plain(" ".join(spoken))
    common = set(want) & set(said)
    want, said = [w for w in want if w in common], [w for w in said if w in common]
    best = [0] * (len(said) + 1)
    for w in want:
        prev = 0
        for j, s in enumerate(said, start=1):
            prev, best[j] = best[j], max(best[j], best[j - 1], prev + 1 if w == s else 0)
    return best[-1], len(want)


def test_words_and_their_order_are_kept(held: list[tuple[Held, list[TextLine]]]) -> None:
    hits = total = ordered = counted = 0
    for case, lines in held:
        h, t = recall(case.words, [ln.text for ln in lines])
        o, c = in_order(case.words, list(reader.full(lines)))
        print(f"\n{case.name:18} words {h / t:.3f} order {o / max(c, 1):.3f}", end="")
        hits, total, ordered, counted = hits + h, total + t, ordered + o, counted + c
    print(f"\nword recall {hits / total:.3f} ({hits}/{total}), reading order {ordered / counted:.3f}")
    assert hits / total >= 0.98 and ordered / counted >= 0.95


def test_every_real_button_is_named_and_none_invented(held: list[tuple[Held, list[TextLine]]]) -> None:
    right = expected = 0
    invented = []
    for case, lines in held:
        found = [b.text for b in layout.buttons(lines)]
        right, expected = right + sum(b in found for b in case.buttons), expected + len(case.buttons)
        invented += [(case.name, b) for b in found if b not in case.buttons + case.toolbar]
    print(f"\nbuttons named {right}/{expected}")
    assert invented == []
    assert right / expected >= 0.9


def test_fields_only_with_evidence_read_as_label_and_value(held: list[tuple[Held, list[TextLine]]]) -> None:
    for case, lines in held:
        found = [(label.text, " ".join(ln.text for ln in typed)) for label, typed in layout.fields(lines)]
        assert found == case.fields, case.name
        spoken = list(reader.full(lines))
        for label, typed in case.fields:
            kind = ", drop-down" if label in case.drop_downs else ""
            assert f"{label} {typed or 'empty'}{kind}." in spoken, (case.name, spoken)
        if case.fields:  # a form is never read as a table
            assert not layout.table(lines), case.name
            assert "table" not in " ".join(spoken) + reader.brief(lines, "", case.image.size)


def test_check_boxes_and_radio_buttons_are_named_as_such(held: list[tuple[Held, list[TextLine]]]) -> None:
    right = expected = 0
    invented = []
    for case, lines in held:
        found = [(ln.text, ln.mark) for ln in lines if ln.mark]
        right, expected = right + sum(c in found for c in case.choices), expected + len(case.choices)
        invented += [(case.name, c) for c in found if c not in case.choices]
        spoken = list(reader.full(lines))
        for label, which in set(found) & set(case.choices):
            assert f"{label}, {which}." in spoken, (case.name, spoken)
    print(f"\ncheck boxes and radio buttons named {right}/{expected}")
    assert invented == []
    assert right / expected >= 0.8


def test_the_kind_and_the_title_come_first(held: list[tuple[Held, list[TextLine]]]) -> None:
    for case, lines in held:
        photo = photographed(np.asarray(case.image))
        assert reader.kind(lines, case.image.size, photo) in (case.kind, "screen"), case.name
        said = reader.brief(lines, "", case.image.size, photo)
        assert said.split(",")[0].endswith(f"titled {case.heading}"), said
        first = next(reader.narrate(iter(lines), "", case.image.size, photo))
        assert first.startswith((f"{case.heading}.", "A ", "An ")), (case.name, first)
        assert not any(first.startswith(f"{word}.") for word in [*case.toolbar, "File"]), first


def test_wrapped_lines_are_spoken_as_sentences(held: list[tuple[Held, list[TextLine]]]) -> None:
    for case, lines in held:
        if case.sentence:
            assert any(case.sentence in piece for piece in reader.full(lines)), case.name
            assert case.sentence in reader.brief(lines, "", case.image.size), case.name


def test_menu_bar_and_toolbar_are_said_as_what_they_are(held: list[tuple[Held, list[TextLine]]]) -> None:
    case, lines = next(pair for pair in held if pair[0].name == "qt-contact")
    spoken = list(reader.full(lines))
    assert spoken[:3] == ["Menu bar: File, Edit, View and Help.", "Toolbar: New, Open and Save.", "New contact."]
    assert "Full name: Jonas Berg." in spoken and "Group: Work, drop-down." in spoken
    assert reader.brief(lines, "", case.image.size).startswith(
        "An application window titled New contact, with buttons OK and Cancel, a check box Add to favourites. "
        "Fields: Full name: Jonas Berg;")


def test_a_title_bar_makes_a_dialog_titled_by_its_bar(held: list[tuple[Held, list[TextLine]]]) -> None:
    titled = [(case, lines) for case, lines in held if case.name.endswith(("-titled", "-titled-dark"))]
    assert len(titled) == 3
    for case, lines in titled:
        assert reader.kind(lines, case.image.size) == "dialog", case.name
        assert reader.brief(lines, "", case.image.size).startswith(f"A dialog titled {case.heading}, with buttons")
        assert next(reader.full(lines)) == f"{case.heading}.", case.name  # the title first, whatever the columns
    untitled = [lines for case, lines in held if not case.name.endswith(("-titled", "-titled-dark"))]
    assert not any(ln.title_bar for lines in untitled for ln in lines)  # no window manager drew them a bar
