"""prune-switch-merge: resolve TF1 Switch/Merge whose predicate is a constant (e.g. a learning phase)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..ir import Graph, Node, Value
from .base import Pass, PassResult, register_pass
from .patterns import add_const, const_array, move_control_users, protected



def constant_predicate(v: Value) -> Optional[bool]:
    """The value of a boolean scalar, looking through identity-like ops to a constant."""
    seen = 0
    while v.node.info.identity_like and v.node.inputs and seen < 100:
        v, seen = v.node.inputs[0], seen + 1
    a = const_array(v)
    if a is None or a.size != 1:
        return None
    return bool(a.reshape(-1)[0])


@register_pass
@dataclass(frozen=True)
class PruneSwitchMerge(Pass):
    """After: a ``PlaceholderWithDefault`` that is not a graph input reads as its default; no Switch has a
    constant predicate (its live side reads the data directly, its dead side is gone up to the Merges,
    which then read their one live input)."""

    name = "prune-switch-merge"
    phase = "cleanup"

    def run(self, graph: Graph) -> PassResult:
        defaults = switches = removed = 0
        for n in list(graph.nodes()):
            # One with control inputs orders its readers after them; resolving it would lose that.
            if n.info.defaulted_input and not graph.is_signature_node(n) and not n.control_inputs:
                graph.replace_all_uses_with(n.outputs[0], n.inputs[0], outputs=False)
                move_control_users(graph, n, [n.inputs[0].node])
                graph.remove_node(n, forward_control=False)
                defaults += 1
        has_switch = any(n.info.switch for n in graph.nodes())
        for n in graph.topo_order(by_name=False) if has_switch else ():
            if n.graph is graph and n.info.switch:
                r = self._prune(graph, n)
                if r is not None:
                    switches += 1
                    removed += r
        return PassResult.of(defaults_resolved=defaults, switches_pruned=switches, nodes_removed=removed)

    def _prune(self, graph: Graph, sw: Node) -> Optional[int]:
        pred = constant_predicate(sw.inputs[1])
        if pred is None:
            return None
        live, dead_out = sw.outputs[int(pred)], sw.outputs[1 - int(pred)]
        # Deadness flows through data and control edges until a Merge, which lives if any input lives.
        dead: dict[str, Node] = {}
        merges: dict[str, Node] = {}
        stack = [u for u, _ in graph.uses(dead_out)]
        if graph.control_users(sw):
            return None  # a control edge from a Switch is dead on both sides; leave such graphs alone
        while stack:
            u = stack.pop()
            if u.name in dead or u.name in merges:
                continue
            if u.info.loop_merge:
                merges[u.name] = u
                continue
            if u.info.loop_next or u.info.loop_merge or u.info.side_effecting:
                return None
            dead[u.name] = u
            stack.extend(graph.users(u))
            stack.extend(graph.control_users(u))
        sig = protected(graph)
        if any(name in sig for name in dead):
            return None
        dead_vals = {(sw.name, dead_out.index)} | {(n, i) for n, d in dead.items() for i in range(len(d.outputs))}
        plan = []
        for m in merges.values():
            lives = [(i, v) for i, v in enumerate(m.inputs) if (v.node.name, v.index) not in dead_vals]
            if len(lives) != 1 or m.control_inputs or graph.control_users(m):
                return None
            plan.append((m, lives[0]))
        before = len(graph)
        graph.replace_all_uses_with(live, sw.inputs[0], outputs=True)
        for m, (i, v) in plan:
            if v is live:  # the live branch passes the Switch's input straight to the Merge
                v = sw.inputs[0]
            if graph.has_uses(m.outputs[1]):
                idx = add_const(graph, np.int32(i), f"{m.name}/value_index", like=m)
                graph.replace_all_uses_with(m.outputs[1], idx, outputs=True)
            graph.replace_all_uses_with(m.outputs[0], v, outputs=True)
            if not graph.is_signature_node(m):
                graph.set_inputs(m, [])
                graph.remove_node(m, forward_control=False)
        graph.remove_nodes(list(dead.values()))
        graph.remove_node(sw, forward_control=False)
        return before - len(graph)
