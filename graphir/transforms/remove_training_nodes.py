"""remove-training-nodes: drop identity-like and debugging ops that do nothing at inference."""
from __future__ import annotations

from dataclasses import dataclass

from ..ir import Graph, Node
from .base import Pass, PassResult, register_pass
from .patterns import move_control_users, protected, remove_dead


@register_pass
@dataclass(frozen=True)
class RemoveTrainingNodes(Pass):
    """After: no identity-like op (Identity, Snapshot, StopGradient, PreventGradient, CheckNumerics, ...)
    and no Assert/Print/NoOp remains, except graph inputs/outputs, nodes named in ``keep``, and identities
    whose control users depend on a control-flow producer (removing those would change deadness)."""

    name = "remove-training-nodes"
    phase = "cleanup"
    keep: tuple[str, ...] = ()
    remove_debug_ops: bool = True

    def run(self, graph: Graph) -> PassResult:
        keep = protected(graph) | set(self.keep)
        identities = debug = 0
        for node in list(graph.nodes()):  # any order: each bypass leaves a valid graph
            if node.graph is not graph or node.name in keep:
                continue
            info = node.info
            if info.identity_like and self._bypass_identity(graph, node):
                identities += 1
            elif self.remove_debug_ops and info.debug_only:
                debug += self._drop_debug(graph, node, keep)
        return PassResult.of(identities_removed=identities, debug_ops_removed=debug)

    @staticmethod
    def _bypass_identity(graph: Graph, node: Node) -> bool:
        if not node.inputs or len(node.outputs) != 1:
            return False
        src = node.inputs[0]
        if src.dtype is not node.outputs[0].dtype:
            return False  # e.g. a ref input; TF inserts the dereference here
        # A control edge from a Switch output is dead on both branches; TF's cond relies on this Identity.
        if src.node.info.control_flow and graph.control_users(node):
            return False
        for user in graph.users(node):
            for c in node.control_inputs:
                graph.add_control_input(user, c)
        graph.replace_all_uses_with(node.outputs[0], src, outputs=False)
        graph.remove_node(node, forward_control=True)
        return True

    @staticmethod
    def _drop_debug(graph: Graph, node: Node, keep: set) -> bool:
        through = node.info.passthrough
        if through is not None and node.outputs:
            graph.replace_all_uses_with(node.outputs[0], node.inputs[through], outputs=False)
        elif any(graph.uses(v) for v in node.outputs):
            return False
        # Control users inherit the op's own control inputs, not its data inputs (those only fed the check).
        move_control_users(graph, node, node.control_inputs)
        feeders = [v.node for v in node.inputs]
        graph.remove_node(node, forward_control=False)
        remove_dead(graph, feeders, keep)
        return True
