"""Florence-2 on onnxruntime: captions and OCR from one small encoder-decoder, with no torch.

A request runs the vision encoder once (image -> 577 features), the BART encoder once over the image
features followed by the embedded task sentence, then the merged decoder one token at a time with its
key/value cache (see describe_screen.export.florence2 for the graph layout, shared with onnx-community).
Florence-2 is prompted with task tokens such as <CAPTION>, which the transformers processor replaces
by fixed English sentences before tokenising; TASK_SENTENCES mirrors that table.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from describe_screen.errors import UserError
from describe_screen.vlm import ASK, CAPTION_BRIEF, CAPTION_FULL, OCR, Request, RuntimeOptions, onnx
from describe_screen.vlm import bundle as bundle_files
from describe_screen.vlm.decoding import Limits, greedy, stream_text

if TYPE_CHECKING:
    import numpy as np
    from PIL.Image import Image

    from describe_screen.ocr import TextLine

# The transformers Florence2Processor's task table: a task token is never fed to the model itself.
TASK_SENTENCES = {
    "<OCR>": "What is the text in the image?",
    "<OCR_WITH_REGION>": "What is the text in the image, with regions?",
    "<CAPTION>": "What does the image describe?",
    "<DETAILED_CAPTION>": "Describe in detail what is shown in the image.",
    "<MORE_DETAILED_CAPTION>": "Describe with a paragraph what is shown in the image.",
}
DEFAULT_PROMPTS = {CAPTION_BRIEF: "<CAPTION>", CAPTION_FULL: "<DETAILED_CAPTION>", OCR: "<OCR>"}
VISION, EMBED, ENCODER, DECODER = ("vision_encoder.onnx", "embed_tokens.onnx", "encoder_model.onnx",
                                   "decoder_model_merged.onnx")
LOC_BINS = 1000
MIN_SIDE = 8  # smaller captures are capture failures, not screens
_QUAD = re.compile(r"(.+?)" + r"<loc_(\d+)>" * 8)


def load(bundle: Path, manifest: dict, options: RuntimeOptions) -> Florence2:
    return Florence2(bundle, manifest, options)


def task_sentence(prompt: str) -> str:
    """What the processor sends for `prompt`: a known task token becomes its sentence, other text stays."""
    prompt = prompt.strip()
    if prompt in TASK_SENTENCES:
        return TASK_SENTENCES[prompt]
    if "<" in prompt and prompt.split(">")[0] + ">" in TASK_SENTENCES:
        raise UserError(f"The Florence-2 prompt {prompt!r} mixes a task token with other text.",
                        "Use the task token alone, for example <CAPTION>.")
    return prompt


def choose_precision(precision: str, available: list[str], provider: str) -> str:
    """The weight set to run: what the settings ask for, else fp16 on a requested GPU and int8 on the CPU.

    "auto" never picks fp16 on a GPU that is merely listed: onnxruntime-gpu lists CUDA on machines
    without one, and fp16 graphs crawl on the CPU.
    """
    if precision != "auto":
        if precision not in available:
            raise UserError(f"The Florence-2 model has no {precision} weights; it has {', '.join(available)}.",
                            f"Set models.precision to auto or {available[0]}, or export the model again "
                            f"with that precision.")
        return precision
    order = ("fp16", "int8", "fp32") if provider == "cuda" else ("int8", "fp32", "fp16")
    return next(p for p in order if p in available)


def file_for(base: str, precision: str) -> str:
    return base if precision == "fp32" else base.replace(".onnx", f"_{precision}.onnx")


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
    def read(cls, bundle: Path) -> Preprocess:
        """From preprocessor_config.json, or the "image_processor" part of processor_config.json, where
        transformers 5 saves it."""
        data = _read_json(bundle / "preprocessor_config.json") or \
            _read_json(bundle / "processor_config.json").get("image_processor", {})
        size = data.get("size") or {}
        return cls(width=int(size.get("width", 768)), height=int(size.get("height", 768)),
                   resample=int(data.get("resample", 3)), rescale=float(data.get("rescale_factor", 1 / 255)),
                   mean=tuple(data.get("image_mean", cls.mean)), std=tuple(data.get("image_std", cls.std)))

    def pixels(self, image: Image) -> np.ndarray:
        """(1, 3, H, W) float32 equal to the transformers processor's pixel_values for the same image."""
        from describe_screen.vlm import images

        if min(image.size) < MIN_SIDE:
            raise UserError(f"The captured image is only {image.width} by {image.height} pixels, too small "
                            "to describe.", "Capture the screen or a larger window again.")
        # Shrinking first keeps a huge capture from being copied to RGB at full size; Pillow's reduce
        # only knows the common modes, so others (1-bit, palette) are converted first.
        if image.mode in ("RGB", "RGBA", "L", "LA"):
            rgb = images.to_rgb(images.shrink_huge(image))
        else:
            rgb = images.shrink_huge(images.to_rgb(image))
        resized = images.resize(rgb, self.width, self.height, self.resample)
        return images.normalise(resized, self.rescale, self.mean, self.std)[None]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise UserError(f"The model file {path.name} in {path.parent} is damaged: {exc}.",
                        "Export the model again with: describe-screen models export NAME.") from exc


