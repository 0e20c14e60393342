"""onnxruntime sessions shared by every model family: provider choice, threads, and device-resident I/O.

onnxruntime-gpu lists CUDA as "available" even on machines without a GPU, so a provider only counts
once a real session has been created with it and `session.get_providers()` still names it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from describe_screen.errors import UserError
from describe_screen.i18n import _
from describe_screen.vlm import kernels

if TYPE_CHECKING:
    import numpy as np
    import onnx
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
    if library := kernels.library(build=False):  # our operators, for the copies made with them (cpu_graph)
        options.register_custom_ops_library(str(library))
    return options


def _providers(provider: str) -> list[str]:
    import onnxruntime as ort

    if provider not in PROVIDER_CHOICES:
        raise UserError(_("The model provider {provider!r} is unknown; it must be auto, cuda or cpu.",
                          provider=provider),
                        _("Set models.provider in the settings file to auto, cuda or cpu."))
    if provider == "cpu":
        return [CPU]
    if CUDA not in ort.get_available_providers() or (_cuda_unusable and provider == "auto"):
        if provider == "cuda":
            raise UserError(_("The CUDA provider was requested, but this onnxruntime build has no CUDA support."),
                            _("Install onnxruntime-gpu, or set models.provider to auto or cpu."))
        return [CPU]
    return [CUDA, CPU]


# What precision "auto" takes, best first, for every family: on a CPU the 8-bit integer graphs run
# fastest (BENCHMARKS.md, "Weight sets on the CPU"); on a GPU half-precision floats.
AUTO_ORDER = {"cpu": ("int8", "q4", "fp32", "q4f16", "fp16"), "cuda": ("fp16", "q4f16", "fp32", "int8", "q4")}


def auto_precision(device: str) -> str:
    """The weights "auto" means on `device`. Installing and loading both ask here, so `models install`
    downloads what the runtime will pick."""
    return AUTO_ORDER[device][0]


def nvidia_driver() -> bool:
    """An NVIDIA driver is present (the kernel module's /proc entry, or nvidia-smi on the PATH)."""
    import shutil

    return os.path.exists("/proc/driver/nvidia/version") or shutil.which("nvidia-smi") is not None


@dataclass(frozen=True)
class CudaLibraries:
    """Which CUDA/cuDNN libraries onnxruntime-gpu needs, and where each was loaded from ("" = missing)."""

    found: dict[str, str]
    optional: frozenset[str] = frozenset()

    @property
    def missing(self) -> list[str]:
        return [name for name, where in self.found.items() if not where and name not in self.optional]


_preloaded: list[CudaLibraries] = []


def preload_cuda() -> CudaLibraries:
    """Load the CUDA and cuDNN libraries of the nvidia-* pip packages (onnxruntime-gpu[cuda,cudnn]) before
    the first CUDA session; without this, onnxruntime finds them only if the system happens to have the
    exact versions. Runs once per process; does nothing without a CUDA build or an NVIDIA driver."""
    if _preloaded:
        return _preloaded[0]
    import contextlib
    import io

    import onnxruntime as ort

    result = CudaLibraries({})
    if CUDA in ort.get_available_providers() and nvidia_driver() and hasattr(ort, "preload_dlls"):
        with contextlib.redirect_stdout(io.StringIO()):  # its own messages name files, not what to do
            ort.preload_dlls()
        needed = _needed_libraries()
        result = loaded_cuda_libraries(needed, _mapped_libraries(needed))
    _preloaded.append(result)
    return result


def _needed_libraries() -> list[str]:
    """The library files this onnxruntime-gpu build loads, as its preload function lists them."""
    import sys

    import onnxruntime as ort

    listing = getattr(ort, "_get_nvidia_dll_paths", None)
    if listing is None:  # an older or newer build without that helper: the CUDA 13 / cuDNN 9 set
        return ["libcudart.so.13", "libcublas.so.13", "libcublasLt.so.13", "libcurand.so.10", "libcufft.so.12",
                "libcudnn.so.9"]
    return [parts[-1] for parts in listing(sys.platform == "win32", True, True)]


def _mapped_libraries(needed: list[str]) -> list[str]:
    """Paths of the shared libraries this process has loaded: all of them on Linux (/proc/self/maps),
    the `needed` ones on Windows (asked of the loader by name)."""
    import sys

    if sys.platform == "win32":
        import ctypes

        kernel = ctypes.windll.kernel32  # type: ignore[attr-defined]
        found = []
        for name in needed:
            if handle := kernel.GetModuleHandleW(name):
                path = ctypes.create_unicode_buffer(32768)
                kernel.GetModuleFileNameW(ctypes.c_void_p(handle), path, len(path))
                found.append(path.value)
        return found
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            return sorted({line.split(None, 5)[5].strip() for line in maps if len(line.split(None, 5)) == 6})
    except OSError:
        return []


def loaded_cuda_libraries(needed: list[str], mapped: list[str]) -> CudaLibraries:
    """Match each needed library file name with the loaded path of that name ("" when none is loaded).
    cuFFT and NVRTC are optional, as onnxruntime treats them."""
    by_name = {path.replace("\\", "/").rsplit("/", 1)[-1]: path for path in mapped}
    return CudaLibraries({name: by_name.get(name, "") for name in needed},
                         frozenset(name for name in needed if "cufft" in name or "nvrtc" in name))


def missing_cuda_wheels() -> list[str]:
    """The pip packages of onnxruntime-gpu's [cuda,cudnn] extras that are not installed (all of them
    without onnxruntime-gpu): the installer adds them on machines with an NVIDIA GPU."""
    import re
    from importlib import metadata

    try:
        wanted = [r for r in metadata.requires("onnxruntime-gpu") or [] if re.search(r'extra == "(cuda|cudnn)"', r)]
    except metadata.PackageNotFoundError:
        return ["onnxruntime-gpu"]
    missing = []
    for requirement in wanted:
        name = re.split(r"[ ;<>=~!\[]", requirement, maxsplit=1)[0]
        try:
            metadata.version(name)
        except metadata.PackageNotFoundError:
            missing.append(name)
    return missing


def cuda_works() -> bool:
    """True when a real session starts on CUDA here (a tiny probe graph), not merely when CUDA is listed."""
    from importlib import resources

    import onnxruntime as ort

    if CUDA not in ort.get_available_providers() or not nvidia_driver():
        return False
    preload_cuda()
    probe = resources.files("describe_screen") / "data" / "probe.onnx"
    try:
        session = ort.InferenceSession(str(probe), sess_options=session_options(1), providers=[CUDA, CPU])
    except Exception:  # onnxruntime's private error types: a CUDA that cannot start means "no"
        return False
    return CUDA in session.get_providers()


class Unloadable(UserError):
    """A model file onnxruntime cannot load (damaged or incomplete): a bundle replaces the fix with its own."""


def create_session(path: Path, provider: str = "auto", threads: int = 0) -> ort.InferenceSession:
    """Open one .onnx file on the best usable provider; "cuda" fails loudly if CUDA cannot really run.

    Load failures (a truncated or corrupt file) become a UserError naming the file, since the usual
    cause is an interrupted export or copy and the fix is to export again.
    """
    import onnxruntime as ort

    wanted = _providers(provider)
    if CUDA in wanted:
        preload_cuda()
    try:
        session = ort.InferenceSession(str(path), sess_options=session_options(threads), providers=wanted)
    except Exception as exc:  # onnxruntime raises several private exception types for bad files
        if CUDA in wanted and provider == "auto" and _looks_like_cuda_failure(exc):
            _cuda_unusable.append(True)
            return create_session(path, "cpu", threads)
        raise Unloadable(_("The model file {name} in {parent} cannot be loaded: it is damaged or incomplete "
                           "({kind}).",
                           name=path.name, parent=path.parent, kind=type(exc).__name__),
                         _("Install or export the model again.")) from exc  # a bundle names the command
    got = session.get_providers()
    if CUDA in wanted and CUDA not in got:
        _cuda_unusable.append(True)
    if provider == "cuda" and CUDA not in got:
        raise UserError(_("The CUDA provider was requested, but CUDA could not start: no usable NVIDIA GPU, "
                          "driver or CUDA/cuDNN libraries were found."),
                        _("Install the NVIDIA driver and the CUDA and cuDNN versions your onnxruntime-gpu release "
                          "names, or set models.provider to cpu."))
    return session


def _looks_like_cuda_failure(exc: Exception) -> bool:
    text = str(exc).lower()
    return "cuda" in text or "cudnn" in text or "libcu" in text


def trim_heap() -> None:
    """Give the free memory of the C heap back to the system. glibc keeps freed blocks in the process,
    so without this each answer's scattered leftovers (a long prompt's slices, an image's tiles) stay
    resident and a daemon's memory creeps up (about 30 MB over a few requests here). Elsewhere: nothing."""
    import contextlib
    import ctypes
    import sys

    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):  # another C library (musl) has no malloc_trim
            ctypes.CDLL("libc.so.6").malloc_trim(0)


