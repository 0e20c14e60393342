"""onnxruntime sessions shared by every model family: provider choice, threads, and device-resident I/O.

onnxruntime-gpu lists CUDA as "available" even on machines without a GPU, so a provider only counts
once a real session has been created with it and `session.get_providers()` still names it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from describe_screen.errors import UserError

if TYPE_CHECKING:
    import numpy as np
    import onnxruntime as ort

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
PROVIDER_CHOICES = ("auto", "cuda", "cpu")
# Set once a session asked for CUDA and did not get it, so later sessions in this process go straight
# to the CPU instead of failing (and logging) again.
_cuda_unusable: list[bool] = []


def physical_cores() -> int:
    """Physical cores (not hyper-threads): onnxruntime's matmuls slow down when threads share a core."""
    pairs: set[tuple[str, str]] = set()
    physical = ""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            for line in info:
                if line.startswith("physical id"):
                    physical = line.split(":", 1)[1].strip()
                elif line.startswith("core id"):
                    pairs.add((physical, line.split(":", 1)[1].strip()))
    except OSError:
        pass
    if pairs:
        return max(1, min(len(pairs), os.cpu_count() or 1))
    return max(1, (os.cpu_count() or 2) // 2)


def session_options(threads: int = 0) -> ort.SessionOptions:
    """Full graph optimisation and `threads` intra-op threads (0 = one per physical core)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads if threads > 0 else physical_cores()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # warnings about unused CUDA libraries would only confuse users
    return options


def _providers(provider: str) -> list[str]:
    import onnxruntime as ort

    if provider not in PROVIDER_CHOICES:
        raise UserError(f"The model provider {provider!r} is unknown; it must be auto, cuda or cpu.",
                        "Set models.provider in the settings file to auto, cuda or cpu.")
    if provider == "cpu":
        return [CPU]
    if CUDA not in ort.get_available_providers() or (_cuda_unusable and provider == "auto"):
        if provider == "cuda":
            raise UserError("The CUDA provider was requested, but this onnxruntime build has no CUDA support.",
                            "Install onnxruntime-gpu, or set models.provider to auto or cpu.")
        return [CPU]
    return [CUDA, CPU]


def create_session(path: Path, provider: str = "auto", threads: int = 0) -> ort.InferenceSession:
    """Open one .onnx file on the best usable provider; "cuda" fails loudly if CUDA cannot really run.

    Load failures (a truncated or corrupt file) become a UserError naming the file, since the usual
    cause is an interrupted export or copy and the fix is to export again.
    """
    import onnxruntime as ort

    wanted = _providers(provider)
    try:
        session = ort.InferenceSession(str(path), sess_options=session_options(threads), providers=wanted)
    except Exception as exc:  # onnxruntime raises several private exception types for bad files
        if CUDA in wanted and provider == "auto" and _looks_like_cuda_failure(exc):
            _cuda_unusable.append(True)
            return create_session(path, "cpu", threads)
        raise UserError(f"The model file {path.name} in {path.parent} cannot be loaded: it is damaged or "
                        f"incomplete ({type(exc).__name__}).",
                        "Export the model again with: describe-screen models export NAME.") from exc
    got = session.get_providers()
    if CUDA in wanted and CUDA not in got:
        _cuda_unusable.append(True)
    if provider == "cuda" and CUDA not in got:
        raise UserError("The CUDA provider was requested, but CUDA could not start: no usable NVIDIA GPU, "
                        "driver or CUDA/cuDNN libraries were found.",
                        "Install the NVIDIA driver and the CUDA and cuDNN versions your onnxruntime-gpu release "
                        "names, or set models.provider to cpu.")
    return session


def _looks_like_cuda_failure(exc: Exception) -> bool:
    text = str(exc).lower()
    return "cuda" in text or "cudnn" in text or "libcu" in text


def main_provider(session: ort.InferenceSession) -> str:
    """The provider that runs most of the graph: the first one the session really got."""
    return session.get_providers()[0]


def device_of(session: ort.InferenceSession) -> str:
    """"cuda" when the session runs on the GPU, else "cpu": where its cache tensors should live."""
    return "cuda" if main_provider(session) == CUDA else "cpu"


def usable_device(provider: str = "auto") -> str:
    """Where sessions asked for with `provider` really run ("cuda" or "cpu"), learnt from a tiny probe
    session before any model file is chosen: a listed CUDA provider is not yet a usable one."""
    if provider == "cpu":
        return "cpu"
    from importlib import resources

    probe = Path(str(resources.files("describe_screen") / "data" / "probe.onnx"))
    return device_of(create_session(probe, provider, threads=1))


# onnxruntime's tensor type names and the numpy types that feed them.
NUMPY_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
               "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(bool)": "bool", "tensor(uint8)": "uint8",
               "tensor(int8)": "int8"}


class BoundRunner:
    """Runs a session through I/O binding so chosen outputs stay on the session's device.

    On CUDA the key/value cache of step n is bound, without a copy to the host, as the input of step
    n+1; only the outputs named in `to_host` (e.g. logits) come back as numpy arrays. On the CPU the
    same path runs with device "cpu", so the code the tests exercise is the code GPUs use.
    """

    def __init__(self, session: ort.InferenceSession, label: str = "model") -> None:
        self.session = session
        self.label = label
        self.device = device_of(session)
        self.output_names = [o.name for o in session.get_outputs()]
        self.input_types = {i.name: i.type for i in session.get_inputs()}
        self.input_shapes = {i.name: i.shape for i in session.get_inputs()}

    def host_input(self, name: str, array: np.ndarray) -> np.ndarray:
        """`array` in the type the graph declares for input `name`: published graphs differ per precision
        (an fp16 decoder may take float32 embeddings but a float16 cache), so the session decides."""
        wanted = NUMPY_TYPES.get(self.input_types.get(name, ""))
        if wanted is None or array.dtype == wanted:
            return array
        # Only what published graphs really vary in: float width, and masks as bool or integers. Any
        # other mismatch (e.g. int32 ids) is a bug of ours and must fail loudly.
        if (array.dtype.kind == "f" and wanted.startswith("float")) or array.dtype.kind == "b":
            return array.astype(wanted)
        return array

    def to_device(self, array: np.ndarray, name: str = "") -> ort.OrtValue:
        """Copy a host array to the session's device once, e.g. an empty cache or image features; with
        `name`, in the type of that input."""
        import onnxruntime as ort

        return ort.OrtValue.ortvalue_from_numpy(self.host_input(name, array) if name else array, self.device, 0)

    def empty_cache(self, heads: int, head_dim: int) -> dict[str, ort.OrtValue]:
        """Zero-length past_key_values.* for the first step, named, typed and shaped as the session says
        (a fixed dimension in the graph wins over the config's `heads` and `head_dim`)."""
        import numpy as np

        cache = {}
        for name, shape in self.input_shapes.items():
            if name.startswith("past_key_values."):
                fallback = (1, heads, 0, head_dim)
                dims = [d if isinstance(d, int) else fallback[axis] for axis, d in enumerate(shape)]
                dims[0], dims[2] = 1, 0
                cache[name] = self.to_device(np.zeros(dims, np.float32), name)
        return cache

    def run(self, inputs: Mapping[str, Any], to_host: Iterable[str]) -> dict[str, Any]:
        """Run once; `inputs` values are numpy arrays or OrtValues. Returns numpy for `to_host`
        outputs and device OrtValues for the rest."""
        import onnxruntime as ort

        host = set(to_host)
        binding = self.session.io_binding()
        kept = []  # converted inputs must outlive the run: the binding points at their memory
        for name, value in inputs.items():
            if isinstance(value, ort.OrtValue):
                binding.bind_ortvalue_input(name, value)
            elif self.device == "cpu":
                kept.append(self.host_input(name, value))
                binding.bind_cpu_input(name, kept[-1])
            else:
                kept.append(self.to_device(value, name))
                binding.bind_ortvalue_input(name, kept[-1])
        for name in self.output_names:
            binding.bind_output(name, "cpu" if name in host else self.device)
        try:
            self.session.run_with_iobinding(binding)
        except Exception as exc:  # onnxruntime's own error types: out of memory, bad shapes, device loss
            raise UserError(f"The model file {self.label} failed while running: {str(exc).splitlines()[0][:200]}",
                            "Try again; if it keeps failing, check the model with: describe-screen models verify, "
                            "or set models.provider to cpu.") from exc
        values = binding.get_outputs()
        return {name: (value.numpy() if name in host else value)
                for name, value in zip(self.output_names, values, strict=True)}
