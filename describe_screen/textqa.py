"""Questions answered from the recognised text alone, for people without a vision model installed.

Only questions whose answer is in the words on screen are taken: the title, the buttons, whether some
text or button is there and where, what an error or message says, read everything. Anything else
returns None, so the daemon can say plainly that a vision model is needed, rather than guess.
"""

from __future__ import annotations

import re
from difflib import SequenceMatcher

from describe_screen.i18n import _, spoken_list
from describe_screen.layout import Block, TextLine, blocks, buttons, heading
from describe_screen.reader import place

WHOLE = {"screen", "window", "dialog", "dialogue", "page", "everything", "all", "it", "this", "text",
         "message box", "popup", "pop up", "all text", "whole screen", "the whole thing"}
ARTICLES = r"(?:the |a |an |any |some |this |that |my |your |our )?"
# words a yes/no question is built from, not what it asks about
FUNCTION_WORDS = {"is", "are", "was", "were", "am", "has", "have", "had", "does", "do", "did", "will", "would", "can",
                  "could", "should", "shall", "may", "might", "must", "the", "a", "an", "my", "your", "our", "their",
                  "his", "her", "its", "this", "that", "these", "those", "it", "i", "me", "we", "you", "of", "to",
                  "in", "on", "at", "for", "with", "be", "been", "being", "any", "some", "there", "still", "now",
                  "already", "yet", "so", "very", "really"}
YES_NO = re.compile(r"(?:is|are|was|were|has|have|does|do|did|will|can|could|should) .+")
GOING = re.compile(rf"(?:where is|where's|where are) {ARTICLES}(.+?) (?:going|heading|flying|travelling|traveling|"
                   r"bound|off to|going to|sent to)")
DESTINATION = re.compile(r"\b(?:to|for|towards) ((?:[A-Z][\w'-]*)(?: [A-Z][\w'-]*)*)")
VOWEL_SOUND_LETTERS = "AEFHILMNORSX"  # spelt-out letters that start with a vowel sound: "an OK", "an HTML"
MATCH = 0.8  # similarity a recognised phrase needs to count as the asked-for words (OCR slips a letter)
# The same questions asked in the catalogs' other languages, each rewritten to the English form answer()
# reads (on the plain text: lower case, hyphens as spaces); the answer is then said in the user's language.
# Accents on question words are optional where people (and Whisper: "que está escrito") leave them out.
QUESTION_FORMS = [(re.compile(form), english) for form, english in (
    # German
    (r"(?:welche|was für) (?:schaltflächen|knöpfe|buttons)(?: .*)?|(?:nenne|lies) (?:die |alle )?schaltflächen.*",
     "what buttons"),
    (r"(?:wie (?:heißt|lautet)|was ist) (?:der titel|das fenster|der dialog|die seite).*", "title"),
    (r"(?:gibt es|ist da|siehst du) (?:hier |da )?(?:eine |einen |ein |die )?(?:schaltfläche|knopf) (.+?)",
     r"is there a \1 button"),
    (r"wo (?:ist|sind|finde ich) (?:der |die |das |den )?(?:schaltfläche |knopf )?(.+?)", r"where is \1"),
    (r"was steht (?:da|dort|hier|auf dem bildschirm|im fenster|im dialog)|lies (?:vor|alles)|"
     r"was sagt (?:der bildschirm|es)", "what does it say"),
    # French
    (r"quels (?:sont les )?boutons.*", "what buttons"),
    (r"quel est le titre.*", "title"),
    (r"(?:y a t il|est ce qu'il y a|il y a) (?:un |le )?bouton (.+?)", r"is there a \1 button"),
    (r"où (?:est|sont|se trouve) (?:le |la |les |l')?(?:bouton )?(.+?)", r"where is \1"),
    (r"qu'est ce qui est écrit(?: (?:à|sur|dans) (?:l'écran|la fenêtre|le message))?|qu'est ce que ça dit|"
     r"(?:que dit|qu'est ce que dit) (?:l'écran|la fenêtre|le message|il)|"
     r"quel est le texte(?: (?:de l'écran|de la fenêtre|du message))?|lis (?:tout|le texte)", "what does it say"),
    # Spanish
    (r"(?:qu[eé]|cu[aá]les son los) botones.*", "what buttons"),
    (r"cu[aá]l es el t[ií]tulo.*", "title"),
    (r"(?:hay|existe) (?:un |el )?bot[oó]n (.+?)", r"is there a \1 button"),
    (r"d[oó]nde est[aá]n? (?:el |la |los |las )?(?:bot[oó]n )?(.+?)", r"where is \1"),
    (r"qu[eé] (?:dice|pone|(?:est[aá]|hay) escrito)(?: (?:en )?(?:la pantalla|la ventana|el mensaje))?|"
     r"lee (?:todo|el texto)", "what does it say"),
    # Portuguese
    (r"(?:quais|que) (?:são os )?botões.*", "what buttons"),
    (r"qual é o título.*", "title"),
    (r"(?:há|existe|tem) (?:um |o )?botão (.+?)", r"is there a \1 button"),
    (r"onde (?:está|estão|fica) (?:o |a |os |as )?(?:botão )?(.+?)", r"where is \1"),
    (r"o que diz(?: (?:a tela|o ecrã|a janela|a mensagem))?|"
     r"o que (?:est[aá]|tem) escrito(?: (?:aqui|(?:na|nesta) (?:tela|janela|mensagem)|no ecrã))?|"
     r"leia (?:tudo|o texto)", "what does it say"),
    # Italian
    (r"(?:quali|che) (?:sono i )?pulsanti.*", "what buttons"),
    (r"qual(?: |')è il titolo.*", "title"),
    (r"(?:c'è|esiste) (?:un |il )?pulsante (.+?)", r"is there a \1 button"),
    (r"(?:dov'è|dove sono|dove si trova) (?:il |la |lo |i |le |l')?(?:pulsante )?(.+?)", r"where is \1"),
    (r"(?:che )?cosa dice(?: (?:lo schermo|la finestra|il messaggio))?|"
     r"(?:che )?cosa c'è scritto(?: (?:sullo schermo|nella finestra|sulla finestra|nel messaggio))?|"
     r"qual(?: |')è il testo(?: (?:dello schermo|della finestra|del messaggio))?|leggi (?:tutto|il testo)",
     "what does it say"),
)]