def int8_products(source: Path, target: Path) -> bool:
    """Write a copy of graph `source` whose 4-bit MatMulNBits weights multiply in int8 (see set_int8_products).
    False, and nothing written, when the graph has no such node."""
    return rewritten_copy(source, target, set_int8_products)


def rewritten_copy(source: Path, target: Path, *rewrites: Callable[[onnx.ModelProto], int]) -> bool:
    """Load graph `source` without its weights, apply every rewrite (each returns how many nodes it changed)
    and save the result as `target` (save_copy). False, and nothing written, when no rewrite changed a node."""
    import onnx

    model = onnx.load(str(source), load_external_data=False)
    if changed := sum(rewrite(model) for rewrite in rewrites):  # every rewrite runs, as in a sum of calls
        save_copy(model, source, target)
    return bool(changed)


def save_copy(model: onnx.ModelProto, source: Path, target: Path) -> list[Path]:
    """Save `model`, graph `source` rewritten after loading it without its external weights, as `target`,
    its weights still read from source's weight files: only the graph is new, so neither memory nor the disk
    holds the weights twice. onnxruntime 1.31 reads external weights only from the model's own folder (a
    relative location, no "..", no absolute path, no symbolic link leading out), so each weights file is
    hard-linked beside `target` as "<target stem>.<its name>" (one file on disk; a re-installed source file
    is a new file, and Bundle.derived then makes the copy again); where no hard link can be made (another
    file system, a file of another user) it is copied, as "<target stem>.copy.<its name>". The weights
    files placed beside `target`."""
    import shutil

    import onnx

    placed: dict[str, Path] = {}
    for tensor in _tensors(model.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        entry = next(e for e in tensor.external_data if e.key == "location")
        if entry.value == f"{target.name}.data":  # the copy's own weights, written beside it by a rewrite
            continue
        if entry.value not in placed:
            relative = Path(entry.value)
            if relative.is_absolute() or len(relative.parts) != 1:  # the published layout: beside the graph
                raise ValueError(_("its weights file {location} is not beside it", location=entry.value))
            published, beside = source.parent / relative, target.with_name(f"{target.stem}.{relative.name}")
            try:
                os.link(published, beside)
            except OSError:
                shutil.copyfile(published, beside := target.with_name(f"{target.stem}.copy.{relative.name}"))
            placed[entry.value] = beside
        entry.value = placed[entry.value].name
    onnx.save_model(model, str(target))
    return list(placed.values())


def append_weight(data: BinaryIO, location: str, name: str, array: np.ndarray, align: int) -> onnx.TensorProto:
    """Write `array` at the end of the open weights file `data` (`location`, beside the graph), starting on a
    multiple of `align` bytes, and return the initializer that reads it from there."""
    import numpy as np
    import onnx

    array = np.ascontiguousarray(array)
    data.write(b"\0" * (-data.tell() % align))
    start = data.tell()
    data.write(memoryview(array).cast("B"))  # no copy of a weight that may be gigabytes
    tensor = onnx.TensorProto(name=name, data_type=onnx.helper.np_dtype_to_tensor_dtype(array.dtype),
                              dims=array.shape, data_location=onnx.TensorProto.EXTERNAL)
    for key, value in (("location", location), ("offset", str(start)), ("length", str(array.nbytes))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return tensor


def _tensors(graph: onnx.GraphProto) -> Iterable[onnx.TensorProto]:
    """Every tensor stored in `graph` and its subgraphs: initializers and tensor attributes."""
    yield from graph.initializer
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            for sub in [attribute.g] if attribute.HasField("g") else attribute.graphs:
                yield from _tensors(sub)


def set_int8_products(model: onnx.ModelProto) -> int:
    """Make `model`'s 4-bit MatMulNBits weights multiply in int8 (accuracy level 4, what onnxruntime-genai uses
    on the CPU; the published q4 files say 0, float products, 2 to 3 times slower here). The number of
    nodes changed."""
    from onnx import helper

    nodes = [n for n in model.graph.node if n.op_type == "MatMulNBits"
             and next((a.i for a in n.attribute if a.name == "accuracy_level"), 0) != 4]
    for node in nodes:
        kept = [a for a in node.attribute if a.name != "accuracy_level"]
        del node.attribute[:]
        node.attribute.extend([*kept, helper.make_attribute("accuracy_level", 4)])
    return len(nodes)


def main_provider(session: ort.InferenceSession) -> str:
    """The provider that runs most of the graph: the first one the session really got."""
    return session.get_providers()[0]


def device_of(session: ort.InferenceSession) -> str:
    """"cuda" when the session runs on the GPU, else "cpu": where its cache tensors should live."""
    return "cuda" if main_provider(session) == CUDA else "cpu"


def usable_device(provider: str = "auto") -> str:
    """Where sessions asked for with `provider` really run ("cuda" or "cpu"), learnt before any model file
    is chosen: a listed CUDA provider is not yet a usable one (see cuda_works)."""
    return "cuda" if provider != "cpu" and cuda_works() else "cpu"


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
        return {name: self.initial_state(name, (1, heads, 0, head_dim))
                for name in self.input_shapes if name.startswith("past_key_values.")}

    def initial_state(self, name: str, fallback: tuple[int, ...]) -> ort.OrtValue:
        """Zeros for the state input `name` before the first step, in the session's type, on its device:
        each fixed dimension as the graph declares it, each symbolic one (batch, past length) from
        `fallback`, the family's reading of its config (batch 1, a growing length 0)."""
        import numpy as np

        dims = [d if isinstance(d, int) and d >= 0 else fallback[axis]
                for axis, d in enumerate(self.input_shapes[name])]
        return self.to_device(np.zeros(dims, np.float32), name)

    def run(self, inputs: Mapping[str, Any], to_host: Iterable[str], release: bool = False) -> dict[str, Any]:
        """Run once; `inputs` values are numpy arrays or OrtValues. Returns numpy for `to_host`
        outputs and device OrtValues for the rest. `release` hands the run's activations back to the
        system afterwards: the vision encoder's would otherwise stay in its arena during decoding."""
        import onnxruntime as ort

        options = self.releasing() if release else None

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
        self.execute(binding, options)
        values = binding.get_outputs()
        return {name: (value.numpy() if name in host else value)
                for name, value in zip(self.output_names, values, strict=True)}

    def releasing(self) -> ort.RunOptions:
        """Run options that hand the run's activations back to the system when it ends."""
        import onnxruntime as ort

        options = ort.RunOptions()
        options.add_run_config_entry("memory.enable_memory_arena_shrinkage",
                                     "gpu:0" if self.device == "cuda" else "cpu:0")
        return options

    def execute(self, binding: ort.IOBinding, options: ort.RunOptions | None = None) -> None:
        """Run a prepared binding (a loop that keeps one binding across steps rebinds only what changes)."""
        try:
            self.session.run_with_iobinding(binding, options)
        except Exception as exc:  # onnxruntime's own error types: out of memory, bad shapes, device loss
            raise UserError(_("The model file {label} failed while running: {splitlines}",
                              label=self.label, splitlines=str(exc).splitlines()[0][:200]),
                            _("Try again; if it keeps failing, check the model with: describe-screen models "
                              "verify, or set models.provider to cpu.")) from exc
