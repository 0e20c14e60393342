"""Florence-2 on onnxruntime: captions and OCR from one small encoder-decoder, with no torch.

A request runs the vision encoder once (image -> 577 features), the BART encoder once over the image
features followed by the embedded task sentence, then the merged decoder one token at a time with its
key/value cache. Florence-2 is prompted with task tokens such as <CAPTION>, which the transformers
processor replaces by fixed English sentences before tokenising; TASK_SENTENCES mirrors that table.

The published files (onnx-community/Florence-2-base and -large, folder onnx/, run by transformers.js's
Florence2ForConditionalGeneration), whose names our exporter (describe_screen.export.florence2) shares:

- vision_encoder: pixel_values (batch, 3, 768, 768) -> image_features (batch, 577, d_model).
- embed_tokens: input_ids int64 -> inputs_embeds.
- encoder_model: inputs_embeds, attention_mask int64 -> last_hidden_state.
- decoder_model_merged: inputs_embeds, encoder_hidden_states, encoder_attention_mask int64,
  use_cache_branch bool (1,), past_key_values.{i}.decoder.key/.value and .encoder.key/.value
  (batch, heads, length, head_dim) -> logits, present.{i}.* ; step 0 runs with use_cache_branch false
  and empty pasts, later steps with true and the encoder presents of step 0.

Weight sets as for SmolVLM: fp32, _int8 (MatMulInteger), _q4 (MatMulNBits), _fp16 and _q4f16. Whether
onnx-community's _fp16 graphs keep any float32 input was not confirmed; our test bundles make them float16
throughout, and the runtime reads every input's type from its session, never assuming one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from describe_screen.errors import UserError
from describe_screen.i18n import _
from describe_screen.vlm import ASK, CAPTION_BRIEF, CAPTION_FULL, OCR, Request, onnx
from describe_screen.vlm.bundle import Graph
from describe_screen.vlm.decoding import Limits, Rules, Step, greedy, stream_text, teacher_forced
from describe_screen.vlm.manifest import repair_fix

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np
    from PIL.Image import Image
    from tokenizers import Tokenizer

    from describe_screen.ocr import TextLine
    from describe_screen.vlm.bundle import Bundle

# The transformers Florence2Processor's task table: a task token is never fed to the model itself.
TASK_SENTENCES = {
    "<OCR>": "What is the text in the image?",
    "<OCR_WITH_REGION>": "What is the text in the image, with regions?",
    "<CAPTION>": "What does the image describe?",
    "<DETAILED_CAPTION>": "Describe in detail what is shown in the image.",
    "<MORE_DETAILED_CAPTION>": "Describe with a paragraph what is shown in the image.",
}
DEFAULT_PROMPTS = {CAPTION_BRIEF: "<CAPTION>", CAPTION_FULL: "<DETAILED_CAPTION>", OCR: "<OCR>"}
VISION = Graph("vision_encoder.onnx", ("pixel_values",), ("image_features",))
EMBED = Graph("embed_tokens.onnx", ("input_ids",), ("inputs_embeds",))
ENCODER = Graph("encoder_model.onnx", ("inputs_embeds", "attention_mask"), ("last_hidden_state",))
DECODER = Graph("decoder_model_merged.onnx",
                ("inputs_embeds", "encoder_hidden_states", "encoder_attention_mask", "use_cache_branch"), ("logits",))
GRAPHS = (VISION, EMBED, ENCODER, DECODER)
LOC_BINS = 1000
MIN_SIDE = 8  # smaller captures are capture failures, not screens
_QUAD = re.compile(r"(.+?)" + r"<loc_(\d+)>" * 8)


def task_sentence(prompt: str) -> str:
    """What the processor sends for `prompt`: a known task token becomes its sentence, other text stays."""
    prompt = prompt.strip()
    if prompt in TASK_SENTENCES:
        return TASK_SENTENCES[prompt]
    if "<" in prompt and prompt.split(">")[0] + ">" in TASK_SENTENCES:
        raise UserError(_("The Florence-2 prompt {prompt!r} mixes a task token with other text.", prompt=prompt),
                        _("Use the task token alone, for example <CAPTION>."))
    return prompt


@dataclass
class Preprocess:
    """The image processor settings of preprocessor_config.json (CLIPImageProcessor for Florence-2)."""

    width: int = 768
    height: int = 768
    resample: int = 3  # bicubic
    rescale: float = 1 / 255
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)

    @classmethod
    def read(cls, read_json: Callable[[str, bool], dict], where: Path) -> Preprocess:
        """From preprocessor_config.json, or the "image_processor" part of processor_config.json, where
        transformers 5 saves it; `read_json(name, required)` reads a file of the folder `where`."""
        from describe_screen.vlm import images

        name = "preprocessor_config.json"
        data = read_json(name, False)
        if not data:
            name, data = "processor_config.json", read_json("processor_config.json", False).get("image_processor", {})
        try:
            size = data.get("size") or {}
            return cls(width=int(size.get("width", 768)), height=int(size.get("height", 768)),
                       resample=int(data.get("resample", 3)), rescale=float(data.get("rescale_factor", 1 / 255)),
                       mean=images.floats(data.get("image_mean", cls.mean)),
                       std=images.floats(data.get("image_std", cls.std)))
        except (AttributeError, TypeError, ValueError) as exc:
            raise UserError(_("The model file {name} in {where} is damaged: its image settings are unusable.",
                              name=name, where=where),
                            repair_fix(where)) from exc

    def pixels(self, image: Image) -> np.ndarray:
        """(1, 3, H, W) float32 equal to the transformers processor's pixel_values for the same image."""
        from describe_screen.vlm import images

        if min(image.size) < MIN_SIDE:
            raise UserError(_("The captured image is only {width} by {height} pixels, too small to describe.",
                              width=image.width, height=image.height),
                            _("Capture the screen or a larger window again."))
        # Shrinking first keeps a huge capture from being copied to RGB at full size; Pillow's reduce
        # only knows the common modes, so others (1-bit, palette) are converted first.
        if image.mode in ("RGB", "RGBA", "L", "LA"):
            rgb = images.to_rgb(images.shrink_huge(image))
        else:
            rgb = images.shrink_huge(images.to_rgb(image))
        resized = images.resize(rgb, self.width, self.height, self.resample)
        return images.normalise(resized, self.rescale, self.mean, self.std)[None]


