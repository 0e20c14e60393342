"""Qwen3.5 (0.8B, 2B) from onnx-community's -OPT files, run with onnxruntime: no torch, no transformers.

Three graphs (names, inputs and outputs as transformers.js feeds them; see the spec in docs and the
module docstring of vlm/smolvlm.py for the precision suffixes):

- vision_encoder: pixel_values float32 (patches, 3·2·16·16) and image_grid_thw int64 (images, 3) ->
  image_features (patches / merge², hidden). Patches come from Qwen2-VL's processor (images.smart_resize,
  images.patchify), under a pixel budget per task: the number of visual tokens is what sets the time to
  the first word (VISUAL_TOKENS).
- embed_tokens: input_ids -> inputs_embeds; image features replace the rows at <|image_pad|> places.
- decoder_model_merged: inputs_embeds, attention_mask (batch, past + seq), position_ids (3, batch, seq)
  (mRoPE: time, height, width rows, as transformers' get_rope_index), num_logits_to_keep when the graph
  lists it, and a hybrid cache fed back step by step: past_key_values.{i}.key/.value grow for the
  full-attention layers, past_conv.{i} and past_recurrent.{i} keep their size for the Gated-DeltaNet
  layers. Every cache input is read from the session (past_X in, present_X out), with its type and
  shape; nothing about the layer layout is assumed.

A conversation is one sequence: the image prefix (<|im_start|>user, the image), the first turn's text,
the generation prompt with Qwen3.5's empty think block (its non-thinking mode), the answer, and for each
follow-up "<|im_end|>" + the next user turn + a generation prompt. The states after the image prefix and
after the last answer are kept (they are immutable OrtValues, so keeping them costs no copy): another
request about the same capture starts after the image, a follow-up question after the previous answer.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from describe_screen.errors import UserError
from describe_screen.i18n import _
from describe_screen.vlm import ASK, CAPTION_BRIEF, CAPTION_FULL, Request, cpu_graph, images, kernels, onnx, user_texts
from describe_screen.vlm.bundle import ChatModel, Graph
from describe_screen.vlm.decoding import Limits, greedy, token_list

if TYPE_CHECKING:

    import numpy as np
    from PIL.Image import Image

    from describe_screen.vlm.bundle import Bundle

STATES = ("past_key_values.", "past_conv.", "past_recurrent.")
VISION = Graph("vision_encoder.onnx", ("pixel_values", "image_grid_thw"), ("image_features",))
EMBED = Graph("embed_tokens.onnx", ("input_ids",), ("inputs_embeds",))
DECODER = Graph("decoder_model_merged.onnx", ("inputs_embeds", "attention_mask", "position_ids"), ("logits",),
                cache=STATES, optional=("num_logits_to_keep",))
# Derived on the CPU from q4 files (cpu_graph): copies whose 4-bit weights multiply in int8, in our own kernel
# where this computer can build it; the decoder's also runs its gated norms as whole-tensor operators.
INT8_VISION = Graph("int8_products.onnx", VISION.inputs, VISION.outputs)
INT8_DECODER = Graph("int8_decoder.onnx", DECODER.inputs, DECODER.outputs, cache=STATES, optional=DECODER.optional)
CONFIG = "config.json"
PREPROCESSOR = "preprocessor_config.json"
# Visual tokens (merged patches, 32 x 32 pixels each) per task: the image is resized to at most this many
# before encoding. Brief descriptions come first and fast (a 1280x720 screen gives 7 x 13 = 91 tokens);
# a question gets enough to read a dialog (12 x 21 = 252); a detailed description looks closer
# (16 x 29 = 464). The speed each gives is in BENCHMARKS.md.
VISUAL_TOKENS = {CAPTION_BRIEF: 96, ASK: 256, CAPTION_FULL: 480}
# The chat template's pieces for one user turn and the generation prompt in non-thinking mode.
USER, END, ANSWER = "<|im_start|>user\n", "<|im_end|>\n", "<|im_start|>assistant\n<think>\n\n</think>\n\n"


@dataclass(frozen=True)
class ImageSettings:
    """The processor settings that matter, read from preprocessor_config.json."""

    patch: int
    temporal: int
    merge: int
    min_pixels: int
    max_pixels: int
    resample: int
    rescale: float
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def read(cls, bundle: Bundle) -> ImageSettings:
        def value(key: str, kind: Callable[[Any], Any], default: Any) -> Any:
            return bundle.value(PREPROCESSOR, key, kind, default)

        return cls(patch=value("patch_size", int, 16), temporal=value("temporal_patch_size", int, 2),
                   merge=value("merge_size", int, 2),
                   min_pixels=value("min_pixels", int, value("size.shortest_edge", int, 65536)),
                   max_pixels=value("max_pixels", int, value("size.longest_edge", int, 16777216)),
                   resample=value("resample", int, 3), rescale=value("rescale_factor", float, 1 / 255),
                   mean=value("image_mean", images.floats, (0.5,) * 3),
                   std=value("image_std", images.floats, (0.5,) * 3))

    @property
    def factor(self) -> int:
        """Pixels per side of one visual token."""
        return self.patch * self.merge


@dataclass(frozen=True)
class Patches:
    pixel_values: np.ndarray  # (grid_h * grid_w, 3 * temporal * patch²) float32
    grid: tuple[int, int, int]  # image_grid_thw: (1, grid_h, grid_w) in patches


def preprocess(image: Image, settings: ImageSettings, max_pixels: int | None = None) -> Patches:
    """Patches exactly as transformers' Qwen2-VL image processor makes them, under `max_pixels`."""
    rgb = images.to_rgb(images.shrink_huge(image))
    limit = min(settings.max_pixels, max_pixels or settings.max_pixels)
    height, width = images.smart_resize(rgb.height, rgb.width, settings.factor, min(settings.min_pixels, limit),
                                        limit)
    pixels = images.normalise(images.resize(rgb, width, height, settings.resample), settings.rescale,
                              settings.mean, settings.std)
    values, grid_h, grid_w = images.patchify(pixels, settings.patch, settings.merge, settings.temporal)
    return Patches(values, (1, grid_h, grid_w))


