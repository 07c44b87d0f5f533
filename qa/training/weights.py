"""A reader's weights between PyTorch and its int8 ONNX export: quantised for shipping, and
back in PyTorch to train a shipped reader further (``qa train-reader --init``), when only
its export is kept.

Training code only: nothing here is imported when answering questions.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import QAError


def quantize(fp32: Path, int8: Path, per_column: bool = True) -> None:
    """Write the int8 model (weights only; activations are quantised as it runs).

    One scale per output column, on 7-bit weights, rather than one per matrix: the int8
    model then reads as the fp32 one does (held-out windows F1 0.746 against fp32's 0.749
    and one-scale-per-matrix's 0.736; ``bench/reader_quantisation.py``), at the same size
    and speed.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.disable(logging.WARNING)  # its advice to pre-process first: tried, no faster (docs/quality.md)
    try:
        quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8,
                         per_channel=per_column, reduce_range=per_column)
    finally:
        logging.disable(logging.NOTSET)


def reader_weights(folder: Path, state: dict) -> dict:
    """The weights of an exported reader (``folder``/reader.onnx, int8) as a state dict of
    ``build_model``'s model, ``state``: each int8 matrix times its scales. The word-piece
    table (never trained) and the pooler (never used) stay the base encoder's, in ``state``."""
    import onnx
    import torch
    from onnx import numpy_helper

    from ..readers.span import MODEL

    try:
        graph = onnx.load(str(folder / MODEL)).graph
    except Exception as exc:  # protobuf's own errors for a damaged file, OSError for none
        raise QAError(f"no trained reader in {folder} ({exc})") from None
    arrays = {t.name: numpy_helper.to_array(t) for t in graph.initializer}

    def dequantized(name: str) -> np.ndarray:
        q, zero = arrays[f"{name}_quantized"].astype(np.float32), arrays[f"{name}_zero_point"]
        return (q - zero.astype(np.float32)) * arrays[f"{name}_scale"]

    out = dict(state)
    for key in state:
        if key in arrays:
            out[key] = torch.from_numpy(arrays[key].copy())
        elif f"{key}_quantized" in arrays and "word_embeddings" not in key:
            out[key] = torch.from_numpy(dequantized(key))
    for node in graph.node:  # a linear layer's weight, stored transposed, named by its node
        if node.op_type == "MatMulInteger" and node.input[1].endswith("_quantized"):
            module = node.output[0].split("/")[1:-1] if node.output[0].startswith("/") else []
            weight = ".".join(module) + ".weight"
            if weight in state:
                out[weight] = torch.from_numpy(np.ascontiguousarray(
                    dequantized(node.input[1].removesuffix("_quantized")).T))
    missing = [k for k in state if out[k] is state[k] and not ("word_embeddings" in k or ".pooler." in k)]
    if missing:
        raise QAError(f"{folder / MODEL} is not a reader this code exported ({missing[0]} missing)")
    return out
