"""canonicalize-dilated-conv: SpaceToBatchND -> convolution -> BatchToSpaceND as one dilated convolution.

``tf.nn.convolution`` with a dilation rate (Keras 3's dilated Conv2D / DepthwiseConv2D on CPU) traces the
dilation as a space-to-batch transform around a plain VALID convolution. A dilated convolution computes the
same: pad the input by the space-to-batch ``paddings``, convolve with ``dilations = block_shape``, crop the
result by the batch-to-space ``crops``. With stride 1, cropping the output's start is removing input
padding, so the whole is one convolution with padding ``paddings - crops`` per side (SAME, VALID or
EXPLICIT). oneDNN runs dilated convolutions directly, the fused-kernel lowering sees a plain conv (and its
bias), and the ONNX export needs no space-to-batch ops.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..ir import Graph, Node
from .base import Pass, PassResult, register_pass
from .patterns import RuleSet, apply_rules, const_array, remove_dead, rule, sole_use

CONVS = ("Conv2D", "DepthwiseConv2dNative")


def _padding(pads: np.ndarray, kernel: tuple[int, int], rate: np.ndarray) -> tuple[str, list[int]]:
    """TF padding attributes for per-side input pads [[top, bottom], [left, right]] of a stride-1 conv."""
    if not pads.any():
        return "VALID", []
    same = []
    for k, d in zip(kernel, rate):
        total = (k - 1) * int(d)
        same.append([total // 2, total - total // 2])
    if np.array_equal(pads, np.array(same)):
        return "SAME", []
    return "EXPLICIT", [0, 0, int(pads[0, 0]), int(pads[0, 1]), int(pads[1, 0]), int(pads[1, 1]), 0, 0]


def _match(graph: Graph, b2s: Node) -> Optional[tuple[Node, Node, np.ndarray, np.ndarray]]:
    conv = b2s.inputs[0].node if b2s.inputs[0] is not None else None
    if conv is None or conv.domain != "tf" or conv.op_type not in CONVS or b2s.inputs[0].index != 0:
        return None
    s2b = conv.inputs[0].node if conv.inputs[0] is not None else None
    if s2b is None or s2b.domain != "tf" or s2b.op_type != "SpaceToBatchND":
        return None
    block, crops = const_array(b2s.inputs[1]), const_array(b2s.inputs[2])
    block2, pads = const_array(s2b.inputs[1]), const_array(s2b.inputs[2])
    if any(a is None for a in (block, crops, block2, pads)) or block.shape != (2,) \
            or not np.array_equal(block, block2) or pads.shape != (2, 2) or crops.shape != (2, 2):
        return None
    if conv.attrs.get("data_format", "NHWC") not in ("NHWC", b"NHWC") or conv.attrs.get("padding") not in ("VALID", b"VALID"):
        return None
    if list(conv.attrs.get("strides", [1, 1, 1, 1])) != [1, 1, 1, 1] \
            or list(conv.attrs.get("dilations", [1, 1, 1, 1])) != [1, 1, 1, 1]:
        return None
    eff = pads.astype(np.int64) - crops.astype(np.int64)
    if (eff < 0).any():
        return None
    if sole_use(graph, s2b.outputs[0]) is None or sole_use(graph, conv.outputs[0]) is None:
        return None
    if graph.is_output(conv.outputs[0]) or graph.is_output(s2b.outputs[0]) or conv.control_inputs \
            or graph.control_users(conv) or graph.control_users(s2b):
        return None
    return conv, s2b, block.astype(np.int64), eff


@rule("tf", "BatchToSpaceND")
def dilated_conv(graph: Graph, b2s: Node):
    m = None if graph.is_output(b2s.outputs[0]) else _match(graph, b2s)
    if m is None:
        return None
    conv, s2b, rate, pads = m
    fdims = conv.inputs[1].shape.dims
    if fdims is None or fdims[0] is None or fdims[1] is None:
        return None
    padding, explicit = _padding(pads, (int(fdims[0]), int(fdims[1])), rate)
    graph.set_input(conv, 0, s2b.inputs[0])
    graph.set_attr(conv, "dilations", [1, int(rate[0]), int(rate[1]), 1])
    graph.set_attr(conv, "padding", padding)
    if explicit:
        graph.set_attr(conv, "explicit_paddings", explicit)
    elif "explicit_paddings" in conv.attrs:
        graph.set_attr(conv, "explicit_paddings", [])
    graph.set_output_types(conv, [b2s.outputs[0].type])
    remove_dead(graph, [s2b])
    return conv.outputs[0]


RULES = RuleSet([dilated_conv])


@register_pass
@dataclass(frozen=True)
class CanonicalizeDilatedConv(Pass):
    """After: no SpaceToBatchND -> stride-1 VALID Conv2D / DepthwiseConv2dNative -> BatchToSpaceND chain
    with constant block shapes, paddings and crops (crops no larger than the paddings) remains: each is one
    convolution with ``dilations`` = the block shape, named like the convolution."""

    name = "canonicalize-dilated-conv"
    phase = "canonicalize"

    def run(self, graph: Graph) -> PassResult:
        return PassResult.of(**apply_rules(graph, RULES))
