"""The IR core: :class:`Value`, :class:`Node`, :class:`Graph` and the :class:`Subgraph` attribute kind.

The store is the objects themselves, as in onnx-ir: a node holds its ordered inputs (``None`` for an absent
optional operand) and control inputs; a value holds its uses, ``(node, slot)`` pairs, where the slot is an
input index or, for a value captured by a nested subgraph, ``(attr_name, i)``. A node also knows its
control users. Every mutation goes through :class:`Graph` methods, which keep the two directions in step;
the verifier checks that they are. networkx graphs are *views*, built on demand for the algorithms that
need one (:meth:`Graph.nx_view`) and cached until the next structural change.

Nothing here knows a framework: a node's ``domain`` is required, value names come from the dialect
(:func:`graphir.ir.registry.value_name`) unless a value has a name of its own, and graph arguments and
initializers are values that no node produces.
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Optional, Sequence, Union

import networkx as nx

from .errors import IRError
from .registry import _cache as _op_info_cache
from .registry import op_info as _op_info
from .registry import value_name as _value_name
from .types import Shape, Subgraph, Tensor, TensorType

CTRL = "^"  # the key of control edges in networkx views
_UNSET = object()


class Value:
    """One output of a node, or a graph argument / initializer (``node is None``). Compared by identity.

    ``const`` holds an initializer's tensor. ``name`` is the value's own name when it has one, else the
    name its dialect derives from the producing node."""

    __slots__ = ("node", "index", "type", "_name", "_uses", "graph", "const")

    def __init__(self, node: Optional["Node"], index: int, type: TensorType, name: Optional[str] = None):
        self.node = node
        self.index = index
        self.type = type
        self._name = name
        self._uses: list[tuple[Node, Any]] = []
        self.graph: Optional[Graph] = None  # set for arguments and initializers; outputs use node.graph
        self.const: Optional[Tensor] = None

    @property
    def name(self) -> str:
        if self._name is not None:
            return self._name
        return _value_name(self.node.domain, self.node.name, self.index)

    @property
    def owner(self) -> Optional["Graph"]:
        return self.node.graph if self.node is not None else self.graph

    @property
    def dtype(self):
        return self.type.dtype

    @property
    def shape(self) -> Shape:
        return self.type.shape

    @property
    def is_argument(self) -> bool:
        return self.node is None and self.const is None

    @property
    def is_initializer(self) -> bool:
        return self.node is None and self.const is not None

    def uses(self) -> list[tuple["Node", Any]]:
        return list(self._uses)

    def __repr__(self):
        return f"%{self.name}: {self.type.text()}"


class Node:
    """An operation: ``domain.op_type`` with attributes, device, ordered inputs and control inputs."""

    __slots__ = ("name", "op_type", "domain", "attrs", "device", "_inputs", "_controls", "_cusers", "outputs",
                 "graph", "meta")

    def __init__(self, name, op_type, domain, attrs, device, output_types, output_names=None):
        self.name: str = name
        self.op_type: str = op_type
        self.domain: str = domain
        self.attrs: dict[str, Any] = dict(attrs or {})
        self.device: str = device or ""
        self._inputs: list[Optional[Value]] = []
        self._controls: list[Node] = []
        self._cusers: list[Node] = []
        names = list(output_names or ())
        self.outputs: list[Value] = [Value(self, i, t, names[i] if i < len(names) else None)
                                     for i, t in enumerate(output_types)]
        self.graph: Optional[Graph] = None
        self.meta: dict[str, Any] = {}

    @property
    def inputs(self) -> tuple[Optional[Value], ...]:
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
        g = self.graph
        domain = self.domain
        version = g.opset_imports.get(domain) if g is not None and g.opset_imports else None
        key = (domain, self.op_type, version)
        info = _op_info_cache.get(key)
        return info if info is not None else _op_info(*key)

    def const_value(self) -> Optional[Tensor]:
        """The constant this node holds, if the domain's op data marks it as a constant op."""
        if self._inputs:
            return None
        attr = self.info.constant_attr
        if attr:
            v = self.attrs.get(attr)
            return v if isinstance(v, Tensor) else None
        return None

    def subgraphs(self) -> Sequence[tuple[str, Subgraph]]:
        """(attribute name, subgraph) pairs, read from ``attrs`` on every call (code may assign to it)."""
        if not Subgraph.made:
            return ()
        return [(k, v) for k, v in self.attrs.items() if isinstance(v, Subgraph)]

    def __repr__(self):
        return f"<Node {self.qualified_op} {self.name!r}>"


