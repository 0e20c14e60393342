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

    def to_device(self, array: np.ndarray) -> ort.OrtValue:
        """Copy a host array to the session's device once, e.g. an empty cache or image features."""
        import onnxruntime as ort

        return ort.OrtValue.ortvalue_from_numpy(array, self.device, 0)

    def run(self, inputs: Mapping[str, Any], to_host: Iterable[str]) -> dict[str, Any]:
        """Run once; `inputs` values are numpy arrays or OrtValues. Returns numpy for `to_host`
        outputs and device OrtValues for the rest."""
        import onnxruntime as ort

        host = set(to_host)
        binding = self.session.io_binding()
        for name, value in inputs.items():
            if isinstance(value, ort.OrtValue):
                binding.bind_ortvalue_input(name, value)
            elif self.device == "cpu":
                binding.bind_cpu_input(name, value)
            else:
                binding.bind_ortvalue_input(name, self.to_device(value))
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
