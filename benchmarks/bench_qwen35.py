"""Qwen3.5-0.8B (or 2B) on this machine: our ONNX runtime, PyTorch eager and llama.cpp on the same weights.

The model has the published architecture (ARCH below, from the published config.json files) with
random weights: speed depends on shapes, not training. Its tokenizer is byte-level BPE with Qwen3.5's
split rule, trained here on the machine's licence texts, padded to the real vocabulary with the real
special tokens at their real ids (so prompts, image tokens and the 248,320-row embedding and output
layer have the published sizes). The picture is a 1280x720 screen, the prompt the brief caption;
`--tokens` new tokens are forced on every engine (no end token). Engines:

- ours: describe-screen's qwen3.5 family on the bundle our exporter writes from the checkpoint (q4,
  published -OPT layout), q4 on the CPU (MatMulNBits; the int8-product copies derived at install), through
  its own token_ids (what stream() speaks), from the PIL image to the last piece;
- PyTorch: transformers' Qwen3_5ForConditionalGeneration, fp32, eager, generate() from the PIL image
  (Qwen2-VL image processor, chat template, image-pad expansion), phases marked by hooks;
- llama.cpp: its own convert_hf_to_gguf.py (f16 text model, `--mmproj` projector f16), llama-quantize to
  Q4_0 and Q4_K_M, served by llama-server (tests/llama_cpp.py, built without AMX, see its FLAGS) and
  asked as bench_server.py does; vision ms from its log's timestamps (llama_vision_ms: image preprocessing
  and encoding), prefill = its prompt time less that, first token when the first streamed piece arrives.

First words: random weights write no sentences, so the time to the first spoken words is taken as the
time at which the FIRST_WORDS_TOKENS-th new token has arrived (on every engine: ours and PyTorch when the
token is chosen, llama.cpp when the streamed piece carrying it arrives). Speech starts the first
utterance at a clause break once it has four words (speech.first_utterance); a first clause such as "A
file manager window with two panes," is about 8 tokens in a 248k-token English BPE like Qwen3.5's (about
one a common word, one for the comma): the column is the first token plus seven decode steps, what such a
clause costs before speech can start (the synthesiser's own start is not in it).

Image tokens: `--image-tokens default,96,256,480` runs every engine at each cap. A number N caps every
engine at N*32*32 pixels (llama.cpp's `--image-max-tokens N`, the Qwen2-VL processor's max_pixels, our
runtime's pixel budget for the brief caption): 96, 256 and 480 are our runtime's budgets for a brief
caption, a question and a detailed description (vlm/qwen35.py VISUAL_TOKENS; a 1280x720 screen gives
91, 252 and 464 tokens). "default" is what each engine does on its own: llama.cpp's 4096-token cap and
the processor's published max_pixels (a 1280x720 screen is 920 tokens), ours its brief budget.

Each engine stays loaded in its own process; rounds go ours, PyTorch, Q4_0, Q4_K_M, ours, ... so the
load of a shared machine falls on all alike; the table gives medians and [min-max] and each peer's
median ratio to ours per round. Peak RSS is each process's VmHWM. Load: warm, from a fresh process to
ready (files in the page cache), once per engine.

    .venv/bin/python benchmarks/bench_qwen35.py [--size 0.8b|2b] [--work DIR] [--rounds 5] [--tokens 60]
        [--image-tokens default,96,256,480] [--engines ours,torch,q4_0,q4_k_m] [--threads N]

The checkpoint (3.4 GB for 0.8B, 8.8 GB for 2B: fp32 safetensors), our q4 bundle and the GGUF files are
built once into --work.
CPU-heavy: the PyTorch runs alone take minutes per round on two cores.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path[:0] = [str(ROOT), str(ROOT.parent / "tests")]

import bench_server  # noqa: E402  (found through the path above)
from bench_server import vm_hwm_mb  # noqa: E402

# Qwen/Qwen3.5-0.8B and -2B config.json: what differs between the sizes (COMMON_* below is shared).
ARCH = {
    "0.8b": {"text": {"hidden_size": 1024, "intermediate_size": 3584},
             "vision": {"depth": 12, "hidden_size": 768, "intermediate_size": 3072, "num_heads": 12,
                        "out_hidden_size": 1024}},
    "2b": {"text": {"hidden_size": 2048, "intermediate_size": 6144},
           "vision": {"depth": 24, "hidden_size": 1024, "intermediate_size": 4096, "num_heads": 16,
                      "out_hidden_size": 2048}},
}
COMMON_TEXT = {
    "vocab_size": 248320, "num_hidden_layers": 24, "num_attention_heads": 8, "num_key_value_heads": 2,
    "head_dim": 256, "linear_num_key_heads": 16, "linear_num_value_heads": 16, "linear_key_head_dim": 128,
    "linear_value_head_dim": 128, "linear_conv_kernel_dim": 4, "hidden_act": "silu", "rms_norm_eps": 1e-6,
    "max_position_embeddings": 262144, "tie_word_embeddings": True, "eos_token_id": 248044,
    "rope_parameters": {"rope_type": "default", "rope_theta": 10000000.0, "partial_rotary_factor": 0.25,
                        "mrope_section": [11, 11, 10], "mrope_interleaved": True},
}
COMMON_VISION = {"patch_size": 16, "temporal_patch_size": 2, "spatial_merge_size": 2, "in_channels": 3,
                 "num_position_embeddings": 2304, "hidden_act": "gelu_pytorch_tanh", "deepstack_visual_indexes": []}
# preprocessor_config.json of both repos (Qwen2-VL image processor semantics).
PIXELS_PER_TOKEN = 32 * 32  # one merged image token covers 2x2 patches of 16x16
MIN_PIXELS, MAX_PIXELS = 65536, 16777216
# Qwen3.5's special tokens, first id 248044 (<|endoftext|>); image_pad is 248056, <|im_end|> 248046.
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
           "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
           "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>",
           "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>", "<tool_response>",
           "</tool_response>", "<think>", "</think>"]
FIRST_SPECIAL = 248044
# transformers' Qwen3_5Tokenizer split rule (llama.cpp's "qwen35" pre-tokenizer is the same expression).
SPLIT = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*"""
         r"""|\s*[\r\n]+|\s+(?!\S)|\s+""")