def rope_positions(ids: Sequence[int], image_token: int, grids: Sequence[tuple[int, int, int]], merge: int,
                   start: int = 0) -> tuple[np.ndarray, int]:
    """(3, len(ids)) mRoPE position ids as transformers' get_rope_index gives them, for a piece of the
    sequence whose first text position is `start`, and the next text position after it. Text counts up
    on all three rows; each run of image tokens (one image, the next of `grids`) holds its time, row and
    column on the three rows from the image's start, and text resumes after its longest side."""
    import numpy as np

    rows = []
    images_left = iter(grids)
    position = start
    index = 0
    while index < len(ids):
        run = index
        is_image = ids[index] == image_token
        while run < len(ids) and (ids[run] == image_token) == is_image:
            run += 1
        if not is_image:
            rows.append(np.broadcast_to(np.arange(position, position + run - index), (3, run - index)))
            position += run - index
        else:
            t, h, w = next(images_left)
            gt, gh, gw = t, h // merge, w // merge
            if gt * gh * gw != run - index:
                raise ValueError(f"{run - index} image tokens for a {gt}x{gh}x{gw} grid")
            grid = np.stack(np.meshgrid(np.arange(gt), np.arange(gh), np.arange(gw), indexing="ij")).reshape(3, -1)
            rows.append(grid + position)
            position += max(gh, gw)
        index = run
    positions = np.concatenate(rows, axis=1) if rows else np.zeros((3, 0), np.int64)
    return positions.astype(np.int64), position


@dataclass
class State:
    """The decoder's cache after some tokens: the past_* OrtValues, how many tokens it holds, and the
    next text position (past length + rope delta)."""

    cache: dict[str, Any]
    length: int = 0
    position: int = 0


