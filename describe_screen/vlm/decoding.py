"""The greedy decoding loop every family shares, and streaming detokenisation.

A family supplies `step(token_ids) -> logits`: a closure that owns its key/value cache, is called once
with the whole prompt (the prefill) and then with one new token at a time, and returns the logits of
the last position. The loop only chooses tokens and decides when to stop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

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


def greedy(step: Step, prompt_ids: list[int], limits: Limits,
           cancelled: Callable[[], bool] = lambda: False) -> Iterator[int]:
    """Yield greedily chosen token ids until EOS, the token limit, a loop, or `cancelled()`.

    EOS is not yielded. Cancellation is checked before every model call, so a stop request waits
    for at most one decoder step.
    """
    generated: list[int] = []
    inputs = list(prompt_ids)
    while len(generated) < limits.max_new_tokens and not cancelled():
        logits = step(inputs)
        token = int(logits.argmax())
        if token in limits.eos_ids:
            return
        generated.append(token)
        yield token
        if repeating_tail(generated, limits):
            return
        inputs = [token]


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
