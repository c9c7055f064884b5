"""inline-grouped-conv: inline the XLA-compiled function calls Keras 3 makes for grouped convolutions.

Keras 3 traces ``Conv2D(groups=g)`` as a ``StatefulPartitionedCall`` of a library function marked
``_XlaMustCompile`` holding one Conv2D with a grouped filter ``(kh, kw, Cin/g, Cout)``; TF compiles and
runs that body with XLA at every call, which on CPU costs far more than the convolution (a 7x7 depthwise
convolution on 4x56x56x96 takes ~0.9 s through XLA, ~10 ms as DepthwiseConv2dNative). This pass inlines
such calls and lowers each grouped Conv2D in the body to ops TF's CPU kernels run without XLA:

* ``g == Cin`` (depthwise, with a depth multiplier ``m = Cout/Cin``): DepthwiseConv2dNative with the
  filter reshaped to ``(kh, kw, Cin, m)`` (output channel ``c*m + j`` is the same in both layouts);
* otherwise (or a depthwise form TF's kernel here cannot run): Split of the input into ``g`` channel
  groups, ``g`` ordinary Conv2Ds with the filter sliced (as constants when it is one), ConcatV2. Every
  later pass then sees only convolutions whose filter depth equals the input depth (TF's
  ``_FusedConv2D`` without oneDNN rejects grouped filters). ``grouped=conv2d`` keeps the grouped Conv2D
  instead: TF 2.21's CPU kernels run it (~20% faster than the split with oneDNN), but only oneDNN builds
  can fuse it with its bias.

Strides, dilations, SAME/VALID/EXPLICIT padding and whatever else the body holds (a BiasAdd, an
activation) are carried over. A call whose body cannot be inlined this way (no grouped Conv2D, a
stateful op, an op without CPU kernel, a nested call) is left as it is, with a warning naming the
function, and counted in ``xla_calls_left``. Inlined functions no node calls any more leave the library.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..errors import ConfigError, GraphirError, one_line
from ..dialects.tf_canonical import depthwise_kernel_accepts, runs_without_xla
from ..dialects.tf_functions import callee, drop_functions, has_library, must_compile
from ..frontends.tf.functions import function_body
from ..ir import Graph, Node, Value
from ..ir.types import Shape, TensorType, i32
from ..runtime_check.target import onednn_enabled
from .base import Pass, PassResult, register_pass
from .patterns import add_const, const_array, move_control_users

GROUPED_FORMS = ("split", "conv2d")


def _with_channels(t: TensorType, c: int) -> TensorType:
    return TensorType(t.dtype, Shape(t.shape.dims[:-1] + (c,)))


def _attrs(node: Node) -> dict:
    """A copy of ``node``'s attributes a new node may own (list values copied)."""
    return {k: list(v) if isinstance(v, list) else v for k, v in node.attrs.items()}