def parse_regions(text: str, width: int, height: int) -> list[tuple[str, tuple[int, int, int, int]]]:
    """<OCR_WITH_REGION> output -> [(line, (left, top, right, bottom))] in image pixels.

    Each line is followed by 8 <loc_N> tokens, a quadrilateral in 1000 bins per axis; as in the
    transformers post-processor a bin maps to its centre, (N + 0.5) * side / 1000, truncated.
    """
    text = text.replace("<s>", "").replace("</s>", "").replace("<pad>", "")
    regions = []
    for match in _QUAD.finditer(text):
        bins = [int(b) for b in match.groups()[1:]]
        xs = [int((b + 0.5) * width / LOC_BINS) for b in bins[0::2]]
        ys = [int((b + 0.5) * height / LOC_BINS) for b in bins[1::2]]
        line = match.group(1).strip()
        if line:
            regions.append((line, (min(xs), min(ys), max(xs), max(ys))))
    return regions


class Florence2:
    """One Florence-2 bundle; sessions open on first use (bundle.Bundle) and are shared by every request."""

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self.options = bundle.options
        self.name = bundle.name
        self.prompts = {**DEFAULT_PROMPTS, **bundle.prompts}
        self.tasks = frozenset(t for t in (bundle.tasks or DEFAULT_PROMPTS) if t in self.prompts)
        # Settings are read now, so a damaged config is found when the model is opened, not mid-request.
        self.preprocess = Preprocess.read(bundle.json, bundle.path)
        self.generation = self._generation()
        self.heads = self._text("decoder_attention_heads", 12)
        self.head_dim = self._text("d_model", 768) // max(self.heads, 1)

    @property
    def tokenizer(self) -> Tokenizer:
        return self.bundle.tokenizer

    def _generation(self) -> tuple[int, frozenset[int], Rules]:
        """(decoder start token, end tokens, rules) from generation_config.json; beam search is not run."""
        def value(key: str, kind: Callable[[Any], Any], default: Any) -> Any:
            return self.bundle.value("generation_config.json", key, kind, default)

        eos = value("eos_token_id", lambda v: frozenset(int(i) for i in (v if isinstance(v, list) else [v])), {2})
        return (value("decoder_start_token_id", int, 2), frozenset(eos),
                Rules(forced_first=value("forced_bos_token_id", int, None),
                      no_repeat_ngram=value("no_repeat_ngram_size", int, 0)))

    def _text(self, key: str, default: int) -> int:
        """A BART setting (layers, heads, width), from text_config or, in older configs, the top level."""
        nested = isinstance(self.bundle.json("config.json", False).get("text_config"), dict)
        return self.bundle.value("config.json", f"text_config.{key}" if nested else key, int, default)

    # -- the VisionLanguageModel and TextReader interfaces ----------------------------------------------

    def provider(self) -> str:
        return onnx.main_provider(self.bundle.runner(DECODER).session)

    def warm_up(self) -> None:
        from PIL import Image as PILImage

        for _token in self.generate_ids(PILImage.new("RGB", (64, 64), "white"), "<CAPTION>", max_new_tokens=1):
            pass

    def stream(self, image: Image, request: Request, cancelled: Callable[[], bool]) -> Iterator[str]:
        if request.task not in self.tasks:
            wanted = _("answer questions") if request.task == ASK else _("do the task {task}", task=request.task)
            raise UserError(_("The Florence-2 model can only describe the screen and read its text; it cannot "
                              "{wanted}.",
                              wanted=wanted), _("Use a model that answers questions for it: see describe-screen "
                                            "models list."))
        ids = self.generate_ids(image, self.prompts[request.task], cancelled=cancelled)
        yield from stream_text(self.tokenizer, ids)

    def iter_lines(self, image: Image, cancelled: Callable[[], bool] = lambda: False,
                   unread: set[str] | None = None) -> Iterator[TextLine]:
        """Text lines with boxes from <OCR_WITH_REGION>, each yielded as soon as its 8 coordinates are out.
        (`unread` stays empty: the model tells no line it could not read.)

        The vlm.TextReader interface (with warm_up and provider), so the daemon can use Florence-2 as its
        text reader. Lines come in the order the model writes them, which is reading order for screens;
        the model gives no confidence, so score is 1.
        """
        from describe_screen.ocr import TextLine

        tokenizer = self.tokenizer
        ids: list[int] = []
        locs = 0
        for token in self.generate_ids(image, "<OCR_WITH_REGION>", cancelled=cancelled):
            ids.append(token)
            locs += (tokenizer.id_to_token(token) or "").startswith("<loc_")
            if locs == 8:
                text = tokenizer.decode(ids, skip_special_tokens=False)
                for line, box in parse_regions(text, image.width, image.height):
                    yield TextLine(line, box, 1.0)
                ids, locs = [], 0

    def read(self, image: Image) -> list[TextLine]:
        return list(self.iter_lines(image))

    def ocr_regions(self, image: Image, cancelled: Callable[[], bool] = lambda: False,
                    ) -> list[tuple[str, tuple[int, int, int, int]]]:
        """Text lines with their boxes (left, top, right, bottom) in the pixels of `image`."""
        return [(line.text, line.box) for line in self.iter_lines(image, cancelled)]

    # -- inference ------------------------------------------------------------------------------------

    def prompt_ids(self, prompt: str) -> list[int]:
        """<s> + the tokenised task sentence + </s>, as the processor builds after the image tokens."""
        tokenizer = self.tokenizer
        bos, eos = tokenizer.token_to_id("<s>"), tokenizer.token_to_id("</s>")
        return [bos, *tokenizer.encode(task_sentence(prompt), add_special_tokens=False).ids, eos]

    def pixels(self, image: Image) -> np.ndarray:
        """(1, 3, H, W) float32 equal to the transformers processor's pixel_values for the same image."""
        return self.preprocess.pixels(image)

    def encode_image(self, pixels: np.ndarray) -> np.ndarray:
        """The vision encoder's (1, 577, d) image features."""
        return self.bundle.runner(VISION).run({"pixel_values": pixels}, VISION.outputs)["image_features"]

    def encode_prompt(self, features: np.ndarray, prompt: str) -> np.ndarray:
        """The BART encoder's output over [image features, prompt embeddings]: (1, 577 + prompt, d)."""
        import numpy as np

        ids = np.asarray([self.prompt_ids(prompt)], dtype=np.int64)
        text = self.bundle.runner(EMBED).run({"input_ids": ids}, EMBED.outputs)["inputs_embeds"]
        embeds = np.concatenate([features.astype(np.float32), text.astype(np.float32)], axis=1)
        mask = np.ones(embeds.shape[:2], dtype=np.int64)
        return self.bundle.runner(ENCODER).run({"inputs_embeds": embeds, "attention_mask": mask},
                                               ENCODER.outputs)["last_hidden_state"]

    def generate_ids(self, image: Image, prompt: str, max_new_tokens: int | None = None,
                     cancelled: Callable[[], bool] = lambda: False, limits: Limits | None = None) -> Iterator[int]:
        """Greedy token ids for `prompt` (a task token or plain text) about `image`, EOS excluded.

        `limits` replaces the stopping rules (the benchmark forces an exact token count with it)."""
        try:
            start, eos, rules = self.generation
            hidden = self.encode_prompt(self.encode_image(self.pixels(image)), prompt)
            limits = limits or Limits(max_new_tokens=max_new_tokens or self.options.max_new_tokens, eos_ids=eos)
            yield from greedy(self.decoder_step(hidden), [start], limits, cancelled, rules)
        except UserError:
            raise
        except Exception as exc:  # onnxruntime raises private types; the daemon must hear a sentence
            raise UserError(_("The Florence-2 model failed while working on the image ({kind}).",
                              kind=type(exc).__name__),
                            _("Try again; if it keeps failing, check the model with: describe-screen models "
                              "verify {name}.",
                              name=self.name)) from exc

    def forced_choices(self, image: Image, prompt: str, tokens: list[int]) -> list[int]:
        """decoding.teacher_forced for one prompt: this model's pick at each position of `tokens`."""
        start, _, rules = self.generation
        hidden = self.encode_prompt(self.encode_image(self.pixels(image)), prompt)
        return teacher_forced(self.decoder_step(hidden), [start], tokens, rules)

    def decoder_step(self, hidden: np.ndarray) -> Step:
        """The decoding closure for `greedy`: feeds tokens, keeps the cache. Step 0 runs with
        use_cache_branch false, which computes the cross-attention cache from `hidden`; later steps pass
        that cache back with true."""
        import numpy as np

        embed, runner = self.bundle.runner(EMBED), self.bundle.runner(DECODER)
        feeds: dict[str, Any] = {"encoder_hidden_states": runner.to_device(hidden, "encoder_hidden_states"),
                                 "encoder_attention_mask": np.ones(hidden.shape[:2], dtype=np.int64),
                                 "use_cache_branch": np.array([False]),
                                 **runner.empty_cache(self.heads, self.head_dim)}

        def step(tokens: list[int]) -> np.ndarray:
            ids = np.asarray([tokens], dtype=np.int64)
            feeds["inputs_embeds"] = embed.run({"input_ids": ids}, EMBED.outputs)["inputs_embeds"]
            out = runner.run(feeds, to_host=["logits"])
            first = not feeds["use_cache_branch"][0]
            for name, value in out.items():
                if name.startswith("present.") and (first or ".encoder." not in name):
                    feeds["past_key_values." + name[len("present."):]] = value
            feeds["use_cache_branch"] = np.array([True])
            return out["logits"][0, -1].astype(np.float32)

        return step