@dataclass
class Conversation:
    """The state after the last answer about one image, and what it holds, for a follow-up question."""

    key: bytes
    turns: list[tuple[str, str]]
    state: State
    unfed: list[int] = field(default_factory=list)  # the answer's last tokens when a limit cut it
    grounding: str = ""  # the screen text the conversation already holds


class Qwen35(ChatModel):
    """A Qwen3.5 bundle. Sessions load on first use (see bundle.Bundle)."""

    multilingual = True  # Qwen3.5 answers in the user's language when asked to (vlm.answers_in)
    END_OF_TURN = "<|im_end|>"

    def __init__(self, bundle: Bundle) -> None:
        super().__init__(bundle, bundle.value("generation_config.json", "eos_token_id", token_list,
                                              bundle.value(CONFIG, "text_config.eos_token_id", token_list, [])))
        self.settings = ImageSettings.read(bundle)
        self.image_token_id = bundle.value(CONFIG, "image_token_id", int)
        self.vision_start_id = bundle.value(CONFIG, "vision_start_token_id", int)
        self.vision_end_id = bundle.value(CONFIG, "vision_end_token_id", int)
        self.merge = bundle.value(CONFIG, "vision_config.spatial_merge_size", int, self.settings.merge)
        self._features: tuple[bytes, np.ndarray] | None = None
        self._prefix: tuple[bytes, State] | None = None  # the state after the image
        self._conversation: Conversation | None = None

    def warm_up(self) -> None:
        from PIL import Image as PILImage

        blank = PILImage.new("RGB", (self.settings.factor * 2,) * 2, "white")
        request = Request(task=min(self.tasks - {ASK}, default=ASK), question="Hi")
        list(self.token_ids(blank, request, lambda: False, Limits(max_new_tokens=1, repeat_span=0)))
        self._features = self._prefix = self._conversation = None

    # -- the prompt
    def patches(self, image: Image, task: str) -> Patches:
        tokens = VISUAL_TOKENS.get(task, VISUAL_TOKENS[ASK])
        return preprocess(image, self.settings, tokens * self.settings.factor ** 2)

    def image_ids(self, patches: Patches) -> list[int]:
        """The image prefix: the user turn's start and the image, one <|image_pad|> per visual token."""
        _, grid_h, grid_w = patches.grid
        pads = grid_h * grid_w // self.merge ** 2
        return [*self.encode(USER), self.vision_start_id, *[self.image_token_id] * pads, self.vision_end_id]

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def turn_ids(self, request: Request) -> list[int]:
        """What follows the image for a request from scratch: the first turn's text, then each earlier
        answer and question, each answer after its generation prompt, as one conversation."""
        first, current = user_texts(request, self.bundle.prompts)
        if not request.history:
            return self.encode(first + END + ANSWER)
        text = first + END + ANSWER
        for index, turn in enumerate(request.history):
            if index:
                text += USER + turn.question.strip() + END + ANSWER
            text += turn.answer.strip() + END
        return self.encode(text + USER + current + END + ANSWER)

    def follow_up_ids(self, request: Request) -> list[int]:
        """The next user turn after an answer the cache already holds (its <|im_end|> included)."""
        _, current = user_texts(request, self.bundle.prompts)
        return self.encode(END + USER + current + END + ANSWER)

    # -- one request
    def token_ids(self, image: Image, request: Request, cancelled: Callable[[], bool],
                  limits: Limits | None = None) -> Iterator[int]:
        """Greedy token ids for one request (EOS excluded); `limits` overrides the stop rules."""
        patches = self.patches(image, request.task)
        key = hashlib.blake2b(patches.pixel_values.tobytes() + repr(patches.grid).encode(), digest_size=16).digest()
        turns = [(t.question.strip(), t.answer.strip()) for t in request.history]
        limits = limits or self.limits()
        try:
            conversation = self._conversation
            if (request.task == ASK and conversation and conversation.key == key and conversation.turns == turns
                    and turns):
                state = State(dict(conversation.state.cache), conversation.state.length, conversation.state.position)
                held = request.grounding.strip()
                if held == conversation.grounding:  # the screen's text is in the conversation: not again
                    request = dataclasses.replace(request, grounding="")
                prompt = [*conversation.unfed, *self.follow_up_ids(request)]
            else:
                held = request.grounding.strip()
                prompt = self.turn_ids(request)  # checks the request before any model work
                state = self.after_image(patches, key, cancelled)
                if state is None:
                    return
            step, fed = self.decoder_step(state)
            answer: list[int] = []
            for token in greedy(step, prompt, limits, cancelled):
                answer.append(token)
                yield token
            if request.task == ASK and not cancelled():
                text = self.tokenizer.decode(answer, skip_special_tokens=True).strip()
                self._conversation = Conversation(key, [*turns, (request.question.strip(), text)], state,
                                                  answer[fed() - len(prompt):], held)
        finally:  # an answer's activations are gone: give their memory back
            onnx.trim_heap()

    def after_image(self, patches: Patches, key: bytes, cancelled: Callable[[], bool]) -> State | None:
        """The state after the image prefix, computed once per image (None when cancelled)."""
        if self._prefix and self._prefix[0] == key:
            saved = self._prefix[1]
            return State(dict(saved.cache), saved.length, saved.position)
        features = self.encode_image(patches, key)
        if cancelled():
            return None
        state = self.empty_state()
        step, _ = self.decoder_step(state, features, [patches.grid])
        step(self.image_ids(patches))
        self._prefix = (key, State(dict(state.cache), state.length, state.position))
        self._conversation = None
        return state

    def encode_image(self, patches: Patches, key: bytes) -> np.ndarray:
        """(visual tokens, hidden) features of the image; the last image's are reused."""
        import numpy as np

        if self._features and self._features[0] == key:
            return self._features[1]
        out = self.vision().run({"pixel_values": patches.pixel_values,
                                 "image_grid_thw": np.asarray([patches.grid], dtype=np.int64)},
                                VISION.outputs, release=True)["image_features"]
        features = out.reshape(-1, out.shape[-1])
        self._features = (key, features)
        return features

    # -- sessions
    def vision(self) -> onnx.BoundRunner:
        """The vision encoder: on the CPU, a q4 file's copy with int8 products (ours where we have them: cpu_graph)
        when one can be made."""
        return self._cpu_copy(INT8_VISION, VISION) or self.bundle.runner(VISION)

    def decoder(self) -> onnx.BoundRunner:
        """The decoder: on the CPU, a q4 file's copy with int8 products and whole-tensor gated norms
        (cpu_graph) when one can be made."""
        return self._cpu_copy(INT8_DECODER, DECODER) or self.bundle.runner(DECODER)

    def decoder_in_use(self) -> str:
        """Which decoder requests run and with whose 4-bit products, and why not the fastest, for `doctor`."""
        if not (self.options.fused and self.bundle.provider == "cpu" and self.bundle.precision == "q4"):
            return _("its published decoder graph")
        if self._cpu_copy(INT8_DECODER, DECODER) is None:
            return _("its published decoder graph, because its copy for the processor could not be made: {problem}",
                     problem=self.bundle.not_derived.get(INT8_DECODER.file, ""))
        if cpu_graph.own_kernel():
            return _("its copy for the processor, with describe-screen's own 4-bit kernel")
        why = kernels.unavailable() or _("This processor lacks AVX-512 VNNI, which that kernel needs")
        return _("its copy for the processor, with onnxruntime's 4-bit products, not describe-screen's faster own "
                 "kernel ({why})", why=why.rstrip("."))

    def _cpu_copy(self, derived: Graph, source: Graph) -> onnx.BoundRunner | None:
        if self.options.fused and self.bundle.provider == "cpu" and self.bundle.precision == "q4":
            return self.bundle.derived_runner(derived, source, cpu_graph.derive, cpu_graph.recipe())
        return None

    def empty_state(self) -> State:
        """Zeros for every past_* input the decoder lists: growing caches empty, fixed states full size."""
        decoder = self.decoder()
        present = set(decoder.output_names)
        cache = {}
        for name in decoder.input_types:
            if not name.startswith(STATES):
                continue
            if _present(name) not in present:
                raise UserError(_("The model file {label} in {path} has the cache input {name} but no output "
                                  "{present}, so it does not match this version of describe-screen.",
                                  label=decoder.label, path=self.path, name=name, present=_present(name)),
                                self.bundle.fix)
            cache[name] = decoder.initial_state(name, self._fallback_shape(name))
        return State(cache)

    def _fallback_shape(self, name: str) -> tuple[int, ...]:
        """The shape of a state input as config.json gives it, for dimensions the graph leaves symbolic."""
        def text(key: str, default: int) -> int:
            return self.bundle.value(CONFIG, f"text_config.{key}", int, default)

        if name.startswith("past_conv."):
            heads_k, heads_v = text("linear_num_key_heads", 16), text("linear_num_value_heads", 16)
            channels = 2 * heads_k * text("linear_key_head_dim", 128) + heads_v * text("linear_value_head_dim", 128)
            return 1, channels, text("linear_conv_kernel_dim", 4) - 1
        if name.startswith("past_recurrent."):
            return (1, text("linear_num_value_heads", 16), text("linear_key_head_dim", 128),
                    text("linear_value_head_dim", 128))
        return 1, text("num_key_value_heads", 2), 0, text("head_dim", 256)

    def decoder_step(self, state: State, features: np.ndarray | None = None,
                     grids: Sequence[tuple[int, int, int]] = ()) -> tuple[Callable[[list[int]], np.ndarray],
                                                                          Callable[[], int]]:
        """The decoding closure for `greedy`, advancing `state` in place, and a count of the tokens it
        has fed. `features` replace the embeddings of the image tokens of the first piece fed."""
        import numpy as np

        embed = self.bundle.runner(EMBED)
        decoder = self.decoder()
        keep = "num_logits_to_keep" in decoder.input_types
        keep_value = np.array(1, dtype=np.int64).reshape([1] * len(decoder.input_shapes.get("num_logits_to_keep", [])))
        plain_positions = len(decoder.input_shapes["position_ids"]) == 2
        fed = 0

        def step(tokens: list[int]) -> np.ndarray:
            nonlocal fed
            ids = np.asarray([tokens], dtype=np.int64)
            embeds = embed.run({"input_ids": ids}, EMBED.outputs)["inputs_embeds"]
            where = ids[0] == self.image_token_id
            if where.any():
                if features is None or int(where.sum()) != len(features):
                    raise UserError(_("The prompt has {places} image places but the image gave {features} features, so "
                                      "the model files do not belong together.",
                                      places=int(where.sum()), features=0 if features is None else len(features)),
                                    self.bundle.fix)
                embeds[0, where] = features.astype(embeds.dtype)
            positions, state.position = rope_positions(tokens, self.image_token_id, grids, self.merge, state.position)
            state.length += len(tokens)
            inputs = {"inputs_embeds": embeds, "attention_mask": np.ones((1, state.length), dtype=np.int64),
                      "position_ids": positions[:1] if plain_positions else positions[:, None, :], **state.cache}
            if keep:
                inputs["num_logits_to_keep"] = keep_value
            out = decoder.run(inputs, ["logits"])
            state.cache = {name: out[_present(name)] for name in state.cache}
            fed += len(tokens)
            return out["logits"][0, -1]

        return step, lambda: fed


def _present(name: str) -> str:
    """The output that feeds input `name` next step: past_key_values.0.key -> present.0.key,
    past_conv.0 -> present_conv.0 (the published graphs' names)."""
    if name.startswith("past_key_values."):
        return "present." + name.removeprefix("past_key_values.")
    return "present_" + name.removeprefix("past_")

