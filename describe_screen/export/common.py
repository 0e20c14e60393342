"""Export helpers every family uses: source download, weight-set variants, checks.

Only the family modules import torch and transformers, and only inside their functions; these
helpers need onnx and onnxruntime at most, so `describe-screen models verify` never loads torch.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from describe_screen.errors import UserError
from describe_screen.i18n import _
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
        raise UserError(_("The precision {choice!r} is unknown.", choice=choice),
                        _("Use auto, all, fp32, int8 or fp16."))
    return [choice]


def resolve_source(manifest: ModelManifest, source: str | Path | None) -> Path:
    """The folder holding the original weights: `source` if it is a folder, else a download of the
    manifest's repo at its pinned revision (or of `source` taken as a repo id)."""
    if source is not None and Path(source).expanduser().is_dir():
        return Path(source).expanduser()
    if source is None and not manifest.revision:  # no commit pinned: a moving branch is never downloaded
        raise UserError(_("No checkpoint commit of {name} is pinned, so describe-screen does not download one.",
                          name=manifest.name),
                        _("Install its published files with: describe-screen models install {name}; or export a "
                          "checkpoint you have with: describe-screen models export {name} --source FOLDER.",
                          name=manifest.name))
    repo = str(source) if source is not None else manifest.repo
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:
        raise UserError(_("Downloading a model needs the huggingface_hub package, which is not installed."),
                        _("Install it with: pip install 'describe-screen[export]'.")) from exc
    try:
        return Path(snapshot_download(repo_id=repo, revision=manifest.revision if source is None else None,
                                      allow_patterns=["*.json", "*.safetensors", "*.jinja", "*.txt"]))
    except Exception as exc:  # network, authentication and missing-revision errors all end here
        raise UserError(_("The model {repo} could not be downloaded: {exc}.", repo=repo, exc=exc),
                        _("Check the internet connection, or pass a local folder with --source.")) from exc


def check_onnx(path: Path) -> None:
    """onnx's structural check; a broken graph is caught at export, not on a user's first request."""
    import onnx

    onnx.checker.check_model(str(path))


def quantize_int8(src: Path, dst: Path, op_types: tuple[str, ...] = ("MatMul", "Gemm")) -> None:
    """Dynamic int8 quantisation of the MatMul/Gemm weights, one scale per output channel (activations
    stay float): for the CPU. Per-channel scales kept 91% of tiny-model tokens where per-tensor kept 83%.
    `op_types` ("Gather",) quantises a lookup table instead (one scale for the table, as the published
    int8 token embeddings)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, op_types_to_quantize=list(op_types),
                     per_channel=True, reduce_range=False)


def convert_fp16(src: Path, dst: Path, float32_inputs: Iterable[str] = ()) -> None:
    """float16 weights, compute and inputs/outputs for GPUs, as the published _fp16 files: except the inputs
    named in `float32_inputs` (the SmolVLM decoder's inputs_embeds), which stay float32 and are cast inside."""
    import onnx
    from onnx import TensorProto, helper
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=False, disable_shape_infer=True)
    graph = model.graph
    casts = []
    for info in graph.input:
        if info.name in set(float32_inputs) and info.type.tensor_type.elem_type == TensorProto.FLOAT16:
            inside = f"{info.name}_fp16"
            for node in graph.node:
                node.input[:] = [inside if name == info.name else name for name in node.input]
            casts.append(helper.make_node("Cast", [info.name], [inside], to=TensorProto.FLOAT16,
                                          name=f"{info.name}_to_fp16"))
            info.type.tensor_type.elem_type = TensorProto.FLOAT
    if casts:
        nodes = [*casts, *graph.node]
        del graph.node[:]
        graph.node.extend(nodes)
    onnx.save(model, str(dst))


def quantize_q4(src: Path, dst: Path) -> None:
    """4-bit weights in blocks of 32 with one scale each, in com.microsoft MatMulNBits nodes (the published
    _q4 files; _q4f16 when `src` is the float16 graph). Activations and I/O keep `src`'s types."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    quantizer = MatMulNBitsQuantizer(onnx.load(str(src)), bits=4, block_size=32, is_symmetric=True)
    quantizer.process()
    quantizer.model.save_model_to_file(str(dst), use_external_data_format=False)


def make_variants(out_dir: Path, bases: Iterable[str], wanted: list[str],
                  float32_inputs: dict[str, list[str]] | None = None) -> None:
    """Write the int8/fp16/q4/q4f16 variants of each fp32 `bases` file, named as the published ones;
    drop the fp32 file if not wanted. `float32_inputs[base]` lists inputs its float16 graphs keep float32."""
    for base in bases:
        fp16 = out_dir / variant_name(base, "fp16")
        for precision in wanted:
            target = out_dir / variant_name(base, precision)
            if precision == "int8":
                quantize_int8(out_dir / base, target)
            elif precision == "q4":
                quantize_q4(out_dir / base, target)
            elif precision in ("fp16", "q4f16") and not fp16.exists():
                convert_fp16(out_dir / base, fp16, (float32_inputs or {}).get(base, ()))
        if "q4f16" in wanted:
            quantize_q4(fp16, out_dir / variant_name(base, "q4f16"))
            if "fp16" not in wanted:
                fp16.unlink()
        if "fp32" not in wanted:
            (out_dir / base).unlink()
