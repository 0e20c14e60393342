"""SmolVLM run with onnxruntime: preprocessing, prompt and decoding identical to transformers, no torch.

Three graphs: the vision encoder turns 512 px tiles into 64 features each, embed_tokens turns prompt
ids into vectors, and the decoder, with its key/value cache, turns vectors into next-token logits.
Image features replace the <image> placeholder vectors of the prompt, exactly as
SmolVLMModel.inputs_merger does.

The published files (HuggingFaceTB/SmolVLM-256M-Instruct and -500M-Instruct, folder onnx/, run by
transformers.js's Idefics3ForConditionalGeneration; names checked against the model card's onnxruntime
sample and the repository's file list) have these signatures, which our exporter reproduces:

- vision_encoder: pixel_values float32 (batch, images, 3, 512, 512), pixel_attention_mask bool
  (batch, images, 512, 512) -> image_features (64 rows of `hidden` per image). Older exports of ours
  take (images, 3, H, W); the rank is read from the session.
- embed_tokens: input_ids int64 (batch, seq) -> inputs_embeds (batch, seq, hidden).
- decoder_model_merged: inputs_embeds, attention_mask int64 (batch, past + seq), position_ids int64
  (batch, seq), past_key_values.{i}.key/.value (batch, kv_heads, past, head_dim) -> logits,
  present.{i}.key/.value. No use_cache_branch: the first step feeds empty pasts.

Per weight set (`<graph><suffix>.onnx`): fp32 (no suffix); _fp16 (the decoder takes float32
inputs_embeds through a Cast added upstream but keeps a float16 cache and float16 logits); _int8
(dynamic quantisation: DynamicQuantizeLinear + MatMulInteger, float32 I/O); _q4 (4-bit blocks in
com.microsoft MatMulNBits, float32 I/O); _q4f16 (MatMulNBits over a float16 graph, I/O as _fp16). The
runtime never assumes a type: every input is fed in the type its session declares (onnx.BoundRunner).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from describe_screen.errors import UserError
from describe_screen.i18n import _
from describe_screen.vlm import ASK, Request, Turn, fused, images, onnx, user_texts
from describe_screen.vlm.bundle import ChatModel, Graph
from describe_screen.vlm.decoding import Limits, Step, greedy, teacher_forced, token_list

if TYPE_CHECKING:
    import numpy as np
    from PIL.Image import Image

    from describe_screen.vlm.bundle import Bundle

VISION = Graph("vision_encoder.onnx", ("pixel_values", "pixel_attention_mask"), ("image_features",))
EMBED = Graph("embed_tokens.onnx", ("input_ids",), ("inputs_embeds",))
DECODER = Graph("decoder_model_merged.onnx", ("inputs_embeds", "attention_mask", "position_ids"), ("logits",))
# Derived on the CPU: the decoder rebuilt from fused operators (vlm/fused.py), and a q4 vision encoder
# whose 4-bit weights multiply in int8 (onnx.int8_products).
FUSED = Graph("decoder_fused.onnx", fused.INPUTS, ("logits",))
INT8_VISION = Graph("int8_products.onnx", VISION.inputs, VISION.outputs)
CONFIG = "config.json"


def cache_names(layers: int, prefix: str) -> list[str]:
    """past_key_values.{i}.key/.value (prefix "past_key_values") or present.{i}.* (prefix "present")."""
    return [f"{prefix}.{i}.{kind}" for i in range(layers) for kind in ("key", "value")]


MAX_IMAGE_SIDE = 4096  # transformers' MAX_IMAGE_SIZE for this processor
TILE_BATCH = 4  # tiles per vision-encoder run: bounds memory, and a stop request waits for one batch at most
FAKE, GLOBAL, IMAGE = "<fake_token_around_image>", "<global-img>", "<image>"


@dataclass
class Tiles:
    pixel_values: np.ndarray  # (tiles, 3, tile, tile) float32
    rows: int  # 0 and 0 when the image is one global tile
    cols: int


@dataclass
class ImageSettings:
    """The processor settings that matter, read from preprocessor_config.json."""

    longest_edge: int
    tile: int
    resample: int
    rescale: float
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def read(cls, bundle: Bundle) -> ImageSettings:
        def value(key: str, kind: Callable[[Any], Any], default: Any) -> Any:
            return bundle.value("preprocessor_config.json", key, kind, default)

        return cls(longest_edge=value("size.longest_edge", int, 2048),
                   tile=value("max_image_size.longest_edge", int, 512), resample=value("resample", int, 1),
                   rescale=value("rescale_factor", float, 1 / 255), mean=value("image_mean", images.floats, (0.5,) * 3),
                   std=value("image_std", images.floats, (0.5,) * 3))


def _fit_longest(height: int, width: int, longest: int) -> tuple[int, int]:
    """Scale so the longest side is `longest`, the other side rounded up to an even number (as the processor)."""
    aspect = width / height
    if width >= height:
        width, height = longest, int(longest / aspect)
        height += height % 2
    else:
        height, width = longest, int(longest * aspect)
        width += width % 2
    return max(height, 1), max(width, 1)


def _cap(height: int, width: int, limit: int) -> tuple[int, int]:
    aspect = width / height
    if width >= height and width > limit:
        width, height = limit, int(limit / aspect)
    elif height > width and height > limit:
        height, width = limit, int(limit * aspect)
    return max(height, 1), max(width, 1)


def _tile_multiple(height: int, width: int, tile: int) -> tuple[int, int]:
    """Round the size up to whole tiles, keeping the aspect ratio like resize_for_vision_encoder."""
    aspect = width / height
    if width >= height:
        width = -(-width // tile) * tile
        height = -(-int(width / aspect) // tile) * tile
    else:
        height = -(-height // tile) * tile
        width = -(-int(height * aspect) // tile) * tile
    return height, width


def preprocess(image: Image, settings: ImageSettings, split: bool) -> Tiles:
    """Tiles exactly as SmolVLMImageProcessor makes them: `split` = the processor's own tiling
    (row-major tiles plus a global tile), otherwise one global tile."""
    import numpy as np

    rgb = images.to_rgb(images.shrink_huge(image))
    height, width = _cap(*_fit_longest(rgb.height, rgb.width, settings.longest_edge), MAX_IMAGE_SIDE)
    resized = images.resize(rgb, width, height, settings.resample)
    tile = settings.tile
    frames = []
    rows = cols = 0
    if split:
        height, width = _tile_multiple(height, width, tile)
        resized = images.resize(resized, width, height, settings.resample)
        if height > tile or width > tile:
            rows, cols = height // tile, width // tile
            frames = [resized.crop((c * tile, r * tile, (c + 1) * tile, (r + 1) * tile))
                      for r in range(rows) for c in range(cols)]
    frames.append(images.resize(resized, tile, tile, settings.resample))
    pixels = np.stack([images.normalise(f, settings.rescale, settings.mean, settings.std) for f in frames])
    return Tiles(pixels, rows, cols)


def image_prompt(rows: int, cols: int, seq_len: int) -> str:
    """The text that stands for the image: per-tile position markers and `seq_len` <image> tokens each."""
    run = IMAGE * seq_len
    if rows == 0 and cols == 0:
        return f"{FAKE}{GLOBAL}{run}{FAKE}"
    grid = "".join("".join(f"{FAKE}<row_{r}_col_{c}>{run}" for c in range(1, cols + 1)) + "\n"
                   for r in range(1, rows + 1))
    return f"{grid}\n{FAKE}{GLOBAL}{run}{FAKE}"


def chat_prompt(first_question: str, history: list[Turn], question: str) -> str:
    """The SmolVLM chat template: the image belongs to the first user turn, then earlier answers and
    questions alternate, and the prompt ends with "Assistant:" for the model to continue."""
    turns = [f"User:{IMAGE}{first_question}<end_of_utterance>\n"]
    for index, turn in enumerate(history):
        if index:
            turns.append(f"User: {turn.question}<end_of_utterance>\n")
        turns.append(f"Assistant: {turn.answer}<end_of_utterance>\n")
    if history:
        turns.append(f"User: {question}<end_of_utterance>\n")
    return "<|im_start|>" + "".join(turns) + "Assistant:"


class SmolVLM(ChatModel):
    """A SmolVLM bundle. Sessions load on first use (see bundle.Bundle); features of the last image
    are kept so a follow-up question about the same capture skips the vision encoder."""

    END_OF_TURN = "<end_of_utterance>"

    def __init__(self, bundle: Bundle) -> None:
        super().__init__(bundle, bundle.value("generation_config.json", "eos_token_id", token_list, []))
        self._features: tuple[bytes, np.ndarray] | None = None
        self.image_token_id = bundle.value(CONFIG, "image_token_id", int)
        self.settings = ImageSettings.read(bundle)
        side = bundle.value(CONFIG, "vision_config.image_size", int, 512) // bundle.value(
            CONFIG, "vision_config.patch_size", int, 16)
        self.seq_len = bundle.value("processor_config.json", "image_seq_len", int,
                                    side**2 // bundle.value(CONFIG, "scale_factor", int, 2) ** 2)
        self.layers = bundle.value(CONFIG, "text_config.num_hidden_layers", int, 0)
        heads = bundle.value(CONFIG, "text_config.num_attention_heads", int, 1)
        self.kv_heads = bundle.value(CONFIG, "text_config.num_key_value_heads", int, heads)
        self.head_dim = bundle.value(CONFIG, "text_config.head_dim", int,
                                     bundle.value(CONFIG, "text_config.hidden_size", int, 64) // max(heads, 1))

    def warm_up(self) -> None:
        from PIL import Image as PILImage

        blank = PILImage.new("RGB", (self.settings.tile, self.settings.tile), "white")
        for _token in self.token_ids(blank, Request(task=next(iter(sorted(self.tasks - {ASK})), ASK), question="Hi"),
                                lambda: False, Limits(max_new_tokens=1, repeat_span=0)):
            pass
        self._features = None

    def tiles(self, image: Image) -> Tiles:
        return preprocess(image, self.settings, split=self.options.tiles == "default")

    def prompt_ids(self, request: Request, tiles: Tiles) -> list[int]:
        first, current = user_texts(request, self.bundle.prompts)
        text = chat_prompt(first, request.history, current)
        text = text.replace(IMAGE, image_prompt(tiles.rows, tiles.cols, self.seq_len), 1)
        return self.tokenizer.encode(text, add_special_tokens=True).ids

    def token_ids(self, image: Image, request: Request, cancelled: Callable[[], bool],
                  limits: Limits | None = None) -> Iterator[int]:
        """Greedy token ids for one request (EOS excluded); `limits` overrides the stop rules."""
        tiles = self.tiles(image)
        ids = self.prompt_ids(request, tiles)
        features = self.encode_image(tiles, cancelled)
        if features is None:
            return
        limits = limits or self.limits()
        try:
            yield from greedy(self.decoder_step(features, limits.max_new_tokens), ids, limits, cancelled)
        finally:  # the answer's cache and activations are gone: give their memory back
            onnx.trim_heap()

    def forced_choices(self, image: Image, request: Request, tokens: list[int]) -> list[int]:
        """decoding.teacher_forced for one request: this model's pick at each position of `tokens`."""
        tiles = self.tiles(image)
        return teacher_forced(self.decoder_step(self.encode_image(tiles), len(tokens)), self.prompt_ids(request, tiles),
                              tokens)

    def encode_image(self, tiles: Tiles, cancelled: Callable[[], bool] = lambda: False,
                     reuse: bool = True) -> np.ndarray | None:
        """(tiles x image_seq_len, hidden) features, None when cancelled; the last image's are reused
        unless `reuse` is false (the benchmark times the encoder every run)."""
        import numpy as np

        key = hashlib.blake2b(tiles.pixel_values.tobytes(), digest_size=16).digest()
        if reuse and self._features and self._features[0] == key:
            return self._features[1]
        vision = self.vision()
        batched = len(vision.input_shapes["pixel_values"]) == 5  # published graphs: (batch, images, 3, H, W)
        parts = []
        for start in range(0, len(tiles.pixel_values), TILE_BATCH):
            if cancelled():
                return None
            batch = tiles.pixel_values[start:start + TILE_BATCH]
            mask = np.ones((batch.shape[0], *batch.shape[2:]), dtype=np.bool_)
            if batched:
                batch, mask = batch[None], mask[None]
            parts.append(vision.run({"pixel_values": batch, "pixel_attention_mask": mask}, VISION.outputs,
                                    release=True)["image_features"])
        features = np.concatenate([p.reshape(-1, p.shape[-1]) for p in parts])
        self._features = (key, features)
        return features

    def vision(self) -> onnx.BoundRunner:
        """The vision encoder session: on the CPU, a q4 file's copy with int8 products when one can be made."""
        if self.options.fused and self.bundle.provider == "cpu" and self.bundle.precision == "q4":
            runner = self.bundle.derived_runner(INT8_VISION, VISION, onnx.int8_products)
            if runner:
                return runner
        return self.bundle.runner(VISION)

    def fused_decoder(self) -> onnx.BoundRunner | None:
        """The fused decoder when this bundle can have one: float32-in graphs (fp32, int8, q4) on the
        CPU provider, unless the options turn it off. Made from the decoder file once, then reused."""
        if self._not_fused_here():
            return None
        config = self.bundle.json(CONFIG)
        return self.bundle.derived_runner(FUSED, DECODER, lambda source, target: fused.derive(source, config, target),
                                          fused.RECIPE)

    def _not_fused_here(self) -> str:
        """Why these options do not run a fused decoder at all ("" when they do)."""
        if not self.options.fused:
            return _("the settings turn the fast decoder off")
        if self.bundle.provider != "cpu":
            return _("the fast decoder is made for the processor, not the GPU")
        if self.bundle.precision not in fused.PRECISIONS:
            return _("the fast decoder is not made for {precision} weights", precision=self.bundle.precision)
        return ""

    def fused_failure(self) -> str:
        """Why the fused decoder could not be made or opened where it should run; "" when it runs or is
        not meant to (the GPU, fp16 weights). `models install` and `doctor` say it."""
        if self._not_fused_here() or self.fused_decoder():
            return ""
        return self.bundle.not_derived.get(FUSED.file, _("the fast copy was not made"))

    def decoder_in_use(self) -> str:
        """Which decoder requests run, and why when it is not the fused one, in words for `doctor`."""
        if self.fused_decoder():
            return _("the fast decoder (its decoder graph rebuilt from fused operators)")
        why = self._not_fused_here() or _("its decoder could not be rewritten for speed: {problem}",
                                          problem=self.fused_failure())
        return _("its original decoder graph, because {why}", why=why)

    def decoder(self) -> onnx.BoundRunner:
        """The decoder session requests run: the fused copy where one can be made, else the exported graph."""
        return self.fused_decoder() or self.bundle.runner(DECODER)

    def decoder_step(self, features: np.ndarray, expected: int = 0) -> Step:
        """The decoding closure for `greedy`: it owns the key/value cache (device-resident OrtValues
        after step one, or the fused decoder's buffers, sized for the prompt and `expected` more tokens)
        and puts `features` in the places of the prompt's <image> tokens."""
        import numpy as np

        embed = self.bundle.runner(EMBED)
        decode = self._fused_run(expected) or self._source_run()
        started = False

        def step(tokens: list[int]) -> np.ndarray:
            nonlocal started
            ids = np.asarray([tokens], dtype=np.int64)
            embeds = embed.run({"input_ids": ids}, EMBED.outputs)["inputs_embeds"]
            if not started:  # the prompt: image features go in place of its <image> tokens
                started = True
                where = ids[0] == self.image_token_id
                if int(where.sum()) != len(features):
                    raise UserError(_("The prompt has {places} image places but the image gave {features} features, so "
                                      "the model files do not belong together.",
                                      places=int(where.sum()), features=len(features)),
                                    self.bundle.fix)
                embeds[0, where] = features.astype(embeds.dtype)
            return decode(embeds)

        return step

    def _fused_run(self, expected: int) -> Callable[[np.ndarray], np.ndarray] | None:
        runner = self.fused_decoder()
        return fused.Cache(runner, expected).step if runner else None

    def _source_run(self) -> Callable[[np.ndarray], np.ndarray]:
        """Embeddings -> last logits through the exported decoder, its cache fed back as OrtValues."""
        import numpy as np

        decoder = self.bundle.runner(DECODER)
        past: dict[str, Any] = decoder.empty_cache(self.kv_heads, self.head_dim)
        state = {"length": 0}

        def run(embeds: np.ndarray) -> np.ndarray:
            start = state["length"]
            state["length"] += embeds.shape[1]
            out = decoder.run({"inputs_embeds": embeds,
                               "attention_mask": np.ones((1, state["length"]), dtype=np.int64),
                               "position_ids": np.arange(start, state["length"], dtype=np.int64)[None],
                               **past}, ["logits"])
            for name in past:
                past[name] = out[name.replace("past_key_values.", "present.")]
            return out["logits"][0, -1]

        return run