def _plain(text: str) -> str:
    text = text.lower().replace("’", "'")
    return re.sub(r"\s+", " ", re.sub(r"[^\w' ]+", " ", text)).strip()


def find(target: str, lines: list[TextLine]) -> TextLine | None:
    """The line that best contains `target`, allowing a letter or two of OCR error; None if absent."""
    want = _plain(target)
    if not want:
        return None
    size = len(want.split())
    best, best_score = None, MATCH
    for line in lines:
        have = _plain(line.text)
        if re.search(rf"\b{re.escape(want)}\b", have):
            return line
        words = have.split()
        for i in range(max(1, len(words) - size + 1)):
            score = SequenceMatcher(None, want, " ".join(words[i:i + size])).ratio()
            if score > best_score:
                best, best_score = line, score
    return best


def article(word: str) -> str:
    """"a" or "an" for a word as it is spoken: "an OK button", "an Undo button", "a User button"."""
    if not word:
        return "a"
    if len(word) > 1 and word.isupper():  # said letter by letter
        return "an" if word[0] in VOWEL_SOUND_LETTERS else "a"
    low = word.lower()
    if low.startswith(("uni", "use", "usu", "uti", "eu", "one", "once")):
        return "a"
    return "an" if low[0] in "aeiou" or low.startswith(("hour", "honest")) else "a"


def _block_of(line: TextLine, parts: list[Block]) -> int:
    return next(i for i, block in enumerate(parts) if any(ln is line for ln in block.lines))


def _say(text: str) -> str:
    text = text.strip()
    return text if text[-1:] in ".!?" else text + "."


def _title(lines: list[TextLine], title: str) -> str | None:
    head = heading(lines)
    name = title or (head.text if head else "")
    return _("The title is {name}.", name=name) if name else None


def _buttons(lines: list[TextLine]) -> str | None:
    labels = [b.text for b in buttons(lines)]
    if not labels:
        return None
    if len(labels) == 1:
        return _("The button is {name}.", name=labels[0])
    return _("The buttons are {names}.", names=spoken_list(labels))


def _is_there(target: str, button: bool, lines: list[TextLine], size: tuple[int, int]) -> str:
    labels = buttons(lines)
    if button:
        hit = find(target, labels)
        if hit:
            # {a} is English's "a" or "an"; the other languages' messages leave it out
            return _("Yes, {a} {name} button {place}.", a=article(hit.text), name=hit.text,
                     place=place(hit, lines, size))
        others = (" " + _("The buttons are {names}.", names=spoken_list([b.text for b in labels]))) if labels else ""
        return _("No, I cannot find {a} {name} button.", a=article(target), name=target) + others
    hit = find(target, lines)
    if hit:
        return _("Yes: {text}, {place}.", text=_say(hit.text)[:-1], place=place(hit, lines, size))
    return _("No, I cannot find {name} on the screen.", name=target)


def _where(target: str, lines: list[TextLine], size: tuple[int, int]) -> str:
    hit = find(target, lines)
    if hit is None:
        return _("I cannot find {name} on the screen.", name=target)
    if any(b is hit for b in buttons(lines)):
        return _("The {name} button is {place}.", name=hit.text, place=place(hit, lines, size))
    if len(hit.text.split()) <= 4:
        return _("{name} is {place}.", name=_say(hit.text)[:-1], place=place(hit, lines, size))
    return _("{name} is {place}, in the line: {line}", name=target.capitalize(), place=place(hit, lines, size),
             line=_say(hit.text))


