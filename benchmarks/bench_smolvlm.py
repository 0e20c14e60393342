"""SmolVLM-256M speed on this machine: the ONNX runtime (fp32, int8; one tile, default tiling) against
transformers/PyTorch generate() on the same weights, in the same run.

The model has the published SmolVLM-256M-Instruct architecture (SigLIP base-patch16-512 vision tower,
pixel-shuffle factor 4 -> 64 tokens per tile, SmolLM2-135M text model) with random weights: speed
depends on shapes, not on training. Every configuration runs in its own process (clean peak RSS),
is warmed up once, then timed three times (fastest shown); 48 new tokens are forced (no EOS, no
loop stop).

    .venv/bin/python benchmarks/bench_smolvlm.py [--work DIR] [--tokens 48]
    .venv/bin/python benchmarks/bench_smolvlm.py --weights int8,q4 [--rounds 5]
    .venv/bin/python benchmarks/bench_smolvlm.py --against OTHER_CHECKOUT --precision int8 [--tiles default]

Prints a Markdown table for BENCHMARKS.md. CPU-heavy: several minutes on 2 cores. `--weights A,B` instead
compares two weight sets of the same bundle, interleaved (A, B, A, B, ...), and prints the median ratio
B/A with its range: how "auto" chooses between int8 and q4 on the CPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

# HuggingFaceTB/SmolVLM-256M-Instruct config.json (vision_config / text_config), random weights.
VISION = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12}
TEXT = {"vocab_size": 49280, "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
        "num_attention_heads": 9, "num_key_value_heads": 3, "head_dim": 64, "max_position_embeddings": 8192}
TILE, PATCH, SCALE = 512, 16, 4
REPEATS = 3  # timed runs per configuration after one warm-up; the table shows the fastest


def screen():
    """A 1280x720 screen-like picture: window, title bar, text lines, two buttons."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (1280, 720), (235, 235, 240))
    draw = ImageDraw.Draw(image)
    draw.rectangle((200, 120, 1080, 600), fill="white", outline="black")
    draw.rectangle((200, 120, 1080, 160), fill=(40, 80, 160))
    for row in range(10):
        draw.text((230, 190 + row * 30), f"Line {row}: the quick brown fox jumps over the lazy dog.", fill="black")
    for x, label in ((760, "OK"), (900, "Cancel")):
        draw.rectangle((x, 540, x + 120, 580), outline="black", fill=(220, 220, 220))
        draw.text((x + 40, 552), label, fill="black")
    return image


def request(grounding_lines: int = 0):
    """A brief caption; `grounding_lines` lines of screen text before it make a longer prompt (the
    ~900-token context of a full screen of text)."""
    from describe_screen.vlm import CAPTION_BRIEF, Request

    text = "\n".join(f"Line {row}: the quick brown fox jumps over the lazy dog." for row in range(grounding_lines))
    return Request(task=CAPTION_BRIEF, grounding=text)


def best(runs: list[dict]) -> dict:
    """Fastest time of each phase over the repeats: the machine is shared, and other processes
    only ever add time, so the minimum is the best estimate of what this code costs."""
    return {key: min(run[key] for run in runs) for key in runs[0]}


