"""lower-onednn: rewrite contraction chains into the fused CPU kernels the installed TF executes.

A chain is a Conv2D / DepthwiseConv2dNative / MatMul, then a bias (BiasAdd, or Add of a per-channel
constant; a zero bias when there is none), a residual Add of a same-shaped tensor, and an activation: one op
(Relu, Relu6, Elu, LeakyRelu, Sigmoid, Tanh) or a group of elementwise ops that computes swish, GELU (exact
or tanh), mish or hard-swish. BatchMatMulV2 chains are a scale (Mul by a one-element constant) and an Add.
The longest prefix that a kernel of :mod:`graphir.dialects.tf_onednn` executes becomes one node; the rest
stays as it was. The pass runs after precision assignment, so every node already has its dtype (T = f32 or
bf16), and works in both.

A MatMul whose output is reshaped before its bias (Keras's Dense on a rank-3 input) fuses the same, with the
Reshape moved after it; a spatial Pad feeding a VALID bf16 convolution becomes its EXPLICIT padding.

Grappler's remapper fuses part of this at run time. On the trained-like benchmark models it fused bf16
Conv2D + BiasAdd (+ Relu/Relu6, + a residual Add alone) itself, but not a residual Add followed by Relu
(ResNet50's 16 blocks), not a bias that constant folding deleted as zero, and not Keras's composite
activations.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..dialects import tf_onednn as K
from ..errors import ConfigError
from ..ir import Graph, Node, Shape, TensorType, Value
from ..ir.types import f32, i32
from .base import Pass, PassResult, register_pass
from .fold_batch_norms import per_channel
from .patterns import add_const, const_array, move_control_users, protected, remove_dead, sole_use

DTYPES = ("f32", "bf16")
MAX_ACTIVATION_NODES = 16
COUNT_NAMES = {"Conv2D": "fused_conv", "DepthwiseConv2dNative": "fused_depthwise", "MatMul": "fused_matmul",
               "BatchMatMulV2": "fused_batch_matmul"}


def private_ops_for(target: str) -> bool:
    """Whether ``target`` may run oneDNN-only kernels: ``generic`` never, the bf16 CPU targets always (their
    TF builds have oneDNN), ``native`` when this TF has oneDNN on."""
    from ..runtime_check.target import TARGETS, onednn_enabled

    if target not in TARGETS:
        raise ConfigError(f"lower-onednn: unknown target {target!r}; expected one of {', '.join(TARGETS)}")
    if target == "generic":
        return False
    return onednn_enabled() if target == "native" else True


@dataclass
class _Chain:
    anchor: Node
    dtype: str
    base: str              # the kernel table's base op: the anchor's type, or MatMul for a BatchMatMulV2 by a matrix
    nodes: list            # chain nodes after the anchor, in order (all removed when fused)
    bias: Optional[Value] = None
    bias_array: Optional[np.ndarray] = None   # a per-channel constant found as Add's operand
    addend: Optional[Value] = None
    add_pos: int = 0        # len(nodes) once the residual Add is taken
    act: Optional[str] = None
    act_nodes: tuple = ()
    alpha: float = 0.2
    bias_pos: int = 0       # len(nodes) once the bias is taken
    reshape: Optional[Node] = None  # a Reshape between a MatMul and its bias that keeps the last dim
    pad: Optional[Node] = None      # a spatial Pad feeding a VALID Conv2D


@register_pass
@dataclass(frozen=True)
class LowerOneDNN(Pass):
    """After: no Conv2D / DepthwiseConv2dNative / MatMul / BatchMatMulV2 (T f32 or bf16) whose bias, residual
    Add and activation a kernel of the table executes fused is followed by them; each such chain is one fused
    node, named like the contraction (or like the chain's last node when that is a graph output). A MatMul
    whose output is reshaped first (Keras's Dense on a rank-3 input) fuses the same and is reshaped after.
    ``target=generic`` emits only kernels that run without oneDNN."""

    name = "lower-onednn"
    phase = "lower"
    target: str = "native"

    def run(self, graph: Graph) -> PassResult:
        private = private_ops_for(self.target)
        matcher = ActivationMatcher()
        counts: Counter = Counter()
        for n in graph.topo_order(by_name=False):
            if n.graph is graph and n.domain == "tf" and n.op_type in K.BASES:
                chain = self._match(graph, n, matcher)
                done = chain is not None and self._lower(graph, chain, private, counts)
                if not done and n.op_type == "BatchMatMulV2":
                    self._lower_batch_matmul(graph, n, private, counts)
        return PassResult.of(**{k: v for k, v in sorted(counts.items()) if v})

    # ------------------------------------------------------------------ matching
    @staticmethod
    def _reader(graph: Graph, v: Value):
        use = sole_use(graph, v)
        if use is None or use[0].domain != "tf" or use[0].control_inputs:
            return None
        return use

    @staticmethod
    def _dtype(n: Node) -> Optional[str]:
        t = n.attrs.get("T")
        name = getattr(t, "name", None)
        return name if name in DTYPES else None

    def _match(self, graph: Graph, n: Node, matcher: "ActivationMatcher") -> Optional[_Chain]:
        dtype = self._dtype(n)
        if (dtype is None or len(n.inputs) != 2 or n.control_inputs or graph.control_users(n)
                or len(n.outputs) != 1):
            return None
        if n.op_type == "MatMul" and n.attrs.get("transpose_a"):
            return None  # oneDNN's fused matmul refuses a transposed input
        if n.op_type == "BatchMatMulV2" and not self._matmul_view(n):
            return None
        if n.op_type in ("Conv2D", "DepthwiseConv2dNative") and (n.attrs.get("data_format", "NHWC") != "NHWC"
                                                                 or n.attrs.get("padding") not in ("SAME", "VALID")):
            return None
        out = n.outputs[0]
        if out.shape.rank is None:
            return None
        chain = _Chain(n, dtype, "MatMul" if n.op_type == "BatchMatMulV2" else n.op_type, [])
        chain.pad = self._spatial_pad(graph, n)
        cur = out
        r = self._reader(graph, cur)
        # Bias, Add and activation act on the last dim: they commute with a Reshape that keeps it.
        if n.op_type == "MatMul" and r and r[0].op_type == "Reshape" and r[1] == 0:
            dims = r[0].outputs[0].shape.dims
            if dims and dims[-1] is not None and dims[-1] == out.shape.dims[-1]:
                chain.reshape = r[0]
                cur = r[0].outputs[0]
                r = self._reader(graph, cur)
        # Bias: BiasAdd, or Add/AddV2 of a constant that varies only along the channel axis.
        if r and r[0].op_type == "BiasAdd" and r[1] == 0 and r[0].attrs.get("data_format", "NHWC") == "NHWC":
            chain.bias = r[0].inputs[1]
        elif r and r[0].op_type in ("Add", "AddV2") and r[0].outputs[0].type == cur.type:
            a = const_array(r[0].inputs[1 - r[1]])
            vec = None if a is None else per_channel(a, cur, -1)
            if vec is not None:
                chain.bias_array = np.asarray(vec)
        if chain.bias is not None or chain.bias_array is not None:
            chain.nodes.append(r[0])
            chain.bias_pos = len(chain.nodes)
            cur = r[0].outputs[0]
            r = self._reader(graph, cur)
        # Residual Add of a tensor of the same shape (an unknown dim equals only an unknown dim).
        if r and r[0].op_type in ("Add", "AddV2") and any(K.ADD in lst for k in K.KERNELS if k.base == chain.base
                                                           for lst in k.fused_ops):
            other = r[0].inputs[1 - r[1]]
            if (other.dtype is cur.dtype and other.shape.dims == cur.shape.dims
                    and r[0].outputs[0].type == cur.type):
                chain.addend = other
                chain.nodes.append(r[0])
                chain.add_pos = len(chain.nodes)
                cur = r[0].outputs[0]
                r = self._reader(graph, cur)
        # Activation: one op, or an elementwise group computing a known function.
        if r and r[0].op_type in K.SINGLE_OP_ACTIVATIONS and self._dtype(r[0]) == dtype:
            chain.act, chain.act_nodes = K.SINGLE_OP_ACTIVATIONS[r[0].op_type], (r[0],)
            chain.alpha = float(r[0].attrs.get("alpha", 0.2))
        elif not graph.is_output(cur):
            m = matcher.match(graph, cur)
            if m is not None:
                chain.act, chain.act_nodes = m
        return chain

    @staticmethod
    def _matmul_view(n: Node) -> bool:
        """A BatchMatMulV2 of a rank >= 3 tensor (static but for its first dim) by a static matrix is a MatMul
        on the tensor's rows: Keras's EinsumDense (attention projections) lowers to one."""
        x, w = n.inputs[0].shape.dims, n.inputs[1].shape.dims
        return (not n.attrs.get("adj_x") and w is not None and len(w) == 2 and None not in w
                and x is not None and len(x) >= 3 and None not in x[1:])

    @staticmethod
    def _spatial_pad(graph: Graph, n: Node) -> Optional[Node]:
        """The Pad (of height and width only) that only this VALID Conv2D reads, if any."""
        pad = n.inputs[0].node
        if n.op_type != "Conv2D" or pad.op_type != "Pad" or pad.domain != "tf" or pad.control_inputs \
                or n.attrs.get("padding") != "VALID":
            return None
        use = sole_use(graph, n.inputs[0])
        a = const_array(pad.inputs[1])
        if use is None or use[1] != 0 or a is None or a.shape != (4, 2) or a[0].any() or a[3].any():
            return None
        return pad

    # ------------------------------------------------------------------ rewriting
    def _lower(self, graph: Graph, c: _Chain, private: bool, counts: Counter) -> bool:
        n = c.anchor
        has_bias = c.bias is not None or c.bias_array is not None
        candidates = []
        if c.addend is not None and c.act:
            candidates.append(((K.BIAS, K.ADD, c.act), c.add_pos, True))
        if c.addend is not None:
            candidates.append(((K.BIAS, K.ADD), c.add_pos, False))
        if c.act and c.addend is None:
            candidates.append(((K.BIAS, c.act), c.bias_pos, True))
        if has_bias:
            candidates.append(((K.BIAS,), c.bias_pos, False))
        for fused_ops, upto, with_act in candidates:
            kernel = K.lookup(c.base, c.dtype, fused_ops, private)
            if kernel is not None:
                break
        else:
            return False
        nodes = list(c.nodes[:upto]) + (list(c.act_nodes) if with_act else [])
        last = nodes[-1].outputs[0] if nodes else n.outputs[0]
        if not has_bias:
            # The kernels need a bias argument: a zero one (grappler would fold a zero BiasAdd away).
            ch = n.outputs[0].shape.dims[-1]
            if ch is None:
                return False
            c.bias_array = np.zeros(ch, np.float32)
            counts["zero_bias"] += 1
        dt = n.outputs[0].dtype
        feeders = [v.node for m in nodes for v in m.inputs]
        if c.bias is None:
            c.bias = add_const(graph, c.bias_array.astype(np.float32), f"{n.name}/bias", dtype=dt, like=n)
        view = c.base != n.op_type
        x, flat, tail, between = n.inputs[0], n.outputs[0].type, None, ()
        if c.reshape is not None:   # MatMul -> Reshape: the fused MatMul, then the same Reshape
            tail, between = (flat, c.reshape.inputs[1], dict(c.reshape.attrs), c.reshape.name), (c.reshape,)
        elif view:                  # BatchMatMulV2 by a matrix: rows in, a MatMul, rows back out
            dims = x.shape.dims
            rows = None if dims[0] is None else int(np.prod(dims[:-1]))
            flat = TensorType(dt, Shape([rows, n.outputs[0].shape.dims[-1]]))
            x = self._reshape(graph, x, [-1, dims[-1]], TensorType(dt, Shape([rows, dims[-1]])), f"{n.name}/rows")
            back = add_const(graph, np.array([-1, *dims[1:-1], flat.shape.dims[-1]], np.int32),
                             f"{n.name}/unflatten/shape", like=n)
            tail = (flat, back, {"T": dt, "Tshape": i32}, f"{n.name}/unflatten")
        addend = c.addend
        if K.ADD in fused_ops and tail is not None:
            addend = self._reshape(graph, addend, [-1, flat.shape.dims[-1]], flat, f"{n.name}/addend")
        args = [c.bias] + ([addend] if K.ADD in fused_ops else [])
        attrs = {"T": dt}
        if view:
            attrs.update(transpose_a=False, transpose_b=bool(n.attrs.get("adj_y", False)))
        else:
            attrs.update({k: n.attrs[k] for k in K.KEEP_ATTRS[n.op_type] if k in n.attrs})
        attrs.update(fused_ops=list(fused_ops), num_args=len(args))
        if kernel.op in ("_FusedConv2D", "_MklNativeFusedConv2D"):
            attrs.update(TArgs=[dt] * len(args), num_host_args=0)
        if "LeakyRelu" in fused_ops:
            attrs["leakyrelu_alpha"] = c.alpha
        if kernel.filter_const_attr:
            attrs["is_filter_const"] = n.inputs[1].node.const_value() is not None
        if kernel.label:
            attrs["_kernel"] = kernel.label
        inputs, also = [x, n.inputs[1]] + args, ()
        if c.pad is not None and kernel.explicit_padding:
            # TF's layout pass folds such a Pad into the ops it rewrites; this one arrives rewritten.
            inputs[0], also = c.pad.inputs[0], (c.pad,)
            attrs.update(padding="EXPLICIT",
                         explicit_paddings=[int(x) for x in const_array(c.pad.inputs[1]).reshape(-1)])
            counts["with_pad"] += 1
        self._replace(graph, n, nodes, last, kernel.op, inputs, attrs, feeders, tail=tail, between=between,
                      also=also)
        counts[COUNT_NAMES[c.base]] += 1
        counts["from_batch_matmul"] += view
        counts["with_add"] += K.ADD in fused_ops
        counts["with_activation"] += with_act
        return True

    @staticmethod
    def _reshape(graph: Graph, v: Value, shape: list, type_: TensorType, name: str) -> Value:
        s = add_const(graph, np.array(shape, np.int32), f"{name}/shape", like=v.node)
        return graph.add_node("Reshape", [v, s], {"T": v.dtype, "Tshape": i32}, [type_], name=name,
                              device=v.node.device, domain="tf").outputs[0]

    @staticmethod
    def _replace(graph: Graph, anchor: Node, nodes: list, last: Value, op: str, inputs, attrs, feeders,
                 tail=None, between=(), also=()) -> None:
        """Put one ``op`` node in place of ``anchor``, the ``between`` nodes after it, the chain ``nodes`` and
        the anchor's producers in ``also``. With ``tail`` = (flat type, shape value, Reshape attrs, name) the
        node computes a matrix of the flat type and a Reshape named ``name`` gives it ``last``'s shape.

        The fused node keeps the anchor's name (per-node precision overrides and tuning name the conv or
        matmul); the value that replaces ``last`` keeps the last node's name when that is a graph output (users
        fetch it by name). Only the last node may have control users (matching refuses them elsewhere); they
        wait on the new node."""
        keep_last = graph.is_signature_node(last.node)
        name = last.node.name if keep_last and tail is None else anchor.name
        f = graph.add_node(op, inputs, attrs, [last.type if tail is None else tail[0]], name=f"{name}/fused",
                           device=anchor.device, domain="tf")
        result = f
        if tail is not None:
            result = graph.add_node("Reshape", [f.outputs[0], tail[1]], tail[2], [last.type],
                                    name=f"{tail[3]}/lowered", device=anchor.device, domain="tf")
        graph.replace_all_uses_with(last, result.outputs[0], outputs=True)
        move_control_users(graph, last.node, [result])
        for m in [*reversed(nodes), *between, anchor, *also]:
            graph.remove_node(m, forward_control=False)
        graph.rename(f, name)
        if tail is not None:
            graph.rename(result, last.node.name if keep_last else tail[3])
        remove_dead(graph, feeders, protected(graph))

    def _lower_batch_matmul(self, graph: Graph, n: Node, private: bool, counts: Counter) -> None:
        """BatchMatMulV2 -> Mul(one-element constant) -> Add(rank-4 tensor): ``[Mul, Add]``, the only list
        the kernel takes; a missing scale is 1, a missing addend a broadcast zero."""
        dtype = self._dtype(n)
        out = n.outputs[0]
        if (dtype is None or n.control_inputs or graph.control_users(n) or out.shape.rank != 4
                or len(n.inputs) != 2):
            return
        kernel = K.lookup("BatchMatMulV2", dtype, (K.MUL, K.ADD), private)
        if kernel is None:
            return
        nodes, cur, scale, addend = [], out, None, None
        r = self._reader(graph, cur)
        if r and r[0].op_type == "Mul" and r[0].outputs[0].type == cur.type:
            a = const_array(r[0].inputs[1 - r[1]])
            if a is not None and a.size == 1:
                scale = a.reshape(())
                nodes.append(r[0])
                cur = r[0].outputs[0]
                r = self._reader(graph, cur)
        if r and r[0].op_type in ("Add", "AddV2") and r[0].outputs[0].type == cur.type:
            other = r[0].inputs[1 - r[1]]
            dims, od = cur.shape.dims, other.shape.dims
            if other.dtype is cur.dtype and od is not None and len(od) == 4 and all(
                    b == 1 or b == d for b, d in zip(od, dims)):
                addend = other
                nodes.append(r[0])
                cur = r[0].outputs[0]
        if not nodes:
            return
        dt = out.dtype
        feeders = [v.node for m in nodes for v in m.inputs]
        s = add_const(graph, np.float32(1.0 if scale is None else scale), f"{n.name}/scale", dtype=dt, like=n)
        if addend is None:
            addend = add_const(graph, np.zeros((1, 1, 1, 1), np.float32), f"{n.name}/addend", dtype=dt,
                               like=n)
        attrs = {"T": dt, **{k: n.attrs[k] for k in K.KEEP_ATTRS["BatchMatMulV2"] if k in n.attrs},
                 "fused_ops": [K.MUL, K.ADD], "num_args": 2}
        self._replace(graph, n, nodes, cur, kernel.op, [n.inputs[0], n.inputs[1], s, addend],
                      attrs, feeders)
        counts["fused_batch_matmul"] += 1


# ---------------------------------------------------------------------------------- activations
class ActivationMatcher:
    """Finds the composite activation (swish, GELU, ...) that a value feeds, if any.

    The candidate is the group of elementwise ops that reads only the value, one-element constants and each
    other, and whose one output is the only value leaving the group. Op types select the function it may
    compute (a GELU has an Erf or Erfc, a swish a Sigmoid, ...); TF then evaluates the group on test inputs
    and the function must match. Results are cached by the group's structure, so a model with fifty
    identical swish blocks evaluates one."""

    def __init__(self):
        self._cache: dict = {}

    def match(self, graph: Graph, v: Value) -> Optional[tuple[str, tuple]]:
        if graph.control_users(v.node):
            return None
        region = self._grow(graph, v)
        if not region:
            return None
        # The largest self-contained group first: swish(x) * c is not a swish, but swish(x) may be inside it.
        for sink in reversed(region):
            group = self._group(graph, v, region, sink)
            if group is None:
                continue
            name = self._identify(graph, v, group)
            if name is not None:
                return name, tuple(group)
        return None

    @staticmethod
    def _one_element_const(x: Value) -> bool:
        t = x.node.const_value()
        return t is not None and x.index == 0 and t.size == 1 and t.dtype.is_float

    def _grow(self, graph: Graph, v: Value) -> list:
        """Elementwise nodes reachable from ``v`` that read only ``v``, each other and one-element constants,
        in topological order."""
        members: dict[str, Node] = {}
        order: list[Node] = []
        pending = [u for u, _ in graph.uses(v)]
        progress = True
        while pending and progress and len(order) < MAX_ACTIVATION_NODES:
            progress, waiting = False, []
            for u in pending:
                if u.name in members:
                    continue
                if (u.op_type not in K.ELEMENTWISE or u.domain != "tf" or u.control_inputs
                        or graph.control_users(u) or len(u.outputs) != 1):
                    continue
                if all(x is v or x.node.name in members or self._one_element_const(x) for x in u.inputs):
                    members[u.name] = u
                    order.append(u)
                    waiting += [w for w, _ in graph.uses(u.outputs[0])]
                    progress = True
                else:
                    waiting.append(u)
            pending = waiting
        return order

    @staticmethod
    def _group(graph: Graph, v: Value, region: list, sink: Node) -> Optional[list]:
        names = {m.name for m in region}
        group, stack = {}, [sink]
        while stack:
            m = stack.pop()
            if m.name in group:
                continue
            group[m.name] = m
            stack += [x.node for x in m.inputs if x.node.name in names]
        out = sink.outputs[0]
        if out.dtype is not v.dtype or out.shape.dims != v.shape.dims:
            return None
        if any(u.name not in group for u, _ in graph.uses(v)):
            return None
        for m in group.values():
            if m is not sink and (graph.is_output(m.outputs[0])
                                  or any(u.name not in group for u, _ in graph.uses(m.outputs[0]))):
                return None
        return [m for m in region if m.name in group]

    @staticmethod
    def _candidates(group: list) -> list[str]:
        ops = {m.op_type for m in group}
        out = []
        if "Sigmoid" in ops:
            out.append("_MklSwish")
        if ops & {"Erf", "Erfc"}:
            out.append("GeluExact")
        if "Tanh" in ops and not ops & {"Softplus", "Erf", "Erfc"}:
            out.append("GeluApproximate")
        if "Softplus" in ops and "Tanh" in ops:
            out.append("Mish")
        if "Relu6" in ops:
            out.append("_FusedHardSwish")
        return out

    def _identify(self, graph: Graph, v: Value, group: list) -> Optional[str]:
        cands = self._candidates(group)
        if not cands:
            return None
        key = self._key(v, group)
        if key not in self._cache:
            self._cache[key] = self._evaluate(graph, v, group, cands)
        return self._cache[key]

    @staticmethod
    def _key(v: Value, group: list):
        index = {m.name: i for i, m in enumerate(group)}

        def ref(x):
            if x is v:
                return "in"
            if x.node.name in index:
                return index[x.node.name]
            t = x.node.const_value()
            return ("const", t.dtype.name, t.digest())

        return (v.dtype.name,) + tuple(
            (m.op_type, tuple(sorted((k, repr(a)) for k, a in m.attrs.items() if not k.startswith("_"))),
             tuple(ref(x) for x in m.inputs)) for m in group)

    @staticmethod
    def _evaluate(graph: Graph, v: Value, group: list, cands: list) -> Optional[str]:
        """The first of ``cands`` that ``group`` computes. The group runs in f32 whatever its dtype, so only
        its constants' rounding separates it from the function: bf16 constants get a looser tolerance."""
        from ..ir import Port
        from ..ir.dialect import EvaluationError, dialect_of
        from ..ir.types import DType

        def to_f32(a):
            if isinstance(a, DType) and a.name in ("bf16", "f16"):
                return f32
            if isinstance(a, list):
                return [to_f32(x) for x in a]
            return a

        x = np.concatenate([np.linspace(-6.0, 6.0, 241), [-10.0, -8.0, 8.0, 10.0]]).astype(np.float32)
        if v.dtype.np is not None:
            x = x.astype(v.dtype.np).astype(np.float32)
        d = dialect_of(group[0])
        sub = Graph("activation")
        src = d.make_constant(sub, x, "in").node
        vals = {}
        low_precision = v.dtype.name != "f32"
        for m in group:
            ins = []
            for i in m.inputs:
                if i is v:
                    ins.append(src.outputs[0])
                elif i.node.name in vals:
                    ins.append(vals[i.node.name])
                else:
                    t = i.node.const_value()
                    low_precision |= t.dtype.name != "f32"
                    ins.append(d.make_constant(sub, t.numpy().astype(np.float32).reshape(()), f"c{len(sub)}"))
            attrs = {k: to_f32(a) for k, a in m.attrs.items() if not k.startswith("_")}
            low_precision |= any(isinstance(a, DType) and a.name != "f32" for a in m.attrs.values())
            node = sub.add_node(m.op_type, ins, attrs, [TensorType(f32, src.outputs[0].shape)], name=m.name, domain="tf")
            vals[m.name] = node.outputs[0]
        out = vals[group[-1].name]
        sub.outputs = [Port("out", out)]
        try:
            (y,) = d.evaluate(sub, list(sub.nodes()), [out])
        except EvaluationError:  # a group the framework cannot evaluate in f32 is not one we can vouch for
            return None
        y = np.asarray(y, np.float64).reshape(-1)
        tol = 5e-3 if low_precision else 1e-4
        for name in cands:
            want = K.reference_activation(name, x)
            if y.shape == want.shape and np.all(np.abs(y - want) <= tol * np.maximum(1.0, np.abs(want))):
                return name
        return None
