"""fuse-bias-activation: Conv2D/DepthwiseConv2dNative/MatMul + BiasAdd [+ Add] [+ activation] -> TF's fused ops.

The fused ops (``_FusedConv2D``, ``_FusedDepthwiseConv2dNative``, ``_FusedMatMul``) are the ones TF's own
grappler remapper emits for CPU; their kernels are in every TF build.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..ir import Graph, Node, Value
from ..dialects.tf_opdefs import onednn_enabled
from .base import Pass, PassResult, register_pass
from .patterns import sole_use

# op -> (fused op, activations its CPU kernel supports)
FUSABLE = {
    "Conv2D": ("_FusedConv2D", {"Relu", "Relu6", "Elu", "LeakyRelu"}),
    "DepthwiseConv2dNative": ("_FusedDepthwiseConv2dNative", {"Relu", "Relu6", "Elu"}),
    "MatMul": ("_FusedMatMul", {"Relu", "Relu6", "Elu", "LeakyRelu", "Tanh", "Sigmoid"}),
}
FUSED_TYPES = {"f32", "f16", "f64"}  # _FusedConv2D's T does not allow bf16
KEEP_ATTRS = {
    "Conv2D": ("T", "strides", "padding", "explicit_paddings", "data_format", "dilations", "use_cudnn_on_gpu"),
    "DepthwiseConv2dNative": ("T", "strides", "padding", "data_format", "dilations"),
    "MatMul": ("T", "transpose_a", "transpose_b"),
}


@register_pass
@dataclass(frozen=True)
class FuseBiasActivation(Pass):
    """After: no Conv2D / DepthwiseConv2dNative / MatMul (f32/f16/f64) is read only by a BiasAdd; each such
    pair, with a following activation (and, for Conv2D with oneDNN, a residual Add before it) that is the
    BiasAdd's only reader, is one fused op named like the last node it replaces."""

    name = "fuse-bias-activation"
    phase = "lower"
    # "auto", "true" or "false". Residual Add fusion only has a kernel in oneDNN builds (where TF rewrites
    # to _MklFusedConv2D); "auto" fuses it when TF has oneDNN on.
    fuse_add: str = "auto"

    def run(self, graph: Graph) -> PassResult:
        add_ok = onednn_enabled() if self.fuse_add == "auto" else self.fuse_add.lower() in ("1", "true", "yes")
        fused = 0
        for n in graph.topo_order(by_name=False):
            if n.graph is graph and n.op_type in FUSABLE and n.domain == "tf":
                fused += self._fuse(graph, n, add_ok)
        return PassResult.of(fused=fused)

    @staticmethod
    def _sole_reader(graph: Graph, v: Value):
        use = sole_use(graph, v)
        return None if use is None or use[0].control_inputs or use[0].domain != "tf" else use

    def _fuse(self, graph: Graph, n: Node, add_ok: bool) -> int:
        fused_op, acts = FUSABLE[n.op_type]
        if n.outputs[0].dtype.name not in FUSED_TYPES or n.control_inputs or len(n.inputs) != 2:
            return 0
        r = self._sole_reader(graph, n.outputs[0])
        if r is None or r[0].op_type != "BiasAdd" or r[1] != 0:
            return 0
        bias = r[0]
        if bias.attrs.get("data_format", "NHWC") != n.attrs.get("data_format", "NHWC") and n.op_type != "MatMul":
            return 0
        chain, ops, args = [bias], ["BiasAdd"], [bias.inputs[1]]
        nxt = self._sole_reader(graph, bias.outputs[0])
        if (add_ok and n.op_type == "Conv2D" and nxt and nxt[0].op_type in ("Add", "AddV2")
                and nxt[0].inputs[1 - nxt[1]].type == bias.outputs[0].type
                and nxt[0].inputs[1 - nxt[1]].shape.rank == 4):
            add = nxt[0]
            after = self._sole_reader(graph, add.outputs[0])
            # oneDNN fuses the residual Add only together with an activation.
            if after and after[0].op_type == "Relu":
                chain += [add]
                ops.append("Add")
                args.append(add.inputs[1 - nxt[1]])
                nxt = after
        if nxt and nxt[0].op_type in acts:
            chain.append(nxt[0])
            ops.append(nxt[0].op_type)
        elif ops[-1] == "Add":
            return 0
        last = chain[-1]
        attrs = {k: n.attrs[k] for k in KEEP_ATTRS[n.op_type] if k in n.attrs}
        t = n.attrs["T"]
        attrs.update(fused_ops=ops, num_args=len(args), epsilon=0.0)
        if n.op_type == "Conv2D":
            attrs.update(TArgs=[t] * len(args), num_host_args=0)
        if "LeakyRelu" in ops:
            attrs["leakyrelu_alpha"] = last.attrs.get("alpha", 0.2)
        f = graph.add_node(fused_op, [n.inputs[0], n.inputs[1]] + args, attrs, [last.outputs[0].type],
                           domain=n.domain, name=f"{last.name}/fused", device=n.device)
        graph.replace_all_uses_with(last.outputs[0], f.outputs[0], outputs=True)
        for m in reversed(chain):
            graph.remove_node(m, forward_control=False)
        graph.remove_node(n, forward_control=False)
        graph.rename(f, last.name)
        return 1