def _text_config(bundle: Path) -> dict[str, Any]:
    """The BART settings (layers, heads, width) the decoder's cache shapes follow."""
    config = _read_json(bundle / "config.json")
    return config.get("text_config") or config


@dataclass
class Generation:
    """The parts of generation_config.json greedy decoding honours (beam search is not run)."""

    decoder_start: int = 2
    eos: frozenset[int] = frozenset({2})
    forced_bos: int | None = 0
    no_repeat_ngram: int = 3

    @classmethod
    def read(cls, bundle: Path) -> Generation:
        data = _read_json(bundle / "generation_config.json")
        eos = data.get("eos_token_id", 2)
        return cls(decoder_start=int(data.get("decoder_start_token_id", 2)),
                   eos=frozenset(eos if isinstance(eos, list) else [eos]),
                   forced_bos=data.get("forced_bos_token_id"),
                   no_repeat_ngram=int(data.get("no_repeat_ngram_size") or 0))


def banned_by_ngrams(ids: list[int], n: int) -> list[int]:
    """Tokens that would repeat an n-gram already in `ids` (transformers' no_repeat_ngram_size)."""
    if n <= 0 or len(ids) + 1 < n:
        return []
    prefix = tuple(ids[len(ids) - n + 1:])
    return [ids[i + n - 1] for i in range(len(ids) - n + 1) if tuple(ids[i:i + n - 1]) == prefix]


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
    """One Florence-2 bundle; sessions open on first use and are shared by every request."""

    def __init__(self, bundle: Path, manifest: dict, options: RuntimeOptions) -> None:
        self.bundle = bundle
        self.manifest = manifest
        self.options = options
        self.name = str(manifest.get("name", bundle.name))
        self.prompts = {**DEFAULT_PROMPTS, **(manifest.get("prompts") or {})}
        self.tasks = frozenset(t for t in manifest.get("tasks", DEFAULT_PROMPTS) if t in self.prompts)
        self.precision = choose_precision(options.precision, list(manifest.get("precisions") or ["fp32"]),
                                          options.provider)
        self._lock = threading.Lock()
        self._sessions: dict[str, Any] = {}

    # -- loading -------------------------------------------------------------------------------------

    def _load(self) -> dict[str, Any]:
        with self._lock:
            if not self._sessions:
                self._sessions = self._open()
            return self._sessions

    def _open(self) -> dict[str, Any]:
        from tokenizers import Tokenizer

        files = {base: file_for(base, self.precision) for base in (VISION, ENCODER, DECODER)}
        files[EMBED] = EMBED if EMBED in (self.manifest.get("files") or {}) else file_for(EMBED, self.precision)
        support = [n for n in ("tokenizer.json", "config.json", "generation_config.json", "preprocessor_config.json",
                               "processor_config.json") if n in (self.manifest.get("files") or {})]
        bundle_files.check_bundle(self.bundle, self.manifest, only=[*files.values(), *support])
        try:
            tokenizer = Tokenizer.from_file(str(self.bundle / "tokenizer.json"))
        except Exception as exc:  # tokenizers raises a bare Exception for unreadable files
            raise UserError(f"The tokenizer of the model in {self.bundle} cannot be read.",
                            bundle_files.export_fix(self.manifest)) from exc
        provider, threads = self.options.provider, self.options.threads

        def session(base: str, inputs: list[str]) -> Any:
            return bundle_files.open_session(self.bundle, self.manifest, files[base], inputs, provider, threads)

        text = _text_config(self.bundle)
        layers = int(text.get("decoder_layers", 6))
        heads = int(text.get("decoder_attention_heads", 12))
        past = {f"past_key_values.{i}.{part}.{kind}": (heads, int(text.get("d_model", 768)) // heads)
                for i in range(layers) for part in ("decoder", "encoder") for kind in ("key", "value")}
        decoder_inputs = ["inputs_embeds", "encoder_hidden_states", "encoder_attention_mask", "use_cache_branch",
                          *past]
        return {
            "tokenizer": tokenizer,
            "preprocess": Preprocess.read(self.bundle),
            "generation": Generation.read(self.bundle),
            "vision": session(VISION, ["pixel_values"]),
            "embed": session(EMBED, ["input_ids"]),
            "encoder": session(ENCODER, ["inputs_embeds", "attention_mask"]),
            "decoder": onnx.BoundRunner(session(DECODER, decoder_inputs)),
            "past": past,
        }

    # -- the VisionLanguageModel interface -------------------------------------------------------------

    def provider(self) -> str:
        return onnx.main_provider(self._load()["decoder"].session)

    def warm_up(self) -> None:
        from PIL import Image as PILImage

        for _ in self.generate_ids(PILImage.new("RGB", (64, 64), "white"), "<CAPTION>", max_new_tokens=1):
            pass

    def stream(self, image: Image, request: Request, cancelled: Callable[[], bool]) -> Iterator[str]:
        if request.task not in self.tasks:
            wanted = "answer questions" if request.task == ASK else f"do the task {request.task}"
            raise UserError(f"The Florence-2 model can only describe the screen and read its text; it cannot "
                            f"{wanted}.", "Use a model that answers questions, such as SmolVLM: "
                            "describe-screen models export smolvlm-256m-instruct.")
        ids = self.generate_ids(image, self.prompts[request.task], cancelled=cancelled)
        yield from stream_text(self._load()["tokenizer"], ids)

    def iter_lines(self, image: Image, cancelled: Callable[[], bool] = lambda: False) -> Iterator[TextLine]:
        """Text lines with boxes from <OCR_WITH_REGION>, each yielded as soon as its 8 coordinates are out.

        The same interface as describe_screen.ocr.TextRecognizer (with warm_up and provider), so the
        daemon can use Florence-2 as its text reader. Lines come in the order the model writes them,
        which is reading order for screens; the model gives no confidence, so score is 1.
        """
        from describe_screen.ocr import TextLine

        tokenizer = self._load()["tokenizer"]
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
        tokenizer = self._load()["tokenizer"]
        bos, eos = tokenizer.token_to_id("<s>"), tokenizer.token_to_id("</s>")
        return [bos, *tokenizer.encode(task_sentence(prompt), add_special_tokens=False).ids, eos]

    def encode(self, image: Image, prompt: str) -> np.ndarray:
        """The BART encoder's output over [image features, prompt embeddings]: (1, 577 + prompt, d)."""
        import numpy as np

        s = self._load()
        pixels = s["preprocess"].pixels(image)
        features = s["vision"].run(["image_features"], {"pixel_values": pixels})[0]
        ids = np.asarray([self.prompt_ids(prompt)], dtype=np.int64)
        text = s["embed"].run(["inputs_embeds"], {"input_ids": ids})[0]
        embeds = np.concatenate([features, text.astype(features.dtype)], axis=1)
        mask = np.ones(embeds.shape[:2], dtype=np.int64)
        return s["encoder"].run(["last_hidden_state"], {"inputs_embeds": embeds, "attention_mask": mask})[0]

    def generate_ids(self, image: Image, prompt: str, max_new_tokens: int | None = None,
                     cancelled: Callable[[], bool] = lambda: False, limits: Limits | None = None) -> Iterator[int]:
        """Greedy token ids for `prompt` (a task token or plain text) about `image`, EOS excluded.

        `limits` replaces the stopping rules (the benchmark forces an exact token count with it)."""
        s = self._load()
        gen: Generation = s["generation"]
        try:
            hidden = self.encode(image, prompt)
            step = self._decoder_step(hidden, gen)
            limits = limits or Limits(max_new_tokens=max_new_tokens or self.options.max_new_tokens, eos_ids=gen.eos)
            yield from greedy(step, [gen.decoder_start], limits, cancelled)
        except UserError:
            raise
        except Exception as exc:  # onnxruntime raises private types; the daemon must hear a sentence
            raise UserError(f"The Florence-2 model failed while working on the image ({type(exc).__name__}).",
                            f"Try again; if it keeps failing, check the model with: describe-screen models "
                            f"verify {self.name}.") from exc

    def _decoder_step(self, hidden: np.ndarray, gen: Generation) -> Callable[[list[int]], np.ndarray]:
        """A closure for decoding.greedy: feeds one token, keeps the cache, applies forced BOS and the
        no-repeat-n-gram ban so greedy's argmax equals transformers' greedy generate."""
        import numpy as np

        s = self._load()
        runner: onnx.BoundRunner = s["decoder"]
        mask = np.ones(hidden.shape[:2], dtype=np.int64)
        feeds: dict[str, Any] = {"encoder_hidden_states": runner.to_device(hidden),
                                 "encoder_attention_mask": mask, "use_cache_branch": np.array([False])}
        for name, (heads, head_dim) in s["past"].items():
            feeds[name] = np.zeros((1, heads, 0, head_dim), np.float32)
        history: list[int] = []

        def step(tokens: list[int]) -> np.ndarray:
            history.extend(tokens)
            ids = np.asarray([tokens], dtype=np.int64)
            feeds["inputs_embeds"] = s["embed"].run(["inputs_embeds"], {"input_ids": ids})[0]
            out = runner.run(feeds, to_host=["logits"])
            first = not feeds["use_cache_branch"][0]
            for name, value in out.items():
                if name.startswith("present.") and (first or ".encoder." not in name):
                    feeds["past_key_values." + name[len("present."):]] = value
            feeds["use_cache_branch"] = np.array([True])
            logits = out["logits"][0, -1].astype(np.float32)
            generated = history[1:]
            if not generated and gen.forced_bos is not None:
                forced = np.full_like(logits, -np.inf)
                forced[gen.forced_bos] = 0.0
                return forced
            logits[banned_by_ngrams(history, gen.no_repeat_ngram)] = -np.inf
            return logits

        return step
