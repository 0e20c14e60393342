"""SmolVLM run with onnxruntime: preprocessing, prompt and decoding identical to transformers, no torch.

The bundle holds three graphs (see describe_screen/export/smolvlm.py): the vision encoder turns 512 px
tiles into 64 features each, embed_tokens turns prompt ids into vectors, and the decoder, with its
key/value cache, turns vectors into next-token logits. Image features replace the <image> placeholder
vectors of the prompt, exactly as SmolVLMModel.inputs_merger does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from describe_screen.errors import UserError
from describe_screen.vlm import ASK, Request, RuntimeOptions, Turn, bundle, images, onnx
from describe_screen.vlm.decoding import Limits, greedy, stream_text

if TYPE_CHECKING:
    import numpy as np
    from PIL.Image import Image
    from tokenizers import Tokenizer

VISION = "vision_encoder.onnx"
EMBED = "embed_tokens.onnx"
DECODER = "decoder_model_merged.onnx"
MAX_IMAGE_SIDE = 4096  # transformers' MAX_IMAGE_SIZE for this processor
TILE_BATCH = 4  # tiles per vision-encoder run: bounds memory, and a stop request waits for one batch at most
# OCR text offered as grounding is cut to this many characters: a full screen of text would make the
# prompt (and so the time to the first spoken word) several times longer for little gain.
GROUNDING_CHARS = 2000
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
    def from_config(cls, config: dict) -> ImageSettings:
        return cls(longest_edge=int(config.get("size", {}).get("longest_edge", 2048)),
                   tile=int(config.get("max_image_size", {}).get("longest_edge", 512)),
                   resample=int(config.get("resample", 1)),
                   rescale=float(config.get("rescale_factor", 1 / 255)),
                   mean=tuple(config.get("image_mean", (0.5, 0.5, 0.5))),
                   std=tuple(config.get("image_std", (0.5, 0.5, 0.5))))


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


def user_texts(request: Request, prompts: dict[str, str]) -> tuple[str, str]:
    """(text of the first user turn, text of the current one) for a request; grounding text goes
    into the current turn, so the model reads it right before answering."""
    if request.task == ASK:
        if not request.question.strip():
            raise UserError("The question is empty.", "Type or say a question, then press Enter.")
        current = prompts.get(ASK, "{question}").format(question=request.question.strip())
    elif request.task in prompts:
        current = prompts[request.task]
    else:
        raise UserError(f"This model cannot do the task {request.task!r}.",
                        "Choose another model for it in the settings file.")
    if grounding := request.grounding.strip()[:GROUNDING_CHARS]:
        current = prompts.get("grounding", "{text}\n").format(text=grounding) + current
    first = request.history[0].question if request.history else current
    return first, current


class SmolVLM:
    """A SmolVLM bundle. Sessions load on first use; features of the last image are kept so a
    follow-up question about the same capture skips the vision encoder."""

    def __init__(self, path: Path, manifest: dict, options: RuntimeOptions) -> None:
        self.path = path
        self.manifest = manifest
        self.options = options
        self.name = str(manifest.get("name", path.name))
        self.tasks = frozenset(manifest.get("tasks", ()))
        self._runners: dict[str, onnx.BoundRunner] = {}
        self._features: tuple[bytes, np.ndarray] | None = None
        config = self._json("config.json")
        self.image_token_id = int(config["image_token_id"])
        self.settings = ImageSettings.from_config(self._json("preprocessor_config.json"))
        vision = config.get("vision_config", {})
        processor = self._json("processor_config.json", required=False)
        self.seq_len = int(processor.get("image_seq_len") or (
            (vision["image_size"] // vision["patch_size"]) ** 2 // config.get("scale_factor", 2) ** 2))
        generation = self._json("generation_config.json", required=False)
        self._eos = generation.get("eos_token_id")
        self._tokenizer: Tokenizer | None = None

    def _json(self, name: str, required: bool = True) -> dict[str, Any]:
        path = self.path / name
        if not path.is_file():
            if required:
                raise UserError(f"The model file {name} is missing from {self.path}.", bundle.export_fix(self.manifest))
            return {}
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise UserError(f"The model file {name} in {self.path} is damaged.",
                            bundle.export_fix(self.manifest)) from exc

    @property
    def tokenizer(self) -> Tokenizer:
        if self._tokenizer is None:
            from tokenizers import Tokenizer

            bundle.check_bundle(self.path, self.manifest, only=["tokenizer.json"])
            self._tokenizer = Tokenizer.from_file(str(self.path / "tokenizer.json"))
        return self._tokenizer

    def limits(self) -> Limits:
        eos = self._eos if isinstance(self._eos, list) else [self._eos] if self._eos is not None else []
        end = self.tokenizer.token_to_id("<end_of_utterance>")
        return Limits(max_new_tokens=self.options.max_new_tokens,
                      eos_ids=frozenset(int(e) for e in eos) | ({end} if end is not None else set()))

    def _load(self) -> dict[str, onnx.BoundRunner]:
        """Open the three sessions once, on the precision the device runs best (see bundle.pick_variant)."""
        if self._runners:
            return self._runners
        opts = self.options
        embed_file = bundle.pick_variant(self.manifest, EMBED, "fp32", "cpu")  # fp32 unless only one precision
        bundle.check_bundle(self.path, self.manifest, only=[embed_file])
        embed = bundle.open_session(self.path, self.manifest, embed_file, ["input_ids"], opts.provider, opts.threads)
        device = onnx.device_of(embed)
        vision_file = bundle.pick_variant(self.manifest, VISION, opts.precision, device)
        decoder_file = bundle.pick_variant(self.manifest, DECODER, opts.precision, device)
        bundle.check_bundle(self.path, self.manifest, only=[vision_file, decoder_file])
        vision = bundle.open_session(self.path, self.manifest, vision_file,
                                     ["pixel_values", "pixel_attention_mask"], opts.provider, opts.threads)
        layers = int(self._json("config.json").get("text_config", {}).get("num_hidden_layers", 0))
        past = [f"past_key_values.{i}.{kind}" for i in range(layers) for kind in ("key", "value")]
        decoder = bundle.open_session(self.path, self.manifest, decoder_file,
                                      ["inputs_embeds", "attention_mask", "position_ids", *past],
                                      opts.provider, opts.threads)
        self._runners = {"vision": onnx.BoundRunner(vision, vision_file), "embed": onnx.BoundRunner(embed, embed_file),
                         "decoder": onnx.BoundRunner(decoder, decoder_file)}
        return self._runners

    def provider(self) -> str:
        return onnx.main_provider(self._load()["decoder"].session)

    def warm_up(self) -> None:
        from PIL import Image as PILImage

        blank = PILImage.new("RGB", (self.settings.tile, self.settings.tile), "white")
        for _ in self.token_ids(blank, Request(task=next(iter(sorted(self.tasks - {ASK})), ASK), question="Hi"),
                                lambda: False, Limits(max_new_tokens=1, repeat_span=0)):
            pass
        self._features = None

    def stream(self, image: Image, request: Request, cancelled: Callable[[], bool]) -> Iterator[str]:
        yield from stream_text(self.tokenizer, self.token_ids(image, request, cancelled))

    def prompt_ids(self, request: Request, tiles: Tiles) -> list[int]:
        first, current = user_texts(request, self.manifest.get("prompts", {}))
        text = chat_prompt(first, request.history, current)
        text = text.replace(IMAGE, image_prompt(tiles.rows, tiles.cols, self.seq_len), 1)
        return self.tokenizer.encode(text, add_special_tokens=True).ids

    def token_ids(self, image: Image, request: Request, cancelled: Callable[[], bool],
                  limits: Limits | None = None) -> Iterator[int]:
        """Greedy token ids for one request (EOS excluded); `limits` overrides the stop rules."""
        tiles = preprocess(image, self.settings, split=self.options.tiles == "default")
        ids = self.prompt_ids(request, tiles)
        runners = self._load()
        features = self._image_features(runners["vision"], tiles, cancelled)
        if features is None:
            return
        yield from greedy(self._stepper(runners, features), ids, limits or self.limits(), cancelled)

    def forced_choices(self, image: Image, request: Request, tokens: list[int]) -> list[int]:
        """The token this model would pick at each position when `tokens` are fed as its answer
        (teacher forcing): how int8 or fp16 bundles are scored against fp32 without one early
        difference hiding all later agreement."""
        tiles = preprocess(image, self.settings, split=self.options.tiles == "default")
        step = self._stepper(self._load(), self._image_features(self._load()["vision"], tiles, lambda: False))
        inputs = self.prompt_ids(request, tiles)
        choices = []
        for token in tokens:
            choices.append(int(step(inputs).argmax()))
            inputs = [token]
        return choices

    def _image_features(self, vision: onnx.BoundRunner, tiles: Tiles,
                        cancelled: Callable[[], bool]) -> np.ndarray | None:
        import numpy as np

        key = hashlib.blake2b(tiles.pixel_values.tobytes(), digest_size=16).digest()
        if self._features and self._features[0] == key:
            return self._features[1]
        mask_type = np.bool_ if vision.input_types["pixel_attention_mask"] == "tensor(bool)" else np.int64
        parts = []
        for start in range(0, len(tiles.pixel_values), TILE_BATCH):
            if cancelled():
                return None
            batch = tiles.pixel_values[start:start + TILE_BATCH]
            mask = np.ones((batch.shape[0], *batch.shape[2:]), dtype=mask_type)
            parts.append(vision.run({"pixel_values": batch, "pixel_attention_mask": mask}, ["image_features"])
                         ["image_features"])
        features = np.concatenate(parts).reshape(-1, parts[0].shape[-1])
        self._features = (key, features)
        return features

    def _stepper(self, runners: dict[str, onnx.BoundRunner], features: np.ndarray) -> Callable[[list[int]], Any]:
        """The decoding closure: it owns the key/value cache (device-resident OrtValues after step one)."""
        import numpy as np

        decoder = runners["decoder"]
        past: dict[str, Any] = {}
        for meta in decoder.session.get_inputs():
            if meta.name.startswith("past_key_values."):
                _, heads, _, head_dim = meta.shape
                dtype = np.float16 if meta.type == "tensor(float16)" else np.float32
                past[meta.name] = decoder.to_device(np.zeros((1, heads, 0, head_dim), dtype=dtype))
        state = {"length": 0}

        def step(tokens: list[int]) -> np.ndarray:
            ids = np.asarray([tokens], dtype=np.int64)
            embeds = runners["embed"].run({"input_ids": ids}, ["inputs_embeds"])["inputs_embeds"]
            if state["length"] == 0:
                where = ids[0] == self.image_token_id
                if int(where.sum()) != len(features):
                    raise UserError(f"The prompt has {int(where.sum())} image places but the image gave "
                                    f"{len(features)} features, so the model files do not belong together.",
                                    bundle.export_fix(self.manifest))
                embeds[0, where] = features.astype(embeds.dtype)
            start = state["length"]
            state["length"] += len(tokens)
            out = decoder.run({"inputs_embeds": embeds,
                               "attention_mask": np.ones((1, state["length"]), dtype=np.int64),
                               "position_ids": np.arange(start, state["length"], dtype=np.int64)[None],
                               **past}, ["logits"])
            for name in past:
                past[name] = out[name.replace("past_key_values.", "present.")]
            return out["logits"][0, -1]

        return step


def load(path: Path, manifest: dict, options: RuntimeOptions) -> SmolVLM:
    """The family entry point used by describe_screen.vlm.load_model."""
    return SmolVLM(path, manifest, options)