def rss_mb() -> float:
    """This process's peak resident memory (VmHWM). ru_maxrss would not do: Linux carries it over
    exec from the parent, which built and exported the model."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def opened(bundle: Path, precision: str, tiles: str = "fast"):
    """(model, seconds) with every session a request uses open: the warm load time."""
    from describe_screen.vlm import RuntimeOptions, load_model
    from describe_screen.vlm.smolvlm import EMBED

    started = time.perf_counter()
    model = load_model(bundle, RuntimeOptions(provider="cpu", precision=precision, tiles=tiles))
    model.vision(), model.bundle.runner(EMBED), model.decoder()
    return model, time.perf_counter() - started


def timed_answer(model, image, req, tokens: int) -> dict:
    """Phase timings of one answer of `tokens` forced tokens, with the runtime's own pieces in order and
    the image encoded every time, as a new capture would be."""
    from describe_screen.vlm import onnx

    t0 = time.perf_counter()
    made = model.tiles(image)
    ids = model.prompt_ids(req, made)
    t1 = time.perf_counter()
    features = model.encode_image(made, reuse=False)
    t2 = time.perf_counter()
    step = model.decoder_step(features, tokens)
    token = int(step(ids).argmax())
    t3 = time.perf_counter()
    for _ in range(tokens - 1):
        token = int(step([token]).argmax())
    t4 = time.perf_counter()
    del step  # as token_ids does at the end of an answer: the cache goes, the heap is trimmed
    onnx.trim_heap()
    return {"tiles": len(made.pixel_values), "prompt_tokens": len(ids), "preprocess_ms": (t1 - t0) * 1e3,
            "vision_ms": (t2 - t1) * 1e3, "prefill_ms": (t3 - t2) * 1e3,
            "decode_ms_per_token": (t4 - t3) * 1e3 / max(tokens - 1, 1), "ttft_s": t3 - t0, "total_s": t4 - t0}


def onnx_worker(bundle: Path, precision: str, tiles: str, tokens: int) -> dict:
    """Phase timings of one warmed-up request, the best of REPEATS."""
    model, load_s = opened(bundle, precision, tiles)
    image, req = screen(), request()
    timed_answer(model, image, req, tokens)  # warm-up: first-run allocations and kernel choices
    result = best([timed_answer(model, image, req, tokens) for _ in range(REPEATS)])
    return {**result, "load_s": load_s, "provider": model.provider(), "peak_rss_mb": rss_mb(),
            "decoder": model.decoder().label}


def torch_worker(source: Path, tiles: str, tokens: int) -> dict:
    """transformers generate() with the same pixels and prompt ids (PyTorch eager, CPU, same threads)."""
    import torch
    from transformers import SmolVLMForConditionalGeneration
    from transformers.models.smolvlm.image_processing_pil_smolvlm import SmolVLMImageProcessorPil

    from describe_screen.vlm import RuntimeOptions, load_model
    from describe_screen.vlm.onnx import physical_cores
    from describe_screen.vlm.smolvlm import Tiles

    torch.set_num_threads(physical_cores())
    started = time.perf_counter()
    model = SmolVLMForConditionalGeneration.from_pretrained(source, dtype=torch.float32).eval()
    processor = SmolVLMImageProcessorPil.from_pretrained(source)
    load_s = time.perf_counter() - started
    bundle_like = load_model(Path(sys.argv[sys.argv.index("--bundle") + 1]), RuntimeOptions(provider="cpu"))
    image, req = screen(), request()

    def run(new_tokens: int) -> tuple[float, int]:
        t0 = time.perf_counter()
        pixels = processor(images=[[image]], do_image_splitting=tiles == "default", return_row_col_info=True,
                           return_tensors="np")
        made = Tiles(pixels["pixel_values"][0], pixels["rows"][0][0], pixels["cols"][0][0])
        ids = bundle_like.prompt_ids(req, made)
        with torch.no_grad():
            model.generate(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                           pixel_values=torch.from_numpy(pixels["pixel_values"]),
                           pixel_attention_mask=torch.from_numpy(pixels["pixel_attention_mask"]),
                           max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
        return time.perf_counter() - t0, len(made.pixel_values)

    run(2)  # warm-up
    ttft, count = min(run(1) for _ in range(REPEATS))
    total = min(run(tokens)[0] for _ in range(REPEATS))
    return {"tiles": count, "ttft_s": ttft, "total_s": total,
            "decode_ms_per_token": (total - ttft) * 1e3 / max(tokens - 1, 1), "load_s": load_s,
            "peak_rss_mb": rss_mb(), "provider": f"PyTorch {torch.__version__} ({model.config._attn_implementation})"}


def prepare(work: Path) -> tuple[Path, Path]:
    from tiny import build_smolvlm

    from describe_screen import models
    from describe_screen.export import export_model

    source, bundle = work / "smolvlm-256m-random", work / "models" / "bench-smolvlm-256m"
    if not (source / "model.safetensors").is_file():
        build_smolvlm(source, VISION, TEXT, TILE, PATCH, SCALE)
    if not (bundle / "manifest.json").is_file():
        started = time.perf_counter()
        manifest = dataclasses.replace(models.manifest("smolvlm-256m-instruct"), name="bench-smolvlm-256m")
        export_model(manifest, bundle, "auto", source=source)
        print(f"export (fp32 + int8): {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return source, bundle


def add_weight_sets(bundle: Path, wanted: list[str]) -> None:
    """Write the missing weight sets (published recipes, export.common) into the bundle and re-hash it."""
    from describe_screen.export.common import make_variants
    from describe_screen.vlm.bundle import variant_name
    from describe_screen.vlm.manifest import MANIFEST, write_manifest
    from describe_screen.vlm.smolvlm import DECODER, VISION

    missing = [p for p in wanted if not (bundle / variant_name(DECODER.file, p)).is_file()]
    if missing:
        make_variants(bundle, (VISION.file, DECODER.file), [*missing, "fp32"], {DECODER.file: ["inputs_embeds"]})
        manifest = json.loads((bundle / MANIFEST).read_text())
        write_manifest(bundle, {k: v for k, v in manifest.items() if k not in ("files", "format")},
                       [p.name for p in bundle.iterdir() if p.is_file() and not p.name.startswith((".", MANIFEST))])


def compare_weights(bundle: Path, sets: list[str], rounds: int, tokens: int) -> None:
    """Interleaved runs of two weight sets (one process each), then the median ratio and its range."""
    import statistics

    add_weight_sets(bundle, sets)
    results: dict[str, list[dict]] = {name: [] for name in sets}
    for _ in range(rounds):
        for name in sets:
            results[name].append(spawn("--worker", "onnx", "--precision", name, "--bundle", str(bundle),
                                       "--tokens", str(tokens)))
    first, second = sets
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"SmolVLM-256M architecture, random weights, one tile, {tokens} new tokens forced, {rounds} interleaved "
          f"rounds ({first}, {second}, ...), each the best of {REPEATS} in its own process; load average at the "
          f"end {load}\n")
    print(f"| measure | {first} (median) | {second} (median) | {second}/{first} median ratio (range) |")
    print("|---|---|---|---|")
    for key, label in (("vision_ms", "vision ms"), ("prefill_ms", "prefill ms"),
                       ("decode_ms_per_token", "decode ms/token"), ("ttft_s", "TTFT s"), ("total_s", "end-to-end s"),
                       ("peak_rss_mb", "peak RSS MB")):
        a = [r[key] for r in results[first]]
        b = [r[key] for r in results[second]]
        ratios = [y / x for x, y in zip(a, b, strict=True)]
        print(f"| {label} | {statistics.median(a):.1f} | {statistics.median(b):.1f} | "
              f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) |")


def compare_trees(other: Path, bundle: Path, precision: str, tiles: str, rounds: int, tokens: int) -> None:
    """Interleaved runs of another checkout's runtime (e.g. the commit before a change) and this one's,
    one process each, on the same bundle: the median ratio this/other of each phase and its range."""
    import statistics

    args = ("--worker", "onnx", "--precision", precision, "--tiles", tiles, "--bundle", str(bundle),
            "--tokens", str(tokens))
    runs: dict[str, list[dict]] = {"other": [], "this": []}
    for _ in range(rounds):
        runs["other"].append(spawn(*args, tree=other))
        runs["this"].append(spawn(*args))
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"SmolVLM-256M architecture, random weights, {precision}, tiles {tiles} "
          f"({runs['this'][0]['prompt_tokens']} prompt tokens), {tokens} new tokens forced, {rounds} interleaved "
          f"rounds ({other} then this tree), each the best of {REPEATS} in its own process; load average at the "
          f"end {load}\n")
    print("| measure | other (median) | this (median) | this/other median ratio (range) |")
    print("|---|---|---|---|")
    for key in ("preprocess_ms", "vision_ms", "prefill_ms", "decode_ms_per_token", "ttft_s", "total_s",
                "load_s", "peak_rss_mb"):
        a, b = [r[key] for r in runs["other"]], [r[key] for r in runs["this"]]
        ratios = [y / x for x, y in zip(a, b, strict=True)]
        print(f"| {key} | {statistics.median(a):.2f} | {statistics.median(b):.2f} | "
              f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) |")


def spawn(*args: str, tree: Path = ROOT) -> dict:
    """One worker process of the runtime in `tree` (this checkout unless told)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, str(tree / "benchmarks" / Path(__file__).name), *args],
                          capture_output=True, text=True, timeout=3600, env=env)
    if done.returncode:
        raise SystemExit(f"worker {args} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "describe-screen-bench")
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--worker", choices=("onnx", "torch"))
    parser.add_argument("--bundle", type=Path)
    parser.add_argument("--source", type=Path)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--tiles", default="fast")
    parser.add_argument("--weights", help="compare two weight sets, e.g. int8,q4")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--against", type=Path, help="another checkout to compare this one with, interleaved")
    args = parser.parse_args()
    if args.worker == "onnx":
        print(json.dumps(onnx_worker(args.bundle, args.precision, args.tiles, args.tokens)))
        return
    if args.worker == "torch":
        print(json.dumps(torch_worker(args.source, args.tiles, args.tokens)))
        return

    source, bundle = prepare(args.work)
    if args.against:
        compare_trees(args.against, bundle, args.precision, args.tiles, args.rounds, args.tokens)
        return
    if args.weights:
        compare_weights(bundle, args.weights.split(","), args.rounds, args.tokens)
        return
    common = ["--bundle", str(bundle), "--tokens", str(args.tokens)]
    rows = []
    for tiles in ("fast", "default"):
        reference = spawn("--worker", "torch", "--source", str(source), "--tiles", tiles, *common)
        rows.append(("PyTorch eager", "fp32", tiles, reference, None))
        for precision in ("fp32", "int8"):
            result = spawn("--worker", "onnx", "--precision", precision, "--tiles", tiles, *common)
            rows.append(("onnxruntime", precision, tiles, result, reference["total_s"] / result["total_s"]))
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"SmolVLM-256M architecture, random weights, 1280x720 screen, {args.tokens} new tokens forced, "
          f"CPU threads = physical cores ({os.cpu_count()} logical CPUs), best of {REPEATS}; "
          f"load average at the end {load}\n")
    print("| engine | precision | tiling | tiles | vision ms | prefill ms | decode ms/token | TTFT s | "
          "end-to-end s | peak RSS MB | speed-up vs PyTorch |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for engine, precision, tiles, r, ratio in rows:
        vision = f"{r['vision_ms']:.0f}" if "vision_ms" in r else "-"
        prefill = f"{r['prefill_ms']:.0f}" if "prefill_ms" in r else "-"
        speed = f"{ratio:.2f}x" if ratio else "1.00x"
        print(f"| {engine} | {precision} | {tiles} | {r['tiles']} | {vision} | {prefill} | "
              f"{r['decode_ms_per_token']:.1f} | {r['ttft_s']:.2f} | {r['total_s']:.2f} | {r['peak_rss_mb']:.0f} | "
              f"{speed} |")


if __name__ == "__main__":
    main()
