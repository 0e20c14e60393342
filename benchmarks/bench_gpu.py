"""GPU speed, for a person with an NVIDIA GPU: our onnxruntime runtime on CUDA (fp16 and fp32 bundles)
against transformers/PyTorch on the same GPU at the same precision, for SmolVLM-256M and Florence-2-base.

The models are the same random-weight, full-size architectures as the CPU benchmarks (bench_smolvlm.py,
bench_florence2.py): speed depends on shapes, not on training, so a fixed number of new tokens is forced
(no end token, no loop stop). Each family runs in one process holding all four set-ups; every round times
them interleaved (ours fp16, PyTorch fp16, ours fp32, PyTorch fp32), so a slow moment on a shared machine
hits both sides of a comparison. Reported: median time to first token (picture in, first token out) and
ms per further token, and the median (min-max) of the per-round PyTorch/ours ratio of the whole request.

    .venv/bin/python benchmarks/bench_gpu.py [--work DIR] [--tokens 48] [--rounds 5]
    .venv/bin/python benchmarks/bench_gpu.py --provider cpu --size tiny --tokens 4 --rounds 1   # smoke test

`--provider cpu` runs the same code on the CPU (tiny models keep it quick): the test suite runs it so the
script keeps working on machines without a GPU. `--json` prints the raw numbers as one JSON line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]



@dataclasses.dataclass
class Timing:
    ttft_s: float  # picture in, first token out
    total_s: float  # the whole request
    tokens: int

    @property
    def ms_per_token(self) -> float:
        return (self.total_s - self.ttft_s) * 1e3 / max(self.tokens - 1, 1)


def timed(tokens: Iterator[int], sync: Callable[[], None] = lambda: None) -> Timing:
    """Time a token stream: the first token's arrival and the last's."""
    start = time.perf_counter()
    first, count = 0.0, 0
    for _ in tokens:
        sync()
        count += 1
        if count == 1:
            first = time.perf_counter() - start
    return Timing(first, time.perf_counter() - start, count)


# ---------------------------------------------------------------- the models, built once per work folder

def build_smolvlm(work: Path, size: str) -> tuple[Path, Path]:
    """(checkpoint folder, bundle with fp32 + int8 + fp16) of a random SmolVLM-256M (or the tests' tiny one)."""
    import tiny

    from describe_screen import models
    from describe_screen.export import export_model

    source, bundle = work / f"smolvlm-{size}-source", work / f"smolvlm-{size}"
    if not (source / "model.safetensors").is_file():
        if size == "tiny":
            tiny.build_tiny_smolvlm(source)
        else:
            from bench_smolvlm import PATCH, SCALE, TEXT, TILE, VISION

            tiny.build_smolvlm(source, VISION, TEXT, TILE, PATCH, SCALE)
    if not (bundle / "manifest.json").is_file():
        spec = dataclasses.replace(models.manifest("smolvlm-256m-instruct"), name=f"bench-smolvlm-{size}")
        export_model(spec, bundle, "all", source=source)
    return source, bundle


def build_florence(work: Path, size: str) -> tuple[Path, Path]:
    """(checkpoint folder, bundle with fp32 + int8 + fp16) of a random Florence-2-base (or the tiny one)."""
    from describe_screen import models
    from describe_screen.export import export_model

    if size == "tiny":
        from tiny_florence import build_tiny_florence

        source = work / "florence-tiny-source"
        if not (source / "model.safetensors").is_file():
            build_tiny_florence(source)
    else:
        from bench_florence2 import build

        source, _ = build(work / "florence-full")  # the CPU benchmark's full-size random checkpoint
    bundle = work / f"florence-{size}"
    if not (bundle / "manifest.json").is_file():
        spec = dataclasses.replace(models.manifest("florence-2-base"), name=f"bench-florence-{size}")
        export_model(spec, bundle, "all", source=source)
    return source, bundle


# ---------------------------------------------------------------- one request, ours and PyTorch's

def ours(family: str, bundle: Path, precision: str, provider: str, tokens: int) -> tuple[Callable[[], Timing], str]:
    """A function timing one request on our runtime, and the provider its sessions really got."""
    from describe_screen.vlm import CAPTION_BRIEF, Request, RuntimeOptions, load_model
    from describe_screen.vlm.decoding import Limits

    model = load_model(bundle, RuntimeOptions(provider=provider, precision=precision))
    model.warm_up()
    limits = Limits(max_new_tokens=tokens, eos_ids=frozenset(), repeat_span=0)
    image = picture(family)
    if family == "smolvlm":
        def run() -> Timing:
            return timed(model.token_ids(image, Request(task=CAPTION_BRIEF), lambda: False, limits))
    else:
        def run() -> Timing:
            return timed(model.generate_ids(image, "<CAPTION>", limits=limits))
    return run, model.provider()


def pytorch(family: str, source: Path, bundle: Path, precision: str, device: str,
            tokens: int) -> Callable[[], Timing]:
    """A function timing transformers generate() on the same pixels and prompt, on `device`."""
    import torch

    dtype = torch.float16 if precision == "fp16" else torch.float32
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    if family == "smolvlm":
        inputs, model = _smolvlm_inputs(source, bundle), _load_torch("SmolVLMForConditionalGeneration", source)
    else:
        inputs, model = _florence_inputs(source), _load_torch("Florence2ForConditionalGeneration", source)
    model = model.to(device=device, dtype=dtype)
    inputs = {k: v.to(device=device, dtype=dtype if v.is_floating_point() else v.dtype) for k, v in inputs.items()}
    options = {"do_sample": False, "num_beams": 1, "forced_eos_token_id": None}

    def run(n: int = tokens) -> Timing:
        """One generate() call; a streamer stamps each new token as it reaches the host."""
        stamps = _Stamps()
        with torch.no_grad():
            sync()
            start = time.perf_counter()
            model.generate(**inputs, max_new_tokens=n, min_new_tokens=n, streamer=stamps, **options)
        new = stamps.times[1:]  # the first call hands over the prompt (or the decoder's start token)
        return Timing(new[0] - start, new[-1] - start, len(new))

    run(2)  # warm-up: kernel choice and allocations
    return run


class _Stamps:
    """A transformers streamer that only notes when each call arrives (put() gets tokens already on the host)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def put(self, value: Any) -> None:
        self.times.append(time.perf_counter())

    def end(self) -> None:
        pass


def _load_torch(class_name: str, source: Path) -> Any:
    import transformers

    return getattr(transformers, class_name).from_pretrained(source, attn_implementation="eager").eval()


def _smolvlm_inputs(source: Path, bundle: Path) -> dict:
    """The pixels transformers' own image processor makes (one tile), and our prompt ids for them."""
    import torch
    from transformers.models.smolvlm.image_processing_pil_smolvlm import SmolVLMImageProcessorPil

    from describe_screen.vlm import CAPTION_BRIEF, Request, RuntimeOptions, load_model
    from describe_screen.vlm.smolvlm import Tiles

    pixels = SmolVLMImageProcessorPil.from_pretrained(source)(
        images=[[picture("smolvlm")]], do_image_splitting=False, return_row_col_info=True, return_tensors="np")
    tiles = Tiles(pixels["pixel_values"][0], pixels["rows"][0][0], pixels["cols"][0][0])
    ids = load_model(bundle, RuntimeOptions(provider="cpu")).prompt_ids(Request(task=CAPTION_BRIEF), tiles)
    return {"input_ids": torch.tensor([ids]), "attention_mask": torch.ones(1, len(ids), dtype=torch.long),
            "pixel_values": torch.from_numpy(pixels["pixel_values"]),
            "pixel_attention_mask": torch.from_numpy(pixels["pixel_attention_mask"])}


def _florence_inputs(source: Path) -> dict:
    from transformers import AutoProcessor

    inputs = AutoProcessor.from_pretrained(source)(images=picture("florence2"), text="<CAPTION>", return_tensors="pt")
    return dict(inputs)


def picture(family: str) -> Any:
    """The CPU benchmarks' pictures: a 1280x720 screen for SmolVLM, a dialog for Florence-2."""
    if family == "smolvlm":
        from bench_smolvlm import screen

        return screen()
    from bench_florence2 import screen_image

    return screen_image()


# ---------------------------------------------------------------- interleaved rounds and the report

def bench_family(family: str, size: str, provider: str, work: Path, tokens: int, rounds: int,
                 precisions: list[str]) -> dict:
    source, bundle = (build_smolvlm if family == "smolvlm" else build_florence)(work, size)
    device = "cuda" if provider == "cuda" else "cpu"
    runs: dict[str, Callable[[], Timing]] = {}
    providers: dict[str, str] = {}
    for precision in precisions:
        runs[f"ours {precision}"], providers[precision] = ours(family, bundle, precision, provider, tokens)
        runs[f"pytorch {precision}"] = pytorch(family, source, bundle, precision, device, tokens)
    for run in runs.values():
        run()  # one warm-up request each, not timed
    timings: dict[str, list[Timing]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():  # ours fp16, pytorch fp16, ours fp32, pytorch fp32
            timings[name].append(run())
    result: dict[str, Any] = {"family": family, "size": size, "providers": providers, "device": device, "rows": {}}
    for name, got in timings.items():
        result["rows"][name] = {"ttft_ms": statistics.median(t.ttft_s for t in got) * 1e3,
                                "ms_per_token": statistics.median(t.ms_per_token for t in got),
                                "tokens": [t.tokens for t in got]}
    for precision in precisions:
        ratios = [p.total_s / o.total_s for p, o in zip(timings[f"pytorch {precision}"], timings[f"ours {precision}"],
                                                         strict=True)]
        result["rows"][f"ours {precision}"]["speedup"] = [statistics.median(ratios), min(ratios), max(ratios)]
    return result


def table(results: list[dict], tokens: int, rounds: int) -> str:
    lines = [f"{tokens} new tokens forced, {rounds} interleaved rounds, medians; speed-up = PyTorch / ours, "
             "whole request, median (min-max) over rounds.", "",
             "| model | runtime | precision | provider | first token ms | ms/token | speed-up |",
             "|---|---|---|---|---:|---:|---|"]
    for result in results:
        for name, row in result["rows"].items():
            who, precision = name.split()
            runtime = "onnxruntime (ours)" if who == "ours" else "transformers/PyTorch"
            where = result["providers"][precision] if who == "ours" else f"torch {result['device']}"
            speed = "{:.2f} ({:.2f}-{:.2f})".format(*row["speedup"]) if "speedup" in row else ""
            lines.append(f"| {result['family']} ({result['size']}) | {runtime} | {precision} | {where} | "
                         f"{row['ttft_ms']:.0f} | {row['ms_per_token']:.1f} | {speed} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--provider", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--size", choices=("full", "tiny"), default="full")
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--families", default="smolvlm,florence2")
    parser.add_argument("--precisions", default="fp16,fp32")
    parser.add_argument("--work", type=Path, default=Path("/tmp/describe-screen-bench-gpu"))
    parser.add_argument("--json", action="store_true", help="print the raw numbers as one JSON line")
    args = parser.parse_args(argv)
    from describe_screen.errors import UserError

    if args.provider == "cuda":
        from describe_screen.vlm import onnx

        if not onnx.cuda_works():
            print("describe-screen: CUDA does not start on this machine, so there is nothing to measure on a GPU. "
                  "Run describe-screen doctor to see which part is missing, or pass --provider cpu.", file=sys.stderr)
            return 1
    args.work.mkdir(parents=True, exist_ok=True)
    try:
        results = [bench_family(family, args.size, args.provider, args.work, args.tokens, args.rounds,
                                args.precisions.split(",")) for family in args.families.split(",")]
    except UserError as exc:
        print(f"describe-screen: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(results) if args.json else table(results, args.tokens, args.rounds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
