"""The greedy decoding loop every family shares, the generation rules it honours, and streaming
detokenisation.

A family supplies `step(token_ids) -> logits`: a closure that owns its key/value cache, is called once
with the whole prompt (the prefill) and then with one new token at a time, and returns the logits of
the last position. The loop only chooses tokens (under `Rules`, read from generation_config.json) and
decides when to stop (`Limits`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from tokenizers import Tokenizer

Step = Callable[[list[int]], "np.ndarray"]


@dataclass
class Limits:
    """When to stop: an end token, a length limit, or the text starting to loop.

    `repeat_span` is the shortest repeated tail that counts as a loop (period x repeats, in tokens);
    0 turns the check off (tests that force an exact number of tokens).
    """

    max_new_tokens: int = 160
    eos_ids: frozenset[int] = field(default_factory=frozenset)
    repeat_span: int = 16
    min_repeats: int = 3
    max_period: int = 32


def token_list(value: Any) -> list[int]:
    """A generation setting that is one token id or a list of them (eos_token_id), as a list."""
    return [int(v) for v in value] if isinstance(value, list) else [int(value)]


def chat_limits(tokenizer: Tokenizer, max_new_tokens: int, eos: Iterable[int], end_of_turn: str) -> Limits:
    """Stop rules of a chat model: its EOS ids and its end-of-turn token, which generation_config.json
    does not always list."""
    end = tokenizer.token_to_id(end_of_turn)
    return Limits(max_new_tokens=max_new_tokens, eos_ids=frozenset(eos) | ({end} if end is not None else set()))


def repeating_tail(ids: list[int], limits: Limits) -> bool:
    """True when the output ends with one block of tokens repeated `min_repeats` times or more and
    the repeats cover at least `repeat_span` tokens, e.g. "the the the ..." or a line said over and over."""
    if limits.repeat_span <= 0:
        return False
    for period in range(1, min(limits.max_period, len(ids) // limits.min_repeats) + 1):
        span = max(limits.repeat_span, period * limits.min_repeats)
        if span > len(ids):
            continue
        tail = ids[-span:]
        if all(tail[i] == tail[i - period] for i in range(period, span)):
            return True
    return False


@dataclass(frozen=True)
class Rules:
    """transformers' logits processors that greedy decoding must apply to pick the same tokens:
    `forced_first` (forced_bos_token_id) is the first generated token whatever the logits say;
    `no_repeat_ngram` (no_repeat_ngram_size) bans any token that would repeat an n-gram of the sequence."""

    forced_first: int | None = None
    no_repeat_ngram: int = 0

    def apply(self, logits: np.ndarray, sequence: list[int], generated: int) -> np.ndarray:
        """`logits` for the next token after `sequence` (prompt and `generated` tokens), rules applied."""
        import numpy as np

        if self.forced_first is not None and generated == 0:
            forced = np.full(logits.shape, -np.inf, dtype=np.float32)
            forced[self.forced_first] = 0.0
            return forced
        if banned := banned_by_ngrams(sequence, self.no_repeat_ngram):
            logits = logits.astype(np.float32)  # a copy: the step's own buffer stays untouched
            logits[banned] = -np.inf
        return logits


def banned_by_ngrams(ids: list[int], n: int) -> list[int]:
    """Tokens that would repeat an n-gram already in `ids` (transformers' no_repeat_ngram_size)."""
    if n <= 0 or len(ids) + 1 < n:
        return []
    prefix = tuple(ids[len(ids) - n + 1:])
    return [ids[i + n - 1] for i in range(len(ids) - n + 1) if tuple(ids[i:i + n - 1]) == prefix]


def greedy(step: Step, prompt_ids: list[int], limits: Limits,
           cancelled: Callable[[], bool] = lambda: False, rules: Rules = Rules()) -> Iterator[int]:
    """Yield greedily chosen token ids until EOS, the token limit, a loop, or `cancelled()`.

    EOS is not yielded. Cancellation is checked before every model call, so a stop request waits
    for at most one decoder step.
    """
    generated: list[int] = []
    inputs = list(prompt_ids)
    while len(generated) < limits.max_new_tokens and not cancelled():
        sequence = [*prompt_ids, *generated] if rules.no_repeat_ngram else generated
        logits = rules.apply(step(inputs), sequence, len(generated))
        token = int(logits.argmax())
        if token in limits.eos_ids:
            return
        generated.append(token)
        yield token
        if repeating_tail(generated, limits):
            return
        inputs = [token]


def teacher_forced(step: Step, prompt_ids: list[int], tokens: list[int], rules: Rules = Rules()) -> list[int]:
    """The token the model would pick at each position when `tokens` are fed as its answer: how a
    quantised weight set is scored against fp32 without one early difference hiding all later agreement."""
    choices: list[int] = []
    inputs = list(prompt_ids)
    for token in tokens:
        sequence = [*prompt_ids, *tokens[:len(choices)]]
        choices.append(int(rules.apply(step(inputs), sequence, len(choices)).argmax()))
        inputs = [token]
    return choices


def stream_text(tokenizer: Tokenizer, ids: Iterable[int]) -> Iterator[str]:
    """Turn token ids into text pieces as they arrive, skipping special tokens.

    tokenizers' DecodeStream holds back a token until it forms whole UTF-8 characters, so a
    multi-byte character split across tokens is never spoken as garbage.
    """
    from tokenizers.decoders import DecodeStream

    stream = DecodeStream(skip_special_tokens=True)
    for token in ids:
        piece = stream.step(tokenizer, token)
        if piece:
            yield piece
