"""Speech in utterances: whole sentences, and a stream's first clause, so the first words come early and
stop() is never more than a sentence away.

A sentence ends at . ! ? or … (plus closing quotes or brackets) followed by white space, or at a line
break; but not after a lone initial or a common abbreviation ("J. Smith", "e.g. this", "Dr. Who").
"""

from __future__ import annotations

import re
from collections.abc import Iterator

_END = re.compile(r"[.!?…]+[\"'”’)\]]*\s+|\n\s*")
_ABBREVIATION = re.compile(r"(?:\b[A-Za-z]|\b(?:Mr|Mrs|Ms|Dr|Prof|St|vs|e\.g|i\.e|approx))[.]$")
# A clause ends at a comma, semicolon or colon followed by white space (so not in "1,000" or "10:30"), or
# at a dash between words. The first utterance of a stream may end at one (first_utterance).
_CLAUSE = re.compile(r"[,;:]\s+|\s+[-–—]+\s+|—")
FIRST_CLAUSE_WORDS = 4  # fewer words than this before a clause break are too little to say on their own


def split_sentences(text: str) -> tuple[list[str], str]:
    """Complete sentences at the start of `text`, and the unfinished rest."""
    sentences, start = [], 0
    for end in _sentence_ends(text):
        if sentence := text[start:end].strip():
            sentences.append(sentence)
        start = end
    return sentences, text[start:]


def _sentence_ends(text: str) -> Iterator[int]:
    """Where each sentence of `text` ends (after the white space that follows it)."""
    start = 0
    for match in _END.finditer(text):
        if "\n" not in match.group() and _ABBREVIATION.search(text, start, match.start() + 1):
            continue
        yield match.end()
        start = match.end()


def first_utterance(text: str) -> tuple[str, str]:
    """The first utterance of a stream once `text` holds it, and the rest (("", text) until then).

    It is the first sentence once that has arrived whole; until then, its first clause with
    FIRST_CLAUSE_WORDS words before the break: a long first sentence would otherwise hold back the first
    words until its last token is decoded. Later utterances are whole sentences (split_sentences)."""
    text = text.lstrip()
    if (end := next(_sentence_ends(text), None)) is not None:  # here whole: nothing to wait for
        return text[:end].strip(), text[end:]
    for match in _CLAUSE.finditer(text):
        if len(text[:match.end()].split()) >= FIRST_CLAUSE_WORDS:
            return text[:match.end()].strip(), text[match.end():]
    return "", text
