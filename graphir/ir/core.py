"""The IR core: :class:`Value`, :class:`Node` and :class:`Graph`.

The graph store is a ``networkx.MultiDiGraph`` keyed by node name. A data edge ``u -> v`` has key
``slot`` (the consumer's input index) and data ``out`` (the producer's output index); a control edge has
key ``CTRL``. Each :class:`Node` also keeps its ordered inputs, so reading is cheap; every mutation goes
through :class:`Graph` methods, which keep both views in step. Passes never touch ``Graph.nx`` directly.
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Optional, Sequence

import networkx as nx

from .registry import op_info as _op_info
from .types import Shape, Tensor, TensorType

CTRL = "^"
_EMPTY: dict = {}


class IRError(Exception):
    """A misuse of the IR API (e.g. removing a node that still has uses)."""


class Value:
    """One output of a node. Values compare by identity."""

    __slots__ = ("node", "index", "type")

    def __init__(self, node: "Node", index: int, type: TensorType):
        self.node = node
        self.index = index
        self.type = type

    @property
    def name(self) -> str:
        """The TF-style tensor name: ``node`` for output 0, ``node:i`` otherwise."""
        return self.node.name if self.index == 0 else f"{self.node.name}:{self.index}"

    @property
    def dtype(self):
        return self.type.dtype

    @property
    def shape(self) -> Shape:
        return self.type.shape

    def uses(self) -> list[tuple["Node", int]]:
        return self.node.graph.uses(self)

    def __repr__(self):
        return f"%{self.name}: {self.type.text()}"


class Node:
    """An operation: ``domain.op_type`` with attributes, device, ordered inputs and control inputs."""

    __slots__ = ("name", "op_type", "domain", "attrs", "device", "_inputs", "_controls", "outputs", "graph", "meta")

    def __init__(self, name, op_type, domain, attrs, device, output_types):
        self.name: str = name
        self.op_type: str = op_type
        self.domain: str = domain
        self.attrs: dict[str, Any] = dict(attrs or {})
        self.device: str = device or ""
        self._inputs: list[Value] = []
        self._controls: list[Node] = []
        self.outputs: list[Value] = [Value(self, i, t) for i, t in enumerate(output_types)]
        self.graph: Optional[Graph] = None
        self.meta: dict[str, Any] = {}

    @property
    def inputs(self) -> tuple[Value, ...]:
        return tuple(self._inputs)

    @property
    def control_inputs(self) -> tuple["Node", ...]:
        return tuple(self._controls)

    @property
    def qualified_op(self) -> str:
        return f"{self.domain}.{self.op_type}" if self.domain else self.op_type

    def output(self, i: int = 0) -> Value:
        return self.outputs[i]

    @property
    def info(self):
        return _op_info(self.domain, self.op_type)

    def const_value(self) -> Optional[Tensor]:
        """The constant this node holds, if the domain's op data marks it as a constant op."""
        info = self.info
        if info.constant_attr and not self._inputs:
            v = self.attrs.get(info.constant_attr)
            return v if isinstance(v, Tensor) else None
        return None

    def __repr__(self):
        return f"<Node {self.qualified_op} {self.name!r}>"


@dataclass
class Port:
    """A named graph input or output (a signature entry)."""

    name: str
    value: Value


_NAME_SUFFIX = re.compile(r"^(.*?)(?:_(\d+))?$")