def _group_count(conv: Node) -> Optional[int]:
    """The number of groups of a Conv2D (1 for an ordinary one), None when the shapes do not say."""
    x, w = conv.inputs[0].shape, conv.inputs[1].shape
    if x.rank != 4 or not w.is_static or w.rank != 4 or x.dims[3] is None or conv.attrs.get(
            "data_format", "NHWC") != "NHWC":
        return None
    cin, cg, cout = x.dims[3], w.dims[2], w.dims[3]
    if cg == 0 or cin % cg or cout % (cin // cg):
        return None
    return cin // cg


@register_pass
@dataclass(frozen=True)
class InlineGroupedConv(Pass):
    """After: no call of an ``_XlaMustCompile`` function whose body holds a grouped Conv2D (NHWC, static
    filter and input channels) and otherwise only stateless ops with CPU kernels; each such call is
    replaced by its body, grouped Conv2Ds lowered to DepthwiseConv2dNative or Split/Conv2D/ConcatV2."""

    name = "inline-grouped-conv"
    phase = "canonicalize"
    grouped: str = "split"   # the form of a non-depthwise grouped conv: split | conv2d
    onednn: str = "auto"     # auto | true | false: whether TF's oneDNN kernels run the result

    def run(self, graph: Graph) -> PassResult:
        if self.grouped not in GROUPED_FORMS:
            raise ConfigError(f"pass {self.name!r}: grouped={self.grouped!r}; expected one of "
                              f"{', '.join(GROUPED_FORMS)}")
        calls = [n for n in graph.nodes() if callee(n) is not None and must_compile(graph, n)]
        if not calls:
            return PassResult.of()
        onednn = onednn_enabled() if self.onednn == "auto" else self.onednn.lower() in ("1", "true", "yes")
        counts = {"inlined": 0, "depthwise": 0, "split": 0, "grouped_conv2d": 0, "xla_calls_left": 0}
        warnings, inlined = [], set()
        for call in calls:
            fname = callee(call)
            body, reason = self._body(graph, call, fname)
            if body is None:
                counts["xla_calls_left"] += 1
                warnings.append(f"XLA function {fname!r} (called by {call.name!r}) left as it is: {reason}")
                continue
            self._inline(graph, call, body, onednn, counts)
            counts["inlined"] += 1
            inlined.add(fname)
        counts["functions_dropped"] = len(drop_functions(graph, inlined))
        res = PassResult.of(**counts)
        res.warnings.extend(warnings)
        return res

    # ------------------------------------------------------------------ matching
    @staticmethod
    def _body(graph: Graph, call: Node, fname: str) -> tuple[Optional[Graph], str]:
        if not has_library(graph):
            return None, "the graph carries no readable function library"
        if call.control_inputs:
            return None, "the call has control inputs"
        try:
            body = function_body(graph, fname, [v.type for v in call.inputs])
        except (KeyError, ValueError, GraphirError) as e:
            return None, f"cannot read its body: {one_line(e, 200)}"
        if len(body.outputs) != len(call.outputs):
            return None, "its results do not match the call"
        for p, v in zip(body.outputs, call.outputs):
            if p.value.dtype is not v.dtype or p.value.shape.rank != v.shape.rank:
                return None, f"result {p.name!r} is {p.value.type.text()}, the call's {v.type.text()}"
        grouped = 0
        for n in body.nodes():
            if n.info.source or n.op_type in ("Identity", "NoOp"):
                continue
            if any(k == "f" or k.endswith("_fn") for k in n.attrs) or n.op_type in ("If", "While"):
                return None, f"its body calls a function ({n.name!r})"
            if n.info.stateful:
                return None, f"its body holds the stateful op {n.op_type}"
            if n.op_type == "Conv2D":
                k = _group_count(n)
                if k is None:
                    return None, f"the Conv2D {n.name!r} has unknown channels or is not NHWC"
                grouped += k > 1
                continue
            dt = n.outputs[0].dtype if n.outputs else None
            if not runs_without_xla(n.op_type, dt):
                return None, f"{n.op_type} has no CPU kernel for {dt} outside XLA"
        if not grouped:
            return None, "its body holds no grouped Conv2D"
        return body, ""

    # ------------------------------------------------------------------ rewriting
    def _inline(self, graph: Graph, call: Node, body: Graph, onednn: bool, counts: dict) -> None:
        vmap: dict[Value, Value] = {p.value: v for p, v in zip(body.inputs, call.inputs)}
        prefix = call.name
        for n in body.topo_order():
            if n.info.source or n.op_type == "NoOp":
                continue
            if n.op_type == "Identity":  # argument reads and result copies
                vmap[n.outputs[0]] = vmap[n.inputs[0]]
                continue
            ins = [vmap[v] for v in n.inputs]
            if n.op_type == "Conv2D" and _group_count(n) > 1:
                vmap[n.outputs[0]] = self._lower(graph, call, n, ins[0], ins[1], f"{prefix}/{n.name}", onednn,
                                                 counts)
                continue
            m = graph.add_node(n.op_type, ins, _attrs(n), [v.type for v in n.outputs], domain=n.domain,
                               name=f"{prefix}/{n.name}", device=call.device)
            for a, b in zip(n.outputs, m.outputs):
                vmap[a] = b
        outs = [vmap[p.value] for p in body.outputs]
        move_control_users(graph, call, [v.node for v in outs if v.node is not None])
        graph.replace_node(call, outs)

    def _lower(self, graph: Graph, call: Node, conv: Node, x: Value, w: Value, name: str, onednn: bool,
               counts: dict) -> Value:
        kh, kw, cg, cout = conv.inputs[1].shape.dims
        cin = conv.inputs[0].shape.dims[3]
        groups = cin // cg
        attrs = _attrs(conv)
        out_t = conv.outputs[0].type
        warr = const_array(w)
        strides, dilations = attrs.get("strides", [1] * 4), attrs.get("dilations", [1] * 4)
        if cg == 1 and depthwise_kernel_accepts(strides, dilations, onednn):
            m = cout // cin
            shape = (kh, kw, cin, m)
            if warr is not None:
                wd = add_const(graph, warr.reshape(shape), f"{name}/depthwise_filter", like=call)
            else:
                s = add_const(graph, np.asarray(shape, np.int32), f"{name}/depthwise_filter/shape", like=call)
                wd = graph.add_node("Reshape", [w, s], {"T": w.dtype, "Tshape": i32},
                                    [TensorType(w.dtype, Shape(shape))], domain="tf",
                                    name=f"{name}/depthwise_filter", device=call.device).outputs[0]
            keep = ("T", "strides", "padding", "data_format", "dilations")
            dw_attrs = {k: attrs[k] for k in keep if k in attrs}
            if attrs.get("padding") == "EXPLICIT":
                dw_attrs["explicit_paddings"] = list(attrs.get("explicit_paddings", []))
            counts["depthwise"] += 1
            return graph.add_node("DepthwiseConv2dNative", [x, wd], dw_attrs, [out_t], domain="tf", name=name,
                                  device=call.device).outputs[0]
        if self.grouped == "conv2d":
            counts["grouped_conv2d"] += 1
            return graph.add_node("Conv2D", [x, w], _attrs(conv), [out_t], domain="tf", name=name,
                                  device=call.device).outputs[0]
        co = cout // groups
        axis = add_const(graph, np.asarray(3, np.int32), f"{name}/axis", like=call)
        xs = graph.add_node("Split", [axis, x], {"T": x.dtype, "num_split": groups},
                            [_with_channels(x.type, cg)] * groups, domain="tf", name=f"{name}/split",
                            device=call.device).outputs
        if warr is not None:
            ws = [add_const(graph, np.ascontiguousarray(warr[..., k * co:(k + 1) * co]), f"{name}/filter_{k}",
                            like=call) for k in range(groups)]
        else:
            ws = graph.add_node("Split", [axis, w], {"T": w.dtype, "num_split": groups},
                                [_with_channels(w.type, co)] * groups, domain="tf", name=f"{name}/filter_split",
                                device=call.device).outputs
        ys = [graph.add_node("Conv2D", [xs[k], ws[k]], _attrs(conv), [_with_channels(out_t, co)], domain="tf",
                             name=f"{name}/group_{k}", device=call.device).outputs[0] for k in range(groups)]
        counts["split"] += 1
        return graph.add_node("ConcatV2", ys + [axis], {"T": out_t.dtype, "N": groups, "Tidx": i32}, [out_t],
                              domain="tf", name=name, device=call.device).outputs[0]
