"""This machine's ceilings, and the floors they set for the SmolVLM-256M numbers in BENCHMARKS.md.

    .venv/bin/python benchmarks/bench_machine.py

- memory bandwidth: numpy copy of a 256 MB buffer (bytes read + written per second), and a read-only sum;
- float32 matrix product: numpy 2048^3, and onnxruntime's own MatMul kernel (what the models use).
Decode floor: every decoded token reads all decoder weights once, so ms/token >= weight bytes / read
bandwidth. Vision floor: the SigLIP tower's multiply-adds at 512 px / the best matmul rate.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

# SmolVLM-256M: SigLIP base-patch16-512 vision tower, SmolLM2-135M decoder (int8 file: 137.6 MB, fp32: 540 MB)
VISION_LAYERS, VISION_HIDDEN, VISION_MLP, VISION_TOKENS = 12, 768, 3072, (512 // 16) ** 2
DECODER_BYTES = {"int8": 137.6e6, "fp32": 540e6}


def best(fn, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bandwidth() -> tuple[float, float]:
    """(copy: bytes read + written per second, one thread; read: bytes summed per second, all cores)."""
    src = np.ones(256 * 2**20 // 4, dtype=np.float32)
    dst = np.empty_like(src)
    copy = 2 * src.nbytes / best(lambda: np.copyto(dst, src))
    halves = np.array_split(src, os.cpu_count() or 1)

    def read_all() -> None:  # one reader per core, as onnxruntime's threads read the weights
        with ThreadPoolExecutor(len(halves)) as pool:
            list(pool.map(np.sum, halves))

    return copy, src.nbytes / best(read_all)


def numpy_gflops(n: int = 2048) -> float:
    a, b = np.random.rand(n, n).astype(np.float32), np.random.rand(n, n).astype(np.float32)
    return 2 * n**3 / best(lambda: a @ b) / 1e9


def onnxruntime_gflops(n: int = 2048) -> float:
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    value = helper.make_tensor_value_info
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "mm",
                              [value("a", TensorProto.FLOAT, [n, n]), value("b", TensorProto.FLOAT, [n, n])],
                              [value("c", TensorProto.FLOAT, [n, n])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # what every onnxruntime release reads
    path = os.path.join(tempfile.mkdtemp(), "mm.onnx")
    onnx.save(model, path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    feed = {"a": np.random.rand(n, n).astype(np.float32), "b": np.random.rand(n, n).astype(np.float32)}
    return 2 * n**3 / best(lambda: session.run(None, feed)) / 1e9


def vision_gflop() -> float:
    per_token = VISION_LAYERS * (4 * VISION_HIDDEN**2 + 2 * VISION_HIDDEN * VISION_MLP)
    attention = VISION_LAYERS * 2 * VISION_TOKENS**2 * VISION_HIDDEN
    return 2 * (per_token * VISION_TOKENS + attention) / 1e9


def main() -> None:
    copy, read = bandwidth()
    np_rate, ort_rate = numpy_gflops(), onnxruntime_gflops()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; date {time.strftime('%Y-%m-%d')}; "
          f"load average {os.getloadavg()[0]:.1f}\n")
    print("| ceiling | value |\n|---|---|")
    print(f"| memory copy (read + write) | {copy / 1e9:.1f} GB/s |")
    print(f"| memory read (numpy sum, one thread per core) | {read / 1e9:.1f} GB/s |")
    print(f"| float32 matmul, numpy 2048^3 | {np_rate:.0f} GFLOP/s |")
    print(f"| float32 matmul, onnxruntime 2048^3 | {ort_rate:.0f} GFLOP/s |")
    print("\n| floor (SmolVLM-256M, one tile) | value |\n|---|---|")
    for precision, size in DECODER_BYTES.items():
        floor = size / read * 1e3
        print(f"| decode, {precision} weights ({size / 1e6:.0f} MB read per token) | {floor:.1f} ms/token |")
    work = vision_gflop()
    print(f"| vision fp32 ({work:.0f} GFLOP at 512 px) | {work / max(np_rate, ort_rate) * 1e3:.0f} ms |")


if __name__ == "__main__":
    main()
