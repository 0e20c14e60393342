"""Our 4-bit product as an onnxruntime custom operator (vlm/native/ort_op.c, built by vlm/kernels.py): the same
numbers as onnxruntime's MatMulNBits at accuracy level 4 on the same weights, and plain refusals."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from describe_screen.vlm import kernels
from describe_screen.vlm.q4pack import pack


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
        built = kernels.library()
    assert built is not None, kernels.unavailable()
    return built


def weights(k: int, n: int, zeros: bool, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """MatMulNBits' B, scales and zero points (or None), random."""
    rng = np.random.default_rng(seed)
    blocks = k // 32
    b = rng.integers(0, 256, (n, blocks, 16), dtype=np.uint8)
    scales = (rng.random(n * blocks, dtype=np.float32) * 0.02).astype(np.float32)
    z = rng.integers(0, 256, n * ((blocks + 1) // 2), dtype=np.uint8) if zeros else None
    return b, scales, z


def session(op: helper.NodeProto, initializers: list[np.ndarray], names: list[str], domain: str, rank: int,
            library: Path | None = None, threads: int = 1) -> ort.InferenceSession:
    """A one-node graph Y = op(A, initializers...), A of any leading dims."""
    a = helper.make_tensor_value_info("A", TensorProto.FLOAT, [f"d{i}" for i in range(rank)])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)
    graph = helper.make_graph([op], "g", [a], [y], [numpy_helper.from_array(x, name)
                                                     for x, name in zip(initializers, names, strict=True)])
    model = helper.make_model(graph, ir_version=10, opset_imports=[helper.make_opsetid("", 17),
                                                                    helper.make_opsetid(domain, 1)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    if library:
        options.register_custom_ops_library(str(library))
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def matmul_nbits(k: int, n: int, b: np.ndarray, scales: np.ndarray, z: np.ndarray | None,
                 rank: int) -> ort.InferenceSession:
    names = ["B", "S", *(["Z"] if z is not None else [])]
    op = helper.make_node("MatMulNBits", ["A", *names], ["Y"], domain="com.microsoft", K=k, N=n, bits=4,
                          block_size=32, accuracy_level=4)
    return session(op, [b, scales, *([z] if z is not None else [])], names, "com.microsoft", rank)


def q4_matmul(k: int, n: int, w: np.ndarray, s: np.ndarray, z: np.ndarray, rank: int, library: Path,
              threads: int = 1) -> ort.InferenceSession:
    op = helper.make_node("Q4MatMul", ["A", "W", "S", "Z"], ["Y"], domain="describe_screen", K=k, N=n)
    return session(op, [w, s, z], ["W", "S", "Z"], "describe_screen", rank, library, threads)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(("k", "n", "zeros"), [(64, 16, True), (1024, 48, False), (3584, 2048, True),
                                               (3584, 16, False)])
def test_q4matmul_gives_matmulnbits_numbers_for_any_rows(library, k, n, zeros, threads) -> None:
    b, scales, z = weights(k, n, zeros)
    ours = {rank: q4_matmul(k, n, *pack(b, scales, z, n, k), rank, library, threads) for rank in (2, 3)}
    theirs = {rank: matmul_nbits(k, n, b, scales, z, rank) for rank in (2, 3)}
    rng = np.random.default_rng(k + n)
    for shape in [(1, k), (3, k), (123, k), (1, 3, k), (1, 123, k)]:
        a = rng.standard_normal(shape).astype(np.float32)
        a[0, ..., :32] = 0  # a block of zeros: its scale is 0, not a division by it
        expected = theirs[len(shape)].run(None, {"A": a})[0]
        got = ours[len(shape)].run(None, {"A": a})[0]
        assert got.shape == (*shape[:-1], n)
        assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max(), shape


@pytest.mark.parametrize(("what", "a_shape", "w_shape", "message"), [
    ("W", (2, 64), (1, 2, 128), "Q4MatMul: W has shape [1, 2, 128]; for K 64 and N 16 it must be [1, 2, 256]."),
    ("A", (2, 32), (1, 2, 256), "Q4MatMul: A's last dimension is 32; it must be K, 64."),
])
def test_q4matmul_refuses_wrong_shapes_and_says_which(library, what, a_shape, w_shape, message) -> None:
    b, scales, z = weights(64, 16, True)
    w, s, zero = pack(b, scales, z, 16, 64)
    wrong = np.zeros(w_shape, np.uint8)
    op = q4_matmul(64, 16, wrong if what == "W" else w, s, zero, 2, library)
    with pytest.raises(Exception, match=r"INVALID_ARGUMENT") as refused:
        op.run(None, {"A": np.ones(a_shape, np.float32)})
    assert message in str(refused.value)


def test_q4matmul_with_k_not_a_multiple_of_32_is_refused_when_the_session_is_made(library) -> None:
    w, s, z = np.zeros((1, 1, 256), np.uint8), np.zeros((1, 1, 16), np.float32), np.zeros((1, 1, 16), np.uint8)
    with pytest.raises(Exception, match="Q4MatMul: K is 40 and N is 16; K must be a positive multiple of 32"):
        q4_matmul(40, 16, w, s, z, 2, library)


def test_no_compiler_means_no_library_and_a_reason(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert kernels.library() is None
    assert kernels.unavailable() == "No C compiler (cc or gcc) is installed, so the fast 4-bit kernel cannot be built."


def test_a_failed_build_means_no_library_and_the_compilers_error(monkeypatch, tmp_path) -> None:
    native = tmp_path / "native"
    shutil.copytree(kernels.NATIVE, native)
    (native / "q4.c").write_text("this is not C\n")
    monkeypatch.setattr(kernels, "NATIVE", native)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert kernels.library() is None
    reason = kernels.unavailable()
    assert reason.startswith("The fast 4-bit kernel could not be built: ") and "q4.c" in reason and "error" in reason
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]  # no half-built library left behind


def test_the_library_is_built_once_and_reused(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = kernels.library()
    assert first is not None and kernels.unavailable() is None
    built = first.stat().st_mtime_ns
    assert kernels.library() == first and first.stat().st_mtime_ns == built
    assert [p.name for p in first.parent.iterdir()] == [first.name]