def _says(target: str, lines: list[TextLine]) -> str | None:
    """What the block with `target` says; a lone label like "Error" brings the block after it."""
    if target in WHOLE:
        return " ".join(_say(block.text) for block in blocks(lines)) or None
    hit = find(target, lines)
    if hit is None:
        return None
    parts = blocks(lines)
    i = _block_of(hit, parts)
    said = [parts[i].text]
    if len(parts[i].text.split()) <= 3 and i + 1 < len(parts):
        said.append(parts[i + 1].text)
    return _("It says: {text}", text=" ".join(_say(s) for s in said))


def _in_english(q: str) -> str:
    """A plain question asked in another catalog language, in the English form answer() reads."""
    for form, english in QUESTION_FORMS:
        if m := form.fullmatch(q):
            return m.expand(english)
    return q


def answer(question: str, lines: list[TextLine], title: str, size: tuple[int, int]) -> str | None:
    """A spoken answer from the screen's words, or None when the words cannot answer the question."""
    q = _in_english(_plain(question))
    if not lines and not title:
        return None
    if re.search(r"\b(title|titled|called|named)\b", q):
        return _title(lines, title)
    if re.fullmatch(r"(what|which) buttons.*|(read|list|name) (the |all )?buttons.*|what are the buttons.*", q):
        return _buttons(lines)
    if m := re.fullmatch(rf"(?:is there|are there|do you see|can you see|do i see) {ARTICLES}(.+?)"
                         r"(?: there| on (?:the )?screen| visible| showing)?", q):
        target = m.group(1)
        button = bool(re.search(r"\bbuttons?$", target))
        target = re.sub(r"\s*\bbuttons?$", "", target).strip()
        return _is_there(target, button, lines, size) if target else None
    if m := re.fullmatch(rf"(?:does it say|does the screen say|does it show) {ARTICLES}?(.+)", q):
        return _is_there(m.group(1), False, lines, size)
    if m := GOING.fullmatch(q):
        return _going(m.group(1), lines)
    if m := re.fullmatch(rf"(?:where is|where's|where are|where can i find|find) {ARTICLES}(.+?)(?: button)?", q):
        return _where(m.group(1), lines, size)
    if m := re.fullmatch(rf"what (?:does|do) {ARTICLES}(.+?) (?:say|read|tell me)|"
                         rf"(?:read|read out|read me) {ARTICLES}(.+?)|what(?:'s| is) (?:in |on )?{ARTICLES}"
                         r"(.+?) (?:message|text|saying)|what is written(?: on)? (.+)", q):
        target = next(g for g in m.groups() if g)
        return _says(re.sub(r"^(?:the|a|an|this|that) ", "", target), lines)
    if re.fullmatch(r"what does it say|what(?:'s| is) (?:written|on (?:the )?screen)|read", q):
        return _says("screen", lines)
    if m := re.fullmatch(rf"(?:what(?:'s| is| are)|how much is|tell me) {ARTICLES}(.+?)", q):
        return _value(m.group(1), lines)
    if YES_NO.fullmatch(q):
        return _quote(q, lines)
    return None


def _same_word(asked: str, said: str) -> bool:
    """One word, allowing an ending: "delay" and "delayed", "cancel" and "cancelled"."""
    short, long = sorted((asked, said), key=len)
    return short == long or (len(short) >= 4 and long.startswith(short))


def _quote(question: str, lines: list[TextLine]) -> str | None:
    """A yes/no question answered by quoting the line that holds every word it asks about ("is my flight
    delayed" by "Your flight to Lisbon is delayed."); None when no line holds them all (never guessed)."""
    wanted = [w for w in question.split() if w not in FUNCTION_WORDS]
    if not wanted:
        return None
    for text in [ln.text for ln in lines] + [block.text for block in blocks(lines)]:  # a line, else a paragraph
        said = _plain(text).split()
        if all(any(_same_word(w, s) for s in said) for w in wanted):
            return _("It says: {text}", text=_say(text))
    return None


def _going(target: str, lines: list[TextLine]) -> str | None:
    """Where something is going, from the line about it: the place named after "to" ("Your flight to
    Lisbon is delayed" gives Lisbon), with that line, which is said whole so nothing rests on the guess."""
    hit = find(target, lines)
    if hit is None:
        return _("I cannot find {name} on the screen.", name=target)
    text = hit.text
    if m := DESTINATION.search(text):
        return _("To {place}. It says: {text}", place=m.group(1), text=_say(text))
    return _("It says: {text}", text=_say(text))


def _value(target: str, lines: list[TextLine]) -> str | None:
    """"The balance is 4,512.30." from a line "Balance: 4,512.30"; the line itself when the words are
    in a sentence; None when the screen does not have them (nothing is guessed)."""
    hit = find(target, lines)
    if hit is None:
        return None
    text = hit.text.strip()
    if m := re.match(rf"\W*{re.escape(target)}\W*?\s*[:=]\s*(.+)", text, re.IGNORECASE):
        return _("The {name} is {value}", name=target, value=_say(m.group(1)))
    if _plain(text) == _plain(target):  # a lone label: its value is the next block
        parts = blocks(lines)
        i = _block_of(hit, parts)
        if i + 1 < len(parts):
            return _("The {name} is {value}", name=target, value=_say(parts[i + 1].text))
    return _("It says: {text}", text=_say(text))
