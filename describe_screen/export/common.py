"""Export helpers every family uses: source download, weight-set variants, checks.

Only the family modules import torch and transformers, and only inside their functions; these
helpers need onnx and onnxruntime at most, so `describe-screen models verify` never loads torch.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from describe_screen.errors import UserError
from describe_screen.vlm.bundle import variant_name

if TYPE_CHECKING:
    from describe_screen.models import ModelManifest

PRECISIONS = ("fp32", "int8", "fp16")


def precisions(choice: str) -> list[str]:
    """"auto" = fp32 + int8 (the CPU runs int8 fastest, fp32 is the reference); "all" adds fp16 for GPUs."""
    if choice == "auto":
        return ["fp32", "int8"]
    if choice == "all":
        return list(PRECISIONS)
    if choice not in PRECISIONS:
        raise UserError(f"The precision {choice!r} is unknown.", "Use auto, all, fp32, int8 or fp16.")
    return [choice]


def resolve_source(manifest: ModelManifest, source: str | Path | None) -> Path:
    """The folder holding the original weights: `source` if it is a folder, else a download of the
    manifest's repo at its pinned revision (or of `source` taken as a repo id)."""
    if source is not None and Path(source).expanduser().is_dir():
        return Path(source).expanduser()
    repo = str(source) if source is not None else manifest.repo
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:
        raise UserError("Downloading a model needs the huggingface_hub package, which is not installed.",
                        "Install it with: pip install 'describe-screen[export]'.") from exc
    try:
        return Path(snapshot_download(repo_id=repo, revision=manifest.revision if source is None else None,
                                      allow_patterns=["*.json", "*.safetensors", "*.jinja", "*.txt"]))
    except Exception as exc:  # network, authentication and missing-revision errors all end here
        raise UserError(f"The model {repo} could not be downloaded: {exc}.",
                        "Check the internet connection, or pass a local folder with --source.") from exc


def check_onnx(path: Path) -> None:
    """onnx's structural check; a broken graph is caught at export, not on a user's first request."""
    import onnx

    onnx.checker.check_model(str(path))


def quantize_int8(src: Path, dst: Path) -> None:
    """Dynamic int8 quantisation of the MatMul/Gemm weights, one scale per output channel (activations
    stay float): for the CPU. Per-channel scales kept 91% of tiny-model tokens where per-tensor kept 83%."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"],
                     per_channel=True, reduce_range=False)


def convert_fp16(src: Path, dst: Path) -> None:
    """float16 weights and compute for GPUs; inputs and outputs stay float32 so the runtime feeds the
    same tensors whatever the precision."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True, disable_shape_infer=True)
    onnx.save(model, str(dst))


def make_variants(out_dir: Path, bases: Iterable[str], wanted: list[str]) -> None:
    """Write the int8/fp16 variants of each fp32 `bases` file; drop the fp32 file if not wanted."""
    for base in bases:
        for precision in wanted:
            if precision == "int8":
                quantize_int8(out_dir / base, out_dir / variant_name(base, "int8"))
            elif precision == "fp16":
                convert_fp16(out_dir / base, out_dir / variant_name(base, "fp16"))
        if "fp32" not in wanted:
            (out_dir / base).unlink()
