"""Write an ONNX graph node by node from weights, streaming the weights into its external data file.

For families whose published graphs use onnxruntime's fused operators (LinearAttention, GroupQueryAttention,
MatMulNBits ...), which no tracer emits: the exporter states the network directly, as onnxruntime-genai's
builder does. Weights go to `<graph>.onnx_data` as they are added, so a model larger than memory allows
twice (the real 2B in float32) is written holding one tensor at a time. `quantize` picks how projections
are stored: float32 MatMul, or 4-bit MatMulNBits blocks of 32 with float32 activations (the published q4).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

OPSET = 17
MS = "com.microsoft"
BLOCK = 32  # 4-bit block size along the input dimension, as the published q4 files
INLINE_BYTES = 1024  # smaller tensors stay inside the .onnx file, as onnx.save's own threshold
ALIGN = 4096  # weights start on page boundaries so onnxruntime can map them instead of copying


def quantize_4bit(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(packed, scales, zero_points) of a (K, N) float matrix in onnxruntime's MatMulNBits layout: per output
    column N, blocks of 32 along K, asymmetric (min/max) with packed 4-bit zero points, computed by
    onnxruntime's own MLAS routine so the numbers are exactly what its quantiser writes."""
    import numpy as np
    from onnxruntime.capi._pybind_state import quantize_matmul_4bits

    rows, cols = weight.shape
    blocks = (rows + BLOCK - 1) // BLOCK
    packed = np.zeros((cols, blocks, BLOCK // 2), dtype=np.uint8)
    scales = np.zeros((cols, blocks), dtype=np.float32)
    zero_points = np.zeros((cols, (blocks + 1) // 2), dtype=np.uint8)
    quantize_matmul_4bits(packed, np.ascontiguousarray(weight, dtype=np.float32), scales, zero_points, BLOCK, cols,
                          rows, False)
    return packed, scales, zero_points


class GraphWriter:
    """One graph under construction: inputs, outputs, nodes and streamed initializers."""

    def __init__(self, path: Path, quantize: bool = False) -> None:
        self.path = path
        self.quantize = quantize
        self.data_name = path.name + "_data"
        self._data = (path.parent / self.data_name).open("wb")
        self.nodes: list[Any] = []
        self.inputs: list[Any] = []
        self.outputs: list[Any] = []
        self.initializers: list[Any] = []
        self._constants: dict[tuple, str] = {}
        self._count = 0

    # -- declarations
    def input(self, name: str, elem_type: int, shape: list[Any]) -> str:
        from onnx import helper

        self.inputs.append(helper.make_tensor_value_info(name, elem_type, shape))
        return name

    def output(self, name: str, elem_type: int, shape: list[Any]) -> None:
        from onnx import helper

        self.outputs.append(helper.make_tensor_value_info(name, elem_type, shape))

    def weight(self, name: str, array: np.ndarray) -> str:
        """An initializer; large ones are appended to the external data file right away."""
        import numpy as np
        import onnx
        from onnx import numpy_helper

        array = np.ascontiguousarray(array)
        if array.nbytes <= INLINE_BYTES:
            self.initializers.append(numpy_helper.from_array(array, name))
            return name
        offset = -self._data.tell() % ALIGN
        self._data.write(b"\0" * offset)
        start = self._data.tell()
        self._data.write(array.tobytes())
        tensor = onnx.TensorProto(name=name, data_type=onnx.helper.np_dtype_to_tensor_dtype(array.dtype),
                                  dims=array.shape, data_location=onnx.TensorProto.EXTERNAL)
        for key, value in (("location", self.data_name), ("offset", str(start)), ("length", str(array.nbytes))):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
        self.initializers.append(tensor)
        return name

    def const(self, values: Any, dtype: str = "int64") -> str:
        """A small constant (shapes, axes, scalars), shared by every node that needs the same one."""
        import numpy as np

        array = np.asarray(values, dtype=dtype)
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self._constants:
            self._constants[key] = self.weight(f"const_{len(self._constants)}", array)
        return self._constants[key]

    # -- nodes
    def op(self, op_type: str, inputs: list[str], outputs: int | list[str] = 1, domain: str = "",
           name: str = "", **attrs: Any) -> Any:
        """Add a node; returns its output name (or the list of them when it has several)."""
        from onnx import helper

        self._count += 1
        node_name = name or f"{op_type}_{self._count}"
        names = outputs if isinstance(outputs, list) else [f"{node_name}/out{i}" for i in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, names, name=node_name, domain=domain or None,
                                           **{k: v for k, v in attrs.items() if v is not None}))
        return names[0] if len(names) == 1 else names

    def linear(self, x: str, weight: np.ndarray, name: str, bias: np.ndarray | None = None,
               output: str | None = None, dense: bool = False) -> str:
        """x @ weight (+ bias) for a (in, out) weight: MatMul, or MatMulNBits when quantising (unless `dense`)."""
        outputs = [output] if output else 1
        if self.quantize and not dense:
            rows, cols = weight.shape
            packed, scales, zero_points = quantize_4bit(weight)
            inputs = [x, self.weight(f"{name}.qweight", packed), self.weight(f"{name}.scales", scales),
                      self.weight(f"{name}.zero_points", zero_points)]
            if bias is not None:
                inputs += ["", self.weight(f"{name}.bias", bias.astype("float32"))]
            return self.op("MatMulNBits", inputs, outputs, MS, name=f"{name}/MatMulNBits", K=rows, N=cols, bits=4,
                           block_size=BLOCK)
        if bias is None:
            return self.op("MatMul", [x, self.weight(f"{name}.weight", weight.astype("float32"))], outputs,
                           name=f"{name}/MatMul")
        product = self.op("MatMul", [x, self.weight(f"{name}.weight", weight.astype("float32"))], name=f"{name}/MatMul")
        return self.op("Add", [product, self.weight(f"{name}.bias", bias.astype("float32"))], outputs,
                       name=f"{name}/Add")

    def save(self, graph_name: str) -> Path:
        """Write the .onnx file next to its finished data file (removed again when nothing went there)."""
        import onnx
        from onnx import helper

        self._data.close()
        data = self.path.parent / self.data_name
        if data.stat().st_size == 0:
            data.unlink()
        graph = helper.make_graph(self.nodes, graph_name, self.inputs, self.outputs, self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(MS, 1)],
                                  producer_name="describe-screen")
        model.ir_version = 8
        onnx.save_model(model, str(self.path))
        return self.path
