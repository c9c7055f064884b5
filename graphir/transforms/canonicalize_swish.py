"""canonicalize-swish: ``x * sigmoid(x)`` as ``Mul(Sigmoid(x), x)``, without Keras 3's gradient wrapper.

Keras 3 traces ``silu``/``swish`` as ``Mul(x, Sigmoid(x))`` followed by an ``IdentityN`` of ``[y, x,
beta]`` that only carries its custom gradient (``_gradient_op_type``); the wrapper hides the Mul from any
fusing reader. This pass drops such wrappers (each output read as its input) and puts every Swish in the
canonical operand order of :mod:`.activation_patterns` (TF's remapper Sigmoid+Mul -> ``_MklSwish``).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..ir import Graph, Node
from .activation_patterns import build_swish, is_canonical_swish, match_swish
from .base import Pass, PassResult, register_pass
from .patterns import remove_dead


def _gradient_wrapper(graph: Graph, node: Node):
    """The custom-gradient IdentityN reading ``node``'s output as its first input, if any."""
    for u, slot in graph.uses(node.outputs[0]):
        if slot == 0 and u.op_type == "IdentityN" and u.domain == "tf" and "_gradient_op_type" in u.attrs \
                and not u.control_inputs and not graph.control_users(u):
            return u
    return None


@register_pass
@dataclass(frozen=True)
class CanonicalizeSwish(Pass):
    """After: every ``x * sigmoid(x)`` is ``Mul(Sigmoid(x), x)`` and no custom-gradient IdentityN reads
    one; the Mul keeps its name."""

    name = "canonicalize-swish"
    phase = "canonicalize"

    def run(self, graph: Graph) -> PassResult:
        counts = {"swish": 0, "wrappers_dropped": 0}
        for n in graph.topo_order(by_name=False):
            if n.graph is not graph or n.op_type != "Mul" or n.domain != "tf" or n.control_inputs:
                continue
            x = match_swish(graph, n.outputs[0])
            if x is None:
                continue
            w = _gradient_wrapper(graph, n)
            if w is not None and not graph.is_signature_node(w):
                for out, src in zip(w.outputs, w.inputs):
                    graph.replace_all_uses_with(out, src, outputs=True)
                remove_dead(graph, [w])
                counts["wrappers_dropped"] += 1
            y = n.outputs[0]
            if is_canonical_swish(graph, y) or graph.control_users(n):
                continue
            name = n.name
            new = build_swish(graph, x, like=n, name=f"{name}/canonical")
            graph.replace_all_uses_with(y, new, outputs=True)
            remove_dead(graph, [n])
            graph.rename(new.node, name)
            counts["swish"] += 1
        return PassResult.of(**counts)
