"""ONNX export and import.

``export(model, x, "model.onnx")`` writes a file that onnxruntime runs; ``load("model.onnx")``
turns an ONNX graph (exported here or by PyTorch) back into an ``nn.Module`` that runs on this
engine, so it can be evaluated, fine-tuned and gradient-checked. See ``docs/onnx.md``.

The ``onnx`` package (extra ``onnx``) is imported only inside the functions that need it.
"""

from .export import CONSTANT_DOC, EXPORTABLE_OPS, export, op_histogram, to_onnx, write_model
from .load import SUPPORTED_OPS, OnnxFormatError, OnnxModule, load

__all__ = ["export", "to_onnx", "write_model", "op_histogram", "load", "OnnxModule", "OnnxFormatError",
           "CONSTANT_DOC", "EXPORTABLE_OPS", "SUPPORTED_OPS"]