class Graph:
    """A typed dataflow graph with a signature (inputs/outputs) and framework data carried along."""

    def __init__(self, name: str = "main"):
        self.name = name
        self.nx = nx.MultiDiGraph()
        self.inputs: list[Port] = []
        self.outputs: list[Port] = []
        # Framework data kept verbatim for losslessness, keys prefixed by domain ("tf.library", ...).
        self.attrs: dict[str, Any] = {}
        self.meta: dict[str, Any] = {}
        self._name_counter = itertools.count()
        # The last insertion-order topological order, dropped by every structural mutation below: the
        # verifier computes one after each pass, and the next pass usually starts by asking for it again.
        self._order: Optional[list[Node]] = None

    # ------------------------------------------------------------------ lookup
    def __len__(self) -> int:
        return self.nx.number_of_nodes()

    def __contains__(self, name) -> bool:
        if isinstance(name, Node):
            return name.graph is self and name.name in self.nx
        return name in self.nx

    def __iter__(self) -> Iterator[Node]:
        return self.nodes()

    def nodes(self) -> Iterator[Node]:
        """Nodes in insertion order."""
        for _, data in self.nx.nodes(data="obj"):
            yield data

    def node(self, name: str) -> Node:
        try:
            return self.nx.nodes[name]["obj"]
        except KeyError:
            raise KeyError(f"no node named {name!r}") from None

    def get(self, name: str) -> Optional[Node]:
        d = self.nx.nodes.get(name)
        return None if d is None else d["obj"]

    def value(self, ref: str) -> Value:
        """Resolve a TF-style tensor name ``node`` or ``node:i``."""
        name, _, idx = ref.partition(":")
        if idx and not idx.isdigit():
            raise KeyError(f"bad tensor name {ref!r}")
        node = self.node(name)
        i = int(idx) if idx else 0
        if i >= len(node.outputs):
            raise KeyError(f"node {name!r} has {len(node.outputs)} outputs, no output {i}")
        return node.outputs[i]

    def unique_name(self, base: str) -> str:
        if base not in self.nx:
            return base
        stem = _NAME_SUFFIX.match(base).group(1) or base
        while True:
            cand = f"{stem}_{next(self._name_counter)}"
            if cand not in self.nx:
                return cand

    # ------------------------------------------------------------------ uses
    def uses(self, value: Value) -> list[tuple[Node, int]]:
        """(consumer, input slot) pairs reading ``value``, in consumer insertion order."""
        # The raw adjacency dicts: networkx's edge views cost several times the loop itself.
        out = []
        nodes = self.nx._node
        idx = value.index
        for dst, keyed in self.nx._succ.get(value.node.name, _EMPTY).items():
            for key, data in keyed.items():
                if key != CTRL and data.get("out") == idx:
                    out.append((nodes[dst]["obj"], key))
        return out

    def users(self, node: Node) -> list[Node]:
        """Distinct nodes that read any data output of ``node``."""
        nodes = self.nx._node
        return [nodes[dst]["obj"] for dst, keyed in self.nx._succ.get(node.name, _EMPTY).items()
                if len(keyed) > (CTRL in keyed)]

    def control_users(self, node: Node) -> list[Node]:
        nodes = self.nx._node
        return [nodes[dst]["obj"] for dst, keyed in self.nx._succ.get(node.name, _EMPTY).items() if CTRL in keyed]

    def has_uses(self, value: Value) -> bool:
        return bool(self.uses(value)) or self.is_output(value)

    def is_output(self, value: Value) -> bool:
        return any(p.value is value for p in self.outputs)

    def is_signature_node(self, node: Node) -> bool:
        return any(p.value.node is node for p in itertools.chain(self.inputs, self.outputs))

    # ------------------------------------------------------------------ mutation
    def add_node(
        self,
        op_type: str,
        inputs: Sequence[Value] = (),
        attrs: Optional[dict] = None,
        output_types: Sequence[TensorType] = (),
        *,
        name: Optional[str] = None,
        domain: str = "tf",
        device: str = "",
        control_inputs: Sequence[Node] = (),
        unique: bool = True,
    ) -> Node:
        """Create a node. With ``unique`` (default) a taken ``name`` gets a numeric suffix."""
        name = name or op_type
        if unique:
            name = self.unique_name(name)
        elif name in self.nx:
            raise IRError(f"duplicate node name {name!r}")
        node = Node(name, op_type, domain, attrs, device, output_types)
        node.graph = self
        self._order = None
        self.nx.add_node(name, obj=node)
        if inputs:
            self.set_inputs(node, inputs)
        for c in control_inputs:
            self.add_control_input(node, c)
        return node

    def _check_owned(self, v: Value):
        if v.node.graph is not self:
            raise IRError(f"value {v.name!r} does not belong to this graph")

    def set_input(self, node: Node, slot: int, value: Value) -> None:
        self._check_owned(value)
        self._order = None
        old = node._inputs[slot]
        self.nx.remove_edge(old.node.name, node.name, key=slot)
        node._inputs[slot] = value
        self.nx.add_edge(value.node.name, node.name, key=slot, out=value.index)

    def set_inputs(self, node: Node, values: Sequence[Value]) -> None:
        self._order = None
        for i, old in enumerate(node._inputs):
            self.nx.remove_edge(old.node.name, node.name, key=i)
        node._inputs = []
        for v in values:
            self._check_owned(v)
            node._inputs.append(v)
            self.nx.add_edge(v.node.name, node.name, key=len(node._inputs) - 1, out=v.index)

    def add_control_input(self, node: Node, src: Node) -> None:
        if src.graph is not self:
            raise IRError(f"control input {src.name!r} does not belong to this graph")
        if src in node._controls:
            return
        self._order = None
        node._controls.append(src)
        self.nx.add_edge(src.name, node.name, key=CTRL)

    def remove_control_input(self, node: Node, src: Node) -> None:
        self._order = None
        node._controls.remove(src)
        self.nx.remove_edge(src.name, node.name, key=CTRL)

    def replace_all_uses_with(self, old: Value, new: Value, *, outputs: bool = True) -> int:
        """Point every reader of ``old`` at ``new``. With ``outputs``, graph outputs follow too.

        Returns the number of uses rewritten."""
        self._check_owned(new)
        if old is new:
            return 0
        uses = self.uses(old)
        for user, slot in uses:
            self.set_input(user, slot, new)
        n = len(uses)
        if outputs:
            for p in self.outputs:
                if p.value is old:
                    p.value = new
                    n += 1
        return n

    def remove_node(self, node: Node, *, forward_control: bool = True) -> None:
        """Remove a node that has no data uses and is not a graph input or output.

        With ``forward_control``, nodes that had a control edge from ``node`` inherit its data
        producers and control inputs as control inputs, so execution order is preserved."""
        if node.graph is not self:
            raise IRError(f"{node.name!r} is not in this graph")
        for v in node.outputs:
            if self.uses(v):
                raise IRError(f"cannot remove {node.name!r}: output {v.name!r} is still used")
        if self.is_signature_node(node):
            raise IRError(f"cannot remove {node.name!r}: it is a graph input or output")
        cusers = self.control_users(node)
        if cusers and forward_control:
            deps = []
            for v in node._inputs:
                if v.node not in deps:
                    deps.append(v.node)
            for c in node._controls:
                if c not in deps:
                    deps.append(c)
            for u in cusers:
                self.remove_control_input(u, node)
                for d in deps:
                    if d is not u:
                        self.add_control_input(u, d)
        else:
            for u in cusers:
                self.remove_control_input(u, node)
        self._order = None
        self.nx.remove_node(node.name)
        node.graph = None

    def remove_nodes(self, nodes: Iterable[Node]) -> int:
        """Remove a set of nodes whose data users all lie inside the set (control users outside
        the set simply lose the edge). Returns the number removed."""
        nodes = [n for n in nodes if n.graph is self]
        doomed = {n.name for n in nodes}
        for n in nodes:
            if self.is_signature_node(n):
                raise IRError(f"cannot remove {n.name!r}: it is a graph input or output")
            for u in self.users(n):
                if u.name not in doomed:
                    raise IRError(f"cannot remove {n.name!r}: still used by {u.name!r}")
        for n in nodes:
            for u in self.control_users(n):
                if u.name not in doomed:
                    u._controls.remove(n)
        self._order = None
        self.nx.remove_nodes_from(doomed)
        for n in nodes:
            n.graph = None
        return len(nodes)

    def set_output_types(self, node: Node, types: Sequence[TensorType]) -> None:
        """Retype a node's outputs in place (the number of outputs may only grow)."""
        if len(types) < len(node.outputs):
            for v in node.outputs[len(types):]:
                if self.has_uses(v):
                    raise IRError(f"cannot drop used output {v.name!r}")
            del node.outputs[len(types):]
        for i, t in enumerate(types):
            if i < len(node.outputs):
                node.outputs[i].type = t
            else:
                node.outputs.append(Value(node, i, t))

    def rename(self, node: Node, new_name: str) -> None:
        if new_name in self.nx:
            raise IRError(f"duplicate node name {new_name!r}")
        # O(degree); nx.relabel_nodes scans every node of the graph.
        self._order = None
        G, old = self.nx, node.name
        G.add_node(new_name, **G.nodes[old])
        G.add_edges_from([(new_name, v, k, d) for _, v, k, d in G.out_edges(old, keys=True, data=True)])
        G.add_edges_from([(u, new_name, k, d) for u, _, k, d in G.in_edges(old, keys=True, data=True)])
        G.remove_node(old)
        node.name = new_name

    # ------------------------------------------------------------------ algorithms
    def _is_back_edge(self, src: str, dst: str) -> bool:
        nodes = self.nx.nodes
        return nodes[src]["obj"].info.loop_next and nodes[dst]["obj"].info.loop_merge

    def acyclic_view(self) -> nx.MultiDiGraph:
        """A view without loop back-edges (e.g. TF1 NextIteration -> Merge)."""
        if not any(n.info.loop_next for n in self.nodes()):
            return self.nx
        return nx.subgraph_view(self.nx, filter_edge=lambda u, v, k: not self._is_back_edge(u, v))

    def topo_order(self, *, by_name: bool = True) -> list[Node]:
        """A deterministic topological order (ties broken by node name), ignoring loop back-edges.

        ``by_name=False`` is faster: ties follow insertion order (still deterministic for a given graph)."""
        if not by_name:
            return self._kahn_order(cached=True)
        view = self.acyclic_view()
        nodes = self.nx.nodes
        try:
            return [nodes[n]["obj"] for n in nx.lexicographical_topological_sort(view)]
        except nx.NetworkXUnfeasible:
            cycle = nx.find_cycle(view)
            raise IRError(f"graph has a cycle through {cycle[0][0]!r}") from None

    def _kahn_order(self, *, cached: bool = False) -> list[Node]:
        # Kahn's algorithm on the raw adjacency dicts: nx.topological_sort computes in-degrees through
        # MultiDiGraph views, which is several times slower on 100k-node graphs. ``cached`` reuses the
        # last order if no mutation happened since (the verifier always recomputes).
        if cached and self._order is not None:
            return list(self._order)
        G = self.nx
        succ, pred, nodes = G._succ, G._pred, G._node
        indeg = {n: len(p) for n, p in pred.items()}
        back = set()
        for n, d in nodes.items():
            o = d["obj"]
            if _op_info(o.domain, o.op_type).loop_merge:
                for u in pred[n]:
                    o = nodes[u]["obj"]
                    if _op_info(o.domain, o.op_type).loop_next:
                        back.add((u, n))
                        indeg[n] -= 1
        # FIFO over a list that grows as nodes become ready (cheaper than a deque).
        ready = [n for n, k in indeg.items() if k == 0]
        i = 0
        while i < len(ready):
            n = ready[i]
            i += 1
            for v in succ[n]:
                if back and (n, v) in back:
                    continue
                k = indeg[v] - 1
                indeg[v] = k
                if k == 0:
                    ready.append(v)
        if len(ready) != len(nodes):
            cycle = nx.find_cycle(self.acyclic_view())
            raise IRError(f"graph has a cycle through {cycle[0][0]!r}")
        order = [nodes[n]["obj"] for n in ready]
        self._order = order
        return list(order)

    def ancestors(self, roots: Iterable[Node], *, control: bool = True) -> set[str]:
        """Names of ``roots`` and every node they (transitively) depend on, in one walk over the
        predecessor dicts however many roots there are (``nx.ancestors`` walks once per root)."""
        pred = self.nx.pred
        seen = {r.name for r in roots}
        stack = list(seen)
        while stack:
            for u, keys in pred[stack.pop()].items():
                if u not in seen and (control or any(k != CTRL for k in keys)):
                    seen.add(u)
                    stack.append(u)
        return seen

    # ------------------------------------------------------------------ whole-graph helpers
    def copy(self) -> "Graph":
        """A structural copy. Attribute dicts are copied; constants (immutable) are shared."""
        g = Graph(self.name)
        g.attrs = dict(self.attrs)
        g.meta = dict(self.meta)
        old = self.nx._node
        new: dict[str, Node] = {}
        for name, d in old.items():
            n = d["obj"]
            m = Node(name, n.op_type, n.domain, n.attrs, n.device, [v.type for v in n.outputs])
            m.meta = dict(n.meta)
            m.graph = g
            new[name] = m
        for name, m in new.items():
            n = old[name]["obj"]
            m._inputs = [new[v.node.name].outputs[v.index] for v in n._inputs]
            m._controls = [new[c.name] for c in n._controls]
        # Fill the edge store's adjacency dicts directly (as networkx's own add_edges_from would, in the
        # same order); per-edge add_edges_from dominates the copy of a large graph otherwise.
        G = g.nx
        G.add_nodes_from((name, {"obj": m}) for name, m in new.items())
        succ, pred = G._succ, G._pred
        for u, nbrs in self.nx._succ.items():
            su = succ[u]
            for v, keyed in nbrs.items():
                kd = {k: dict(d) for k, d in keyed.items()}
                su[v] = kd
                pred[v][u] = kd
        g.inputs = [Port(p.name, new[p.value.node.name].outputs[p.value.index]) for p in self.inputs]
        g.outputs = [Port(p.name, new[p.value.node.name].outputs[p.value.index]) for p in self.outputs]
        return g

    def op_histogram(self) -> dict[str, int]:
        hist: dict[str, int] = {}
        for n in self.nodes():
            hist[n.op_type] = hist.get(n.op_type, 0) + 1
        return dict(sorted(hist.items()))

    def verify(self) -> None:
        from .verifier import verify

        verify(self)

    def text(self, *, full_constants: bool = False) -> str:
        from .printer import print_graph

        return print_graph(self, full_constants=full_constants)

    def __str__(self):
        return self.text()

    def save(self, path, format: Optional[str] = None, **kwargs) -> None:
        """Write the graph: ``.gir`` text, or a TensorFlow ``.pb`` / ``.pbtxt`` / SavedModel directory."""
        from ..backends import save

        save(self, path, format=format, **kwargs)

    def __repr__(self):
        return f"<Graph {self.name!r}: {len(self)} nodes, {len(self.inputs)} inputs, {len(self.outputs)} outputs>"