@dataclass
class Port:
    """A named graph input or output (a signature entry)."""

    name: str
    value: Value


_NAME_SUFFIX = re.compile(r"^(.*?)(?:_(\d+))?$")


def _copy_attr(v, vmap):
    """A deep copy of an attribute value: containers are copied, immutable leaves (tensors, dtypes, shapes,
    strings) shared, nested subgraphs copied with their captures remapped through ``vmap``."""
    if isinstance(v, list):
        return [_copy_attr(x, vmap) for x in v]
    if isinstance(v, dict):
        return {k: _copy_attr(x, vmap) for k, x in v.items()}
    if isinstance(v, Subgraph):
        return Subgraph(v.graph.copy(), [vmap.get(c, c) for c in v.captures])
    return v


class Graph:
    """A typed dataflow graph with a signature (inputs/outputs) and framework data carried along."""

    def __init__(self, name: str = "main"):
        self.name = name
        self._nodes: dict[str, Node] = {}
        self.inputs: list[Port] = []
        self.outputs: list[Port] = []
        self.arguments: list[Value] = []          # values no node produces (e.g. ONNX graph inputs)
        self.initializers: dict[str, Value] = {}  # named constant values no node produces
        self.captures: list[Value] = []           # in a subgraph body: the arguments standing for captures
        self.opset_imports: dict[str, int] = {}   # domain -> op set version, for versioned dialects
        # Framework data kept verbatim for losslessness, keys prefixed by domain ("tf.library", ...).
        self.attrs: dict[str, Any] = {}
        self.meta: dict[str, Any] = {}
        self._name_counter = itertools.count()
        # Caches dropped by every structural mutation: the insertion-order topological order (the verifier
        # computes one after each pass and the next pass usually asks for it again) and the networkx view.
        self._order: Optional[list[Node]] = None
        self._view: Optional[nx.MultiDiGraph] = None
        # Bumped by every mutation through this API (structural or not): equal versions mean an unchanged
        # graph, so the pass manager need not verify again after a pass that touched nothing.
        self.version = 0

    def _changed(self) -> None:
        self._order = None
        self._view = None
        self.version += 1

    def _touched(self) -> None:
        self.version += 1

    # ------------------------------------------------------------------ lookup
    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, name) -> bool:
        if isinstance(name, Node):
            return name.graph is self and self._nodes.get(name.name) is name
        return name in self._nodes

    def __iter__(self) -> Iterator[Node]:
        return self.nodes()

    def nodes(self) -> Iterator[Node]:
        """Nodes in insertion order."""
        return iter(list(self._nodes.values()))

    def node(self, name: str) -> Node:
        try:
            return self._nodes[name]
        except KeyError:
            raise KeyError(f"no node named {name!r}") from None

    def get(self, name: str) -> Optional[Node]:
        return self._nodes.get(name)

    def value(self, ref: str) -> Value:
        """The value named ``ref``: an argument, an initializer, or a node output by its (dialect) name."""
        for v in itertools.chain(self.arguments, self.captures):
            if v.name == ref:
                return v
        if ref in self.initializers:
            return self.initializers[ref]
        # Derived names start with the node name; try the longest node-name prefix first.
        for cut in [len(ref)] + [i for i in range(len(ref) - 1, 0, -1) if not ref[i].isalnum()]:
            node = self._nodes.get(ref[:cut])
            if node is not None:
                for v in node.outputs:
                    if v.name == ref:
                        return v
        for node in self._nodes.values():
            for v in node.outputs:
                if v._name == ref:
                    return v
        name, _, idx = ref.partition(":")
        node = self._nodes.get(name)
        if node is not None and idx.isdigit():
            raise KeyError(f"node {name!r} has {len(node.outputs)} outputs, no output {idx}")
        raise KeyError(f"no value named {ref!r}")

    def unique_name(self, base: str) -> str:
        if base not in self._nodes:
            return base
        stem = _NAME_SUFFIX.match(base).group(1) or base
        while True:
            cand = f"{stem}_{next(self._name_counter)}"
            if cand not in self._nodes:
                return cand

    # ------------------------------------------------------------------ uses
    @staticmethod
    def uses(value: Value) -> list[tuple[Node, Any]]:
        """(consumer, input slot) pairs reading ``value``; a capture's slot is ``(attr_name, i)``."""
        return list(value._uses)

    @staticmethod
    def users(node: Node) -> list[Node]:
        """Distinct nodes that read any data output of ``node`` (captures included)."""
        out: dict[int, Node] = {}
        for v in node.outputs:
            for u, _ in v._uses:
                out.setdefault(id(u), u)
        return list(out.values())

    @staticmethod
    def control_users(node: Node) -> list[Node]:
        return list(node._cusers)

    def has_uses(self, value: Value) -> bool:
        return bool(value._uses) or self.is_output(value)

    def is_output(self, value: Value) -> bool:
        for p in self.outputs:
            if p.value is value:
                return True
        return False

    def is_signature_node(self, node: Node) -> bool:
        for ports in (self.inputs, self.outputs):
            for p in ports:
                if p.value.node is node:
                    return True
        return False

    # ------------------------------------------------------------------ mutation
    def add_node(
        self,
        op_type: str,
        inputs: Sequence[Optional[Value]] = (),
        attrs: Optional[dict] = None,
        output_types: Sequence[TensorType] = (),
        *,
        domain: str,
        name: Optional[str] = None,
        device: str = "",
        control_inputs: Sequence[Node] = (),
        unique: bool = True,
        output_names: Sequence[Optional[str]] = (),
    ) -> Node:
        """Create a node. With ``unique`` (default) a taken ``name`` gets a numeric suffix."""
        name = name or op_type
        if name in self._nodes:
            if not unique:
                raise IRError(f"duplicate node name {name!r}")
            name = self.unique_name(name)
        node = Node(name, op_type, domain, attrs, device, output_types, output_names)
        node.graph = self
        self._changed()
        self._nodes[name] = node
        if inputs:
            self.set_inputs(node, inputs)
        for c in control_inputs:
            self.add_control_input(node, c)
        if Subgraph.made:
            for k, sg in node.subgraphs():
                self._track_captures(node, k, sg)
        return node

    def add_argument(self, name: str, type: TensorType) -> Value:
        """A graph argument: a value with no producing node."""
        self._touched()
        if any(v.name == name for v in self.arguments):
            raise IRError(f"duplicate argument {name!r}")
        v = Value(None, len(self.arguments), type, name)
        v.graph = self
        self.arguments.append(v)
        return v

    def add_capture(self, name: str, type: TensorType) -> Value:
        """In a subgraph body: an argument standing for a captured outer value."""
        self._touched()
        v = Value(None, len(self.captures), type, name)
        v.graph = self
        self.captures.append(v)
        return v

    def add_initializer(self, name: str, tensor: Tensor, type: Optional[TensorType] = None) -> Value:
        """A named constant value with no producing node."""
        self._touched()
        if name in self.initializers:
            raise IRError(f"duplicate initializer {name!r}")
        v = Value(None, -1, type or TensorType(tensor.dtype, tensor.shape), name)
        v.graph = self
        v.const = tensor
        self.initializers[name] = v
        return v

    def remove_initializer(self, value: Value) -> None:
        if value._uses or self.is_output(value):
            raise IRError(f"cannot remove initializer {value.name!r}: it is still used")
        del self.initializers[value.name]
        value.graph = None
        self._touched()

    def _check_owned(self, v: Value):
        p = v.node
        if (p.graph if p is not None else v.graph) is not self:
            raise IRError(f"value {v.name!r} does not belong to this graph")

    def _unlink(self, v: Optional[Value], node: Node, slot) -> None:
        if v is not None:
            uses = v._uses
            for i, (u, s) in enumerate(uses):
                if u is node and s == slot:
                    del uses[i]
                    return
            raise IRError(f"use list of {v.name!r} lacks ({node.name!r}, {slot!r})")

    def set_input(self, node: Node, slot: int, value: Optional[Value]) -> None:
        """Point input ``slot`` of ``node`` at ``value`` (``None``: an absent optional operand)."""
        if value is not None:
            self._check_owned(value)
        self._changed()
        self._unlink(node._inputs[slot], node, slot)
        node._inputs[slot] = value
        if value is not None:
            value._uses.append((node, slot))

    def set_inputs(self, node: Node, values: Sequence[Optional[Value]]) -> None:
        self._changed()
        for i, old in enumerate(node._inputs):
            if old is not None:
                self._unlink(old, node, i)
        ins: list[Optional[Value]] = []
        node._inputs = ins
        for v in values:
            if v is not None:
                p = v.node
                if (p.graph if p is not None else v.graph) is not self:  # _check_owned, inlined: hot
                    raise IRError(f"value {v.name!r} does not belong to this graph")
                v._uses.append((node, len(ins)))
            ins.append(v)

    def add_control_input(self, node: Node, src: Node) -> None:
        if src.graph is not self:
            raise IRError(f"control input {src.name!r} does not belong to this graph")
        if src in node._controls:
            return
        self._changed()
        node._controls.append(src)
        src._cusers.append(node)

    def remove_control_input(self, node: Node, src: Node) -> None:
        self._changed()
        node._controls.remove(src)
        src._cusers.remove(node)

    def set_attr(self, node: Node, key: str, value: Any) -> None:
        """Set (or with ``value=None`` and a missing key, add as unit) attribute ``key`` of ``node``."""
        old = node.attrs.get(key)
        if isinstance(old, Subgraph):
            self._untrack_captures(node, key, old)
        self._touched()
        node.attrs[key] = value
        if isinstance(value, Subgraph):
            self._track_captures(node, key, value)

    def del_attr(self, node: Node, key: str) -> None:
        self._touched()
        old = node.attrs.pop(key, None)
        if isinstance(old, Subgraph):
            self._untrack_captures(node, key, old)

    def _track_captures(self, node: Node, key: str, sg: Subgraph) -> None:
        for i, v in enumerate(sg.captures):
            self._check_owned(v)
            v._uses.append((node, (key, i)))
        self._changed()

    def _untrack_captures(self, node: Node, key: str, sg: Subgraph) -> None:
        for i, v in enumerate(sg.captures):
            self._unlink(v, node, (key, i))
        self._changed()

    def set_outputs(self, ports: Sequence[Union[Port, tuple[str, Value]]]) -> None:
        """Replace the graph outputs."""
        new = [p if isinstance(p, Port) else Port(*p) for p in ports]
        for p in new:
            self._check_owned(p.value)
        self._touched()
        self.outputs = new

    def set_graph_inputs(self, ports: Sequence[Union[Port, tuple[str, Value]]]) -> None:
        new = [p if isinstance(p, Port) else Port(*p) for p in ports]
        for p in new:
            self._check_owned(p.value)
        self._touched()
        self.inputs = new

    def set_op(self, node: Node, op_type: str, domain: Optional[str] = None) -> None:
        """Change a node's op type (and domain) in place, keeping its name, inputs and uses."""
        node.op_type = op_type
        if domain is not None:
            node.domain = domain
        self._changed()

    def replace_all_uses_with(self, old: Value, new: Value, *, outputs: bool = True) -> int:
        """Point every reader of ``old`` at ``new``. With ``outputs``, graph outputs follow too.

        Returns the number of uses rewritten."""
        self._check_owned(new)
        if old is new:
            return 0
        uses = list(old._uses)
        # When every use is an input slot that really reads ``old``, all move at once; otherwise (captures,
        # or use lists out of step, which must fail as through set_input) one at a time.
        if all(not isinstance(s, tuple) and s < len(u._inputs) and u._inputs[s] is old for u, s in uses):
            for user, slot in uses:
                user._inputs[slot] = new
            new._uses += uses
            old._uses.clear()
        else:
            for user, slot in uses:
                if isinstance(slot, tuple):
                    key, i = slot
                    sg = user.attrs[key]
                    self._unlink(old, user, slot)
                    sg.captures[i] = new
                    new._uses.append((user, slot))
                else:
                    self.set_input(user, slot, new)
        self._changed()
        n = len(uses)
        if outputs:
            for p in self.outputs:
                if p.value is old:
                    p.value = new
                    n += 1
        self._touched()
        return n

    def replace_node(self, old: Node, new: Union[Node, Sequence[Value]]) -> None:
        """Make every reader of ``old``'s outputs read ``new``'s (a node, or one value per output), move
        ``old``'s control users onto ``new`` and remove ``old``."""
        values = new.outputs if isinstance(new, Node) else list(new)
        if len(values) < len(old.outputs) and any(self.has_uses(v) for v in old.outputs[len(values):]):
            raise IRError(f"replace_node: {old.name!r} has {len(old.outputs)} outputs, got {len(values)}")
        for o, n in zip(old.outputs, values):
            self.replace_all_uses_with(o, n)
        for u in list(old._cusers):
            self.remove_control_input(u, old)
            if isinstance(new, Node) and new is not u:
                self.add_control_input(u, new)
        for p in self.inputs:
            if p.value.node is old:
                raise IRError(f"replace_node: {old.name!r} is a graph input")
        self.remove_node(old, forward_control=False)

    def remove_node(self, node: Node, *, forward_control: bool = True) -> None:
        """Remove a node that has no data uses and is not a graph input or output.

        With ``forward_control``, nodes that had a control edge from ``node`` inherit its data
        producers and control inputs as control inputs, so execution order is preserved."""
        if node.graph is not self:
            raise IRError(f"{node.name!r} is not in this graph")
        for v in node.outputs:
            if v._uses:
                raise IRError(f"cannot remove {node.name!r}: output {v.name!r} is still used")
        if self.is_signature_node(node):
            raise IRError(f"cannot remove {node.name!r}: it is a graph input or output")
        cusers = list(node._cusers)
        deps: list[Node] = []
        if cusers and forward_control:
            for v in node._inputs:
                if v is not None and v.node is not None and v.node not in deps:
                    deps.append(v.node)
            for c in node._controls:
                if c not in deps:
                    deps.append(c)
        for u in cusers:
            self.remove_control_input(u, node)
            for d in deps:
                if d is not u:
                    self.add_control_input(u, d)
        self._detach(node)
        del self._nodes[node.name]
        node.graph = None
        self._changed()

    def _detach(self, node: Node) -> None:
        """Drop ``node``'s own edges (its inputs, controls and captures) from the other side's lists."""
        for i, v in enumerate(node._inputs):
            self._unlink(v, node, i)
        for c in node._controls:
            c._cusers.remove(node)
        for k, sg in node.subgraphs():
            for i, v in enumerate(sg.captures):
                self._unlink(v, node, (k, i))

    def remove_nodes(self, nodes: Iterable[Node]) -> int:
        """Remove a set of nodes whose data users all lie inside the set (control users outside
        the set simply lose the edge). Returns the number removed."""
        nodes = [n for n in nodes if n.graph is self]
        if not nodes:
            return 0  # nothing changed: the graph keeps its version (no re-verification) and cached order
        doomed = {id(n) for n in nodes}
        for n in nodes:
            if self.is_signature_node(n):
                raise IRError(f"cannot remove {n.name!r}: it is a graph input or output")
            for v in n.outputs:
                for u, _ in v._uses:
                    if id(u) not in doomed:
                        raise IRError(f"cannot remove {n.name!r}: still used by {u.name!r}")
        for n in nodes:
            for u in list(n._cusers):
                if id(u) not in doomed:
                    u._controls.remove(n)
        for n in nodes:
            # Only edges from survivors matter; edges inside the set disappear with it.
            for i, v in enumerate(n._inputs):
                if v is not None and (v.node is None or id(v.node) not in doomed):
                    self._unlink(v, n, i)
            for c in n._controls:
                if id(c) not in doomed:
                    c._cusers.remove(n)
            for k, sg in n.subgraphs():
                for i, v in enumerate(sg.captures):
                    if v.node is None or id(v.node) not in doomed:
                        self._unlink(v, n, (k, i))
            del self._nodes[n.name]
        for n in nodes:
            n.graph = None
        self._changed()
        return len(nodes)

    def set_output_types(self, node: Node, types: Sequence[TensorType]) -> None:
        """Retype a node's outputs in place (outputs past ``len(types)`` must be unused)."""
        self._touched()
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
        if new_name in self._nodes:
            raise IRError(f"duplicate node name {new_name!r}")
        self._changed()
        del self._nodes[node.name]
        node.name = new_name
        self._nodes[new_name] = node

    def set_value_name(self, value: Value, name: str) -> None:
        """Give a node output a name of its own (dialects whose values are named apart from their
        producers, e.g. ONNX). Initializers are keyed by name and keep theirs."""
        self._check_owned(value)
        if value.node is None:
            raise IRError(f"{value.name!r} is not a node output; only node outputs can be renamed")
        value._name = name
        self._touched()

    # ------------------------------------------------------------------ algorithms
    def _is_back_edge(self, src: Node, dst: Node) -> bool:
        return src.info.loop_next and dst.info.loop_merge

    def nx_view(self, *, back_edges: bool = False) -> nx.MultiDiGraph:
        """A networkx graph of the node names: a data edge ``u -> v`` has key ``slot`` and data ``out``
        (the producer's output index), a control edge key :data:`CTRL`. Without ``back_edges``, loop
        back-edges (the dialect's ``loop_next -> loop_merge``) are left out. Build it when an algorithm
        needs one; it is cached until the next mutation and must not be modified."""
        if not back_edges and self._view is not None:
            return self._view
        G = nx.MultiDiGraph()
        G.add_nodes_from(self._nodes)
        edges = []
        for n in self._nodes.values():
            for slot, v in enumerate(n._inputs):
                if v is not None and v.node is not None:
                    if back_edges or not self._is_back_edge(v.node, n):
                        edges.append((v.node.name, n.name, slot, {"out": v.index}))
            for c in n._controls:
                edges.append((c.name, n.name, CTRL, {}))
            for k, sg in n.subgraphs():
                for i, v in enumerate(sg.captures):
                    if v.node is not None:
                        edges.append((v.node.name, n.name, f"{k}:{i}", {"out": v.index}))
        G.add_edges_from(edges)
        if not back_edges:
            self._view = G
        return G

    def acyclic_view(self) -> nx.MultiDiGraph:
        """The graph without loop back-edges (e.g. TF1 NextIteration -> Merge)."""
        return self.nx_view()

    @staticmethod
    def _preds(n: Node) -> list[Node]:
        """Producers of ``n``'s inputs, its control inputs, then producers of its captures (with repeats)."""
        preds = [v.node for v in n._inputs if v is not None and v.node is not None]
        if n._controls:
            preds += n._controls
        if Subgraph.made:
            for _, sg in n.subgraphs():
                preds += [v.node for v in sg.captures if v.node is not None]
        return preds

    def _has_loop_merge(self, nodes: Iterable[Node]) -> bool:
        # Op data depends on (domain, op type, op set version) only: ask once per distinct op.
        imports = self.opset_imports
        for domain, op_type in {(n.domain, n.op_type) for n in nodes}:
            if _op_info(domain, op_type, imports.get(domain) if imports else None).loop_merge:
                return True
        return False

    def topo_order(self, *, by_name: bool = True) -> list[Node]:
        """A deterministic topological order (ties broken by node name), ignoring loop back-edges.

        ``by_name=False`` is faster: ties follow insertion order (still deterministic for a given graph)."""
        if not by_name:
            return self._kahn_order(cached=True)
        view = self.nx_view()
        nodes = self._nodes
        try:
            return [nodes[n] for n in nx.lexicographical_topological_sort(view)]
        except nx.NetworkXUnfeasible:
            cycle = nx.find_cycle(view)
            raise IRError(f"graph has a cycle through {cycle[0][0]!r}") from None

    @staticmethod
    def _kahn_drain(nodes: list[Node], indeg: dict[Node, int],
                    succ: dict[Node, list[Node]]) -> Optional[list[Node]]:
        """The second half of Kahn's algorithm: ``nodes`` in insertion order, each one's in-degree and its
        successors (with repeats, in the order the edges were met). Ties go to the node that became ready
        first. Consumes ``indeg``; None if a cycle leaves some node unordered."""
        ready = [n for n in nodes if not indeg[n]]
        for n in ready:  # ready grows while it is walked: a FIFO queue
            s = succ.get(n)
            if s is not None:
                for v in s:
                    k = indeg[v] - 1
                    indeg[v] = k
                    if not k:
                        ready.append(v)
        return ready if len(ready) == len(nodes) else None

    def _kahn_order(self, *, cached: bool = False) -> list[Node]:
        # Kahn's algorithm over the nodes' own edge lists; ``cached`` reuses the last order if no mutation
        # happened since (the verifier never trusts the cache: it recomputes the order from the edges).
        if cached and self._order is not None:
            return list(self._order)
        nodes = list(self._nodes.values())
        has_loops = self._has_loop_merge(nodes)
        preds_of = self._preds
        # Nodes hash by identity, so they key the dicts themselves.
        indeg: dict[Node, int] = {}
        succ: dict[Node, list[Node]] = {}
        for n in nodes:
            preds = preds_of(n)
            if has_loops:
                preds = [p for p in preds if not self._is_back_edge(p, n)]
            indeg[n] = len(preds)
            for p in preds:
                s = succ.get(p)
                if s is None:
                    succ[p] = [n]
                else:
                    s.append(n)
        order = self._kahn_drain(nodes, indeg, succ)
        if order is None:
            cycle = nx.find_cycle(self.nx_view())
            raise IRError(f"graph has a cycle through {cycle[0][0]!r}")
        self._order = order
        return list(order)

    def ancestors(self, roots: Iterable[Node], *, control: bool = True) -> set[str]:
        """Names of ``roots`` and every node they (transitively) depend on, captures included, in one
        walk however many roots there are."""
        seen = {r.name for r in roots}
        stack = [self._nodes[n] for n in seen]
        while stack:
            n = stack.pop()
            preds = self._preds(n) if control else \
                [v.node for v in n._inputs if v is not None and v.node is not None] + \
                [v.node for _, sg in n.subgraphs() for v in sg.captures if v.node is not None]
            for p in preds:
                if p.name not in seen:
                    seen.add(p.name)
                    stack.append(p)
        return seen

    # ------------------------------------------------------------------ whole-graph helpers
    def copy(self) -> "Graph":
        """A deep copy: nodes, values, attributes (containers copied, immutable constants shared), meta,
        arguments, initializers and nested subgraphs. Nothing is shared that a mutation could reach."""
        import copy as _copy

        g = Graph(self.name)
        g.attrs = {k: _copy_attr(v, {}) for k, v in self.attrs.items()}
        g.meta = _copy.deepcopy(self.meta)
        g.opset_imports = dict(self.opset_imports)
        vmap: dict[Value, Value] = {}
        for v in self.arguments:
            vmap[v] = g.add_argument(v.name, v.type)
        for v in self.captures:
            vmap[v] = g.add_capture(v.name, v.type)
        for k, v in self.initializers.items():
            vmap[v] = g.add_initializer(k, v.const, v.type)
        new: dict[str, Node] = {}
        for name, n in self._nodes.items():
            m = Node(name, n.op_type, n.domain, None, n.device, [v.type for v in n.outputs],
                     [v._name for v in n.outputs])
            m.meta = _copy.deepcopy(n.meta) if n.meta else {}
            m.graph = g
            new[name] = m
            for a, b in zip(n.outputs, m.outputs):
                vmap[a] = b
        g._nodes = new
        for name, n in self._nodes.items():
            m = new[name]
            m.attrs = {k: _copy_attr(v, vmap) for k, v in n.attrs.items()}
            ins = []
            for i, v in enumerate(n._inputs):
                w = None if v is None else vmap[v]
                if w is not None:
                    w._uses.append((m, i))
                ins.append(w)
            m._inputs = ins
            m._controls = [new[c.name] for c in n._controls]
            m._cusers = [new[c.name] for c in n._cusers]
            for k, sg in m.subgraphs():
                for i, v in enumerate(sg.captures):
                    v._uses.append((m, (k, i)))
        g.inputs = [Port(p.name, vmap[p.value]) for p in self.inputs]
        g.outputs = [Port(p.name, vmap[p.value]) for p in self.outputs]
        return g

    def op_histogram(self) -> dict[str, int]:
        hist: dict[str, int] = {}
        for n in self._nodes.values():
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
        """Write the graph with the writer registered for the format (``.gir`` text, TF ``.pb`` / ``.pbtxt``
        / SavedModel, ...); see :func:`graphir.ir.registry.register_writer`."""
        from .registry import writer

        writer()(self, path, format=format, **kwargs)

    def __repr__(self):
        return f"<Graph {self.name!r}: {len(self)} nodes, {len(self.inputs)} inputs, {len(self.outputs)} outputs>"