TRAINED_VOCAB = 16000
LICENCES = Path("/usr/share/common-licenses")  # Debian's base-files: the same English text on every machine
LLAMA_WEIGHTS = ("q4_0", "q4_k_m")
FIRST_WORDS_TOKENS = 8  # a first clause of about six words and its comma (see the module docstring)


# --- the checkpoint ---------------------------------------------------------------------------------

def build_tokenizer(out_dir: Path) -> None:
    """Byte-level BPE with Qwen3.5's normaliser, split rule and decoder, TRAINED_VOCAB tokens learnt from
    the licence texts, then never-produced fillers up to FIRST_SPECIAL and the special tokens there."""
    from tiny import CORPUS
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from describe_screen.export.qwen35 import CHAT_TEMPLATE

    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tokenizer.decoder = decoders.ByteLevel()
    texts = [p.read_text(encoding="utf-8", errors="replace") for p in sorted(LICENCES.rglob("*")) if p.is_file()]
    trainer = trainers.BpeTrainer(vocab_size=TRAINED_VOCAB, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tokenizer.train_from_iterator([CORPUS, *texts], trainer)
    data = json.loads(tokenizer.to_str())
    vocab = data["model"]["vocab"]
    for index in range(len(vocab), FIRST_SPECIAL):
        vocab[f"\u0120unused{index}"] = index  # " unusedN": plain text, no merge ever makes it
    padded = Tokenizer.from_str(json.dumps(data))
    padded.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL])
    assert padded.token_to_id("<|image_pad|>") == 248056 and padded.token_to_id("<|im_end|>") == 248046
    hf = PreTrainedTokenizerFast(tokenizer_object=padded, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    hf.chat_template = CHAT_TEMPLATE  # the published one (thinking opt-in, as the small sizes ship)
    hf.save_pretrained(out_dir)


def build_checkpoint(out_dir: Path, size: str, seed: int = 0) -> Path:
    """The random-weight Qwen3.5 of `size` in a Hugging Face repo's layout (config, safetensors, tokenizer,
    preprocessor config): what every engine converts or loads. Deterministic (fixed seed)."""
    import torch
    from transformers import Qwen3_5Config, Qwen3_5ForConditionalGeneration

    if (out_dir / "model.safetensors").is_file() or (out_dir / "model.safetensors.index.json").is_file():
        return out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    build_tokenizer(out_dir)
    config = Qwen3_5Config(
        text_config={**COMMON_TEXT, **ARCH[size]["text"]}, vision_config={**COMMON_VISION, **ARCH[size]["vision"]},
        tie_word_embeddings=True)
    torch.manual_seed(seed)
    model = Qwen3_5ForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = [248046, 248044]
    model.generation_config.pad_token_id = 248044
    model.save_pretrained(out_dir)
    processor = {"image_processor_type": "Qwen2VLImageProcessor", "patch_size": 16, "temporal_patch_size": 2,
                 "merge_size": 2, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
                 "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True, "do_resize": True,
                 "do_convert_rgb": True, "resample": 3,
                 "size": {"shortest_edge": MIN_PIXELS, "longest_edge": MAX_PIXELS}}
    (out_dir / "preprocessor_config.json").write_text(json.dumps(processor, indent=1), encoding="utf-8")
    return out_dir


def max_pixels(image_tokens: str) -> int:
    return MAX_PIXELS if image_tokens == "default" else int(image_tokens) * PIXELS_PER_TOKEN


# --- the prompt and the picture (the same on every engine) -------------------------------------------

def prompt(size: str) -> str:
    """The brief caption as our qwen3.5 bundle asks it (its manifest's prompt, no grounding text)."""
    from describe_screen import models
    from describe_screen.vlm import CAPTION_BRIEF, Request, user_texts

    return user_texts(Request(task=CAPTION_BRIEF), models.manifest(f"qwen3.5-{size}").prompts)[0]


def messages_for(image_part: dict, size: str) -> list[dict]:
    return [{"role": "user", "content": [image_part, {"type": "text", "text": prompt(size)}]}]


def capture(number: int):
    """The screen as the `number`th capture: a corner square changes, so no engine can reuse an earlier
    image's features (a new hotkey press is a new picture)."""
    from bench_smolvlm import screen
    from PIL import ImageDraw

    image = screen()
    ImageDraw.Draw(image).rectangle((0, 0, 31, 31), fill=(number % 256, number // 256 % 256, 99))
    return image


# --- ours ----------------------------------------------------------------------------------------------

def prepare_bundle(source: Path, work: Path, size: str) -> Path:
    """Our exporter's q4 bundle of the checkpoint (the published layout, installed as `models install` stores
    it; the CPU runs q4, and the 2B's fp32 set would add 9 GB); the int8-product copies are derived at the
    first load, as at install."""
    import dataclasses

    from describe_screen import models
    from describe_screen.export import export_model

    bundle = work / "models" / f"bench-qwen3.5-{size}"
    if not (bundle / "manifest.json").is_file():
        started = time.perf_counter()
        bundle.parent.mkdir(parents=True, exist_ok=True)
        manifest = dataclasses.replace(models.manifest(f"qwen3.5-{size}"), name=bundle.name)
        export_model(manifest, bundle, "int8", source=source)  # this family's integer set is q4
        print(f"export (q4): {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return bundle


def ours_worker(bundle: Path, image_tokens: str, tokens: int, threads: int, size: str) -> None:
    """Stay loaded; per stdin line describe a new capture through the family's own token_ids (the path
    `stream()` takes) and print the timings as JSON. The brief caption's pixel budget is set to the race's
    image-token cap ("default": the runtime's own brief budget); vision is timed around encode_image."""
    from describe_screen.vlm import CAPTION_BRIEF, Request, RuntimeOptions, load_model, qwen35
    from describe_screen.vlm.decoding import Limits, stream_text

    if image_tokens != "default":
        qwen35.VISUAL_TOKENS[CAPTION_BRIEF] = int(image_tokens)
    started = time.perf_counter()
    model = load_model(bundle, RuntimeOptions(provider="cpu", precision="q4", threads=threads))
    model.vision(), model.bundle.runner(qwen35.EMBED), model.decoder()
    load_s = time.perf_counter() - started
    marks: dict[str, float] = {}
    encode = model.encode_image

    def timed_encode(*args):
        marks["vision_start"] = time.perf_counter()
        out = encode(*args)
        marks["vision_end"] = time.perf_counter()
        return out

    model.encode_image = timed_encode
    request = Request(task=CAPTION_BRIEF)
    limits = Limits(max_new_tokens=tokens, repeat_span=0)  # no end token, no loop stop: `tokens` tokens
    patches = model.patches(capture(0), CAPTION_BRIEF)
    count = patches.grid[1] * patches.grid[2] // model.merge ** 2
    prompt_tokens = len(model.image_ids(patches)) + len(model.turn_ids(request))
    print(json.dumps({"ready": True, "load_s": load_s, "label": f"q4 ({model.decoder().label})"}), flush=True)
    stamps: list[float] = []

    def ids(image):
        for token in model.token_ids(image, request, lambda: False, limits):
            stamps.append(time.perf_counter())
            yield token

    for number, _ in enumerate(sys.stdin, start=1):
        image = capture(number)
        stamps.clear()
        t0 = time.perf_counter()
        for _ in stream_text(model.tokenizer, ids(image)):
            pass
        end = time.perf_counter()
        print(json.dumps({
            "image_tokens": count, "prompt_tokens": prompt_tokens, "tokens": len(stamps),
            "vision_ms": (marks["vision_end"] - marks["vision_start"]) * 1e3,
            "prefill_ms": (stamps[0] - marks["vision_end"]) * 1e3,
            "ms_per_token": (stamps[-1] - stamps[0]) * 1e3 / max(len(stamps) - 1, 1),
            "ttft_s": stamps[0] - t0, "first_words_s": first_words(stamps, t0), "total_s": end - t0,
            "peak_rss_mb": vm_hwm_mb()}), flush=True)


def first_words(stamps: list[float], t0: float) -> float | None:
    """Seconds from t0 to the FIRST_WORDS_TOKENS-th token's arrival (None when fewer came)."""
    return stamps[FIRST_WORDS_TOKENS - 1] - t0 if len(stamps) >= FIRST_WORDS_TOKENS else None


# --- PyTorch -------------------------------------------------------------------------------------------

def torch_worker(source: Path, image_tokens: str, tokens: int, threads: int, size: str) -> None:
    """Stay loaded; per stdin line: generate() `tokens` tokens from the PIL image, phases marked by a hook
    on the vision tower and a logits processor (called once per new token, right after its forward)."""
    import torch
    from transformers import AutoTokenizer, LogitsProcessor, LogitsProcessorList, Qwen3_5ForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    torch.set_num_threads(threads)
    started = time.perf_counter()
    model = Qwen3_5ForConditionalGeneration.from_pretrained(source, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(source)
    processor = Qwen2VLImageProcessorPil.from_pretrained(source, max_pixels=max_pixels(image_tokens))
    load_s = time.perf_counter() - started
    marks: dict[str, float] = {}
    model.model.visual.register_forward_pre_hook(lambda *_: marks.__setitem__("vision_start", time.perf_counter()))
    model.model.visual.register_forward_hook(lambda *_: marks.__setitem__("vision_end", time.perf_counter()))
    stamps: list[float] = []

    class Stamp(LogitsProcessor):
        def __call__(self, input_ids, scores):
            stamps.append(time.perf_counter())
            return scores

    template = tokenizer.apply_chat_template(messages_for({"type": "image"}, size), tokenize=False,
                                             add_generation_prompt=True)
    print(json.dumps({"ready": True, "load_s": load_s, "label": f"PyTorch {torch.__version__} eager"}), flush=True)
    for number, _ in enumerate(sys.stdin, start=1):
        image = capture(number)
        stamps.clear()
        t0 = time.perf_counter()
        pixels = processor(images=[image], return_tensors="pt")
        grid = pixels["image_grid_thw"]
        count = int(grid.prod()) // 4
        ids = tokenizer(template.replace("<|image_pad|>", "<|image_pad|>" * count), return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**ids, pixel_values=pixels["pixel_values"], image_grid_thw=grid,
                                 max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False,
                                 logits_processor=LogitsProcessorList([Stamp()]))
        end = time.perf_counter()
        produced = out.shape[1] - ids["input_ids"].shape[1]
        print(json.dumps({
            "image_tokens": count, "prompt_tokens": int(ids["input_ids"].shape[1]), "tokens": produced,
            "vision_ms": (marks["vision_end"] - marks["vision_start"]) * 1e3,
            "prefill_ms": (stamps[0] - marks["vision_end"]) * 1e3,
            "ms_per_token": (stamps[-1] - stamps[0]) * 1e3 / max(produced - 1, 1),
            "ttft_s": stamps[0] - t0, "first_words_s": first_words(stamps, t0), "total_s": end - t0,
            "peak_rss_mb": vm_hwm_mb()}), flush=True)


class Worker(bench_server.Worker):
    """One of our worker processes (ours or PyTorch), loaded once, one answer per `run()`."""

    def __init__(self, kind: str, path: Path, image_tokens: str, tokens: int, threads: int, size: str) -> None:
        started = time.perf_counter()
        super().__init__([__file__, "--worker", kind, "--path", str(path), "--image-tokens", image_tokens,
                          "--tokens", str(tokens), "--threads", str(threads), "--size", size], close_timeout=120)
        self.info["start_s"] = time.perf_counter() - started  # process start to ready, as llama-server's


# --- llama.cpp -----------------------------------------------------------------------------------------

def llama_weights(source: Path, work: Path) -> tuple[dict, Path]:
    """{weights: Gguf} for LLAMA_WEIGHTS, each with the f16 projector, and the binaries' folder."""
    import llama_cpp

    binaries = llama_cpp.build(("llama-server", "llama-quantize"))
    # transformers' Qwen3_5ForConditionalGeneration has no multi-token-prediction head (the published
    # checkpoints carry one for speculative decoding, which nobody here uses): convert without it.
    f16 = llama_cpp.convert(source, work, outtype="f16", projector="f16", pre="qwen35", text_options=("--no-mtp",))
    made = {}
    for weights in LLAMA_WEIGHTS:
        out = f16.model.with_name(f"model-{weights}.gguf")
        if not out.is_file():
            subprocess.run([str(binaries / "llama-quantize"), str(f16.model), str(out), weights.upper()], check=True,
                           capture_output=True)
        made[weights] = llama_cpp.Gguf(out, f16.mmproj)
    return made, binaries


class Llama:
    """One streamed chat request to a llama-server per run, the same picture and prompt as the others."""

    def __init__(self, gguf, binaries: Path, log: Path, image_tokens: str, tokens: int, threads: int,
                 size: str) -> None:
        import llama_cpp

        extra = ("-tb", str(threads), *(() if image_tokens == "default" else ("--image-max-tokens", image_tokens)))
        self.log = log
        self.stack = contextlib.ExitStack()
        started = time.perf_counter()
        self.server = self.stack.enter_context(
            llama_cpp.serve(gguf, log, alias="bench", threads=threads, extra=extra, binaries=binaries))
        self.info = {"start_s": time.perf_counter() - started}
        self.size, self.number, self._text_tokens = size, 0, None
        # The published template opens a think block unless told otherwise; ours and PyTorch's prompts
        # close it (non-thinking mode, as the small sizes ship), so llama-server's is closed too.
        self.body = {"model": "bench", "stream": True, "max_tokens": tokens, "ignore_eos": True, "temperature": 0.0,
                     "cache_prompt": False, "chat_template_kwargs": {"enable_thinking": False}}

    def run(self) -> dict:
        import httpx2

        from describe_screen.model_server import encode_image

        self.number += 1  # the PNG is encoded beforehand: the request is timed from sending it
        self.body["messages"] = messages_for(
            {"type": "image_url", "image_url": {"url": encode_image(capture(self.number))}}, self.size)
        seen = len(self.log.read_text(encoding="utf-8", errors="replace"))
        t0 = time.perf_counter()
        pieces: list[float] = []  # when each piece carrying text arrived (one token each, as llama-server streams)
        timings: dict = {}
        with httpx2.stream("POST", f"{self.server.url}/chat/completions", json=self.body, timeout=900) as reply:
            reply.raise_for_status()
            for line in reply.iter_lines():
                if not line.startswith("data: {"):
                    continue
                chunk = json.loads(line[6:])
                timings = chunk.get("timings") or timings
                if any((c.get("delta") or {}).get("content") for c in chunk.get("choices", [])):
                    pieces.append(time.perf_counter())
        total = time.perf_counter() - t0
        produced, decode_ms = timings["predicted_n"], timings["predicted_per_token_ms"]
        # The first token's time from llama-server's own decode timing when no piece carried text.
        ttft = pieces[0] - t0 if pieces else total - decode_ms * (produced - 1) / 1e3
        log = self.log.read_text(encoding="utf-8", errors="replace")[seen:]
        vision = llama_vision_ms(log)
        return {"prompt_tokens": timings["prompt_n"], "tokens": produced, "vision_ms": vision,
                "prefill_ms": timings["prompt_ms"] - vision, "ms_per_token": decode_ms, "ttft_s": ttft,
                "first_words_s": first_words(pieces, t0), "total_s": total,
                "peak_rss_mb": vm_hwm_mb(self.server.process.pid),
                "image_tokens": timings["prompt_n"] - self.text_tokens()}

    def text_tokens(self) -> int:
        """The prompt's text tokens as llama-server renders and tokenizes it: the rest is the image."""
        import httpx2

        if self._text_tokens is None:
            body = {k: self.body[k] for k in ("messages", "chat_template_kwargs")}
            body["messages"] = messages_for({"type": "text", "text": ""}, self.size)
            rendered = httpx2.post(f"{self.server.url[:-3]}/apply-template", json=body, timeout=60).json()["prompt"]
            ids = httpx2.post(f"{self.server.url[:-3]}/tokenize", json={"content": rendered, "parse_special": True},
                              timeout=60).json()["tokens"]
            self._text_tokens = len(ids) + 2  # with the <|vision_start|> and <|vision_end|> mtmd puts around it
        return self._text_tokens

    def close(self) -> None:
        self.stack.close()


def llama_vision_ms(log: str) -> float:
    """The image's preprocessing and encoding in llama-server, from its log's timestamps (minutes.seconds.
    ms.us; the server logs no encoding time of its own): from the task's start to the first decode of the
    image's embeddings, which it marks with its M-RoPE position note. The few text tokens before the image
    are inside it."""
    lines = [line for line in log.splitlines() if STAMP.match(line)]
    start = next((line for line in lines if "launch_slot_" in line), None)
    end = next((line for line in lines if "non-consecutive token position" in line), None)
    return (_seconds(end) - _seconds(start)) * 1e3 if start and end else float("nan")


STAMP = re.compile(r"(\d+)\.(\d+)\.(\d+)\.(\d+) ")


def _seconds(line: str) -> float:
    minutes, seconds, ms, us = (int(x) for x in STAMP.match(line).groups())
    return minutes * 60 + seconds + ms / 1e3 + us / 1e6


# --- the race ------------------------------------------------------------------------------------------

def summary(values: list[float | None]) -> str:
    if None in values:
        return "-"
    return f"{statistics.median(values):.{digits(values)}f} [{min(values):.{digits(values)}f}-" \
           f"{max(values):.{digits(values)}f}]"


def digits(values: list[float]) -> int:
    return 0 if statistics.median(values) >= 100 else 2 if statistics.median(values) < 10 else 1


COLUMNS = (("vision_ms", "vision ms"), ("prefill_ms", "prefill ms"), ("ms_per_token", "decode ms/token"),
           ("ttft_s", "first token s"), ("first_words_s", f"first words s (token {FIRST_WORDS_TOKENS})"),
           ("total_s", "end to end s"), ("peak_rss_mb", "peak RSS MB"))


def table(results: dict[str, list[dict]], labels: dict[str, str], loads: dict[str, float]) -> list[str]:
    lines = ["| engine | image tokens | prompt tokens | " + " | ".join(c[1] for c in COLUMNS) + " | load s |",
             "|---" * (len(COLUMNS) + 4) + "|"]
    for name, runs in results.items():
        cells = [summary([r[key] for r in runs]) for key, _ in COLUMNS]
        lines.append(f"| {labels[name]} | {runs[0].get('image_tokens')} | {runs[0]['prompt_tokens']} | "
                     + " | ".join(cells) + f" | {loads[name]:.1f} |")
    if "ours" in results:
        for name, runs in results.items():
            if name == "ours":
                continue
            cells = []
            for key, _ in COLUMNS:
                pairs = [b[key] / a[key] for a, b in zip(results["ours"], runs, strict=True) if a[key] and b[key]]
                cells.append(f"{statistics.median(pairs):.2f}x [{min(pairs):.2f}-{max(pairs):.2f}]" if pairs else "-")
            lines.append(f"| {labels[name]} / ours | | | " + " | ".join(cells) + " | |")
    return lines


def race(args, source: Path, bundle: Path | None, image_tokens: str) -> list[str]:
    threads = args.threads
    engines: dict = {}
    labels: dict[str, str] = {}
    try:
        if "ours" in args.engines:
            engines["ours"] = Worker("ours", bundle, image_tokens, args.tokens, threads, args.size)
            labels["ours"] = f"describe-screen onnxruntime {engines['ours'].info['label']}"
        if "torch" in args.engines:
            engines["torch"] = Worker("torch", source, image_tokens, args.tokens, threads, args.size)
            labels["torch"] = f"{engines['torch'].info['label']} fp32"
        if any(w in args.engines for w in LLAMA_WEIGHTS):
            ggufs, binaries = llama_weights(source, args.work / f"gguf-{args.size}")
            for weights in LLAMA_WEIGHTS:
                if weights in args.engines:
                    log = args.work / f"llama-server-{weights}-{image_tokens}.log"
                    engines[weights] = Llama(ggufs[weights], binaries, log, image_tokens, args.tokens, threads,
                                             args.size)
                    labels[weights] = f"llama.cpp {weights.upper()}, projector f16"
        loads = {name: e.info["start_s"] for name, e in engines.items()}
        for engine in engines.values():
            engine.run()  # warm-up: first-run allocations and kernel choices on every side
        results: dict[str, list[dict]] = {name: [] for name in engines}
        for _ in range(args.rounds):
            for name, engine in engines.items():
                results[name].append(engine.run())
    finally:
        for engine in engines.values():
            engine.close()
    return table(results, labels, loads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=tuple(ARCH), default="0.8b")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "describe-screen-bench")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=60)
    parser.add_argument("--image-tokens", default="default,96,256,480")
    parser.add_argument("--engines", default="ours,torch,q4_0,q4_k_m")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads of every engine (0: physical cores)")
    parser.add_argument("--worker", choices=("ours", "torch"))
    parser.add_argument("--path", type=Path)
    args = parser.parse_args()
    if args.worker == "torch":
        torch_worker(args.path, args.image_tokens, args.tokens, args.threads, args.size)
        return
    if args.worker == "ours":
        ours_worker(args.path, args.image_tokens, args.tokens, args.threads, args.size)
        return

    import llama_cpp

    from describe_screen.vlm.onnx import physical_cores

    args.engines = args.engines.split(",")
    args.threads = args.threads or physical_cores()
    source = build_checkpoint(args.work / f"qwen3.5-{args.size}-random", args.size)
    bundle = prepare_bundle(source, args.work, args.size) if "ours" in args.engines else None
    for image_tokens in args.image_tokens.split(","):  # each cap's table as soon as it is measured
        table_lines = race(args, source, bundle, image_tokens)
        load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
        when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        print(f"\nQwen3.5-{args.size.upper()} architecture, random weights, 1280x720 screen, brief caption, image "
              f"tokens {image_tokens}, {args.tokens} tokens forced, {args.threads} threads each, {args.rounds} "
              f"interleaved rounds after one warm-up each, {when}, llama.cpp {llama_cpp.TAG} ({llama_cpp.FLAGS}), "
              f"{os.cpu_count()} logical CPUs, load average at the end {load}. Median [min-max]; ratios are "
              "peer/ours per round (above 1: ours faster or smaller).\n", flush=True)
        print("\n".join(table_lines), flush=True)


if __name__ == "__main__":
    main()
