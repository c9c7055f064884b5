"""Reads the text IR written by :mod:`graphir.ir.printer` back into a :class:`Graph`.

Recursive descent straight over the string, one compiled regex per token kind. There is no separate
token stream because tokens are context-sensitive: after ``%`` or as a dict key ``1.5`` is a name, as a
value it is a number. Every error is a :class:`ParseError` (bad input, not a bug) reading
``file:LINE:COL: message``. Hand-written text may use free layout and ``// comments``; nodes may
appear in any order (references resolve after all nodes exist).
"""
from __future__ import annotations

import gc
import json
import os
import re
from typing import NoReturn

import numpy as np

from .core import Graph, Port, Subgraph
from .printer import Elided
from .types import DType, FuncRef, Placeholder, Shape, Tensor, TensorType

_WS = re.compile(r"(?:[ \t\r\n]+|//[^\n]*)+")
_WS_START = frozenset(" \t\r\n/")
_BARE = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.\-/>]*")
_STRING = re.compile(r'"[^"\\\n]*(?:\\.[^"\\\n]*)*"')
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OP = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_>]*")
_NUMBER = re.compile(r"-?(?:inf\b|nan\b|\d+(\.\d*)?([eE][+-]?\d+)?)")
_TOKEN = re.compile(r"[^\s,(){}\[\]<>]+|.", re.S)  # for "found ..." in messages
_INDEX = re.compile(r":(\d+)")
_DIMS = r"\*|(?:\?|\d+)(?:x(?:\?|\d+))*"
_TYPE = re.compile(rf"tensor<(?:({_DIMS})x)?([A-Za-z]\w*)>")
_SHAPE = re.compile(rf"#shape<({_DIMS})?>")
_BYTES = re.compile(r"#bytes<([0-9a-fA-F]*)>")
_BLOB = re.compile(r"#blob<\s*sha:([0-9a-fA-F]+)\s*,\s*(\d+)\s*>")
_DIGEST = re.compile(r"sha:([0-9a-fA-F]+)")
_KEYWORDS = {"true": True, "false": False, "unit": None, "inf": float("inf"), "nan": float("nan")}


class ParseError(ValueError):
    """Text that is not valid graphir IR: ``file:LINE:COL: message`` on one line."""


def parse(text: str, filename: str = "<text>") -> Graph:
    """Parse one ``graph @name { ... }`` into a new :class:`Graph`."""
    return _Parser(text, filename).parse()


def parse_file(path) -> Graph:
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ParseError(f"{path}: {(e.strerror or str(e)).lower()}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ParseError(f"{path}: not a graphir text file (invalid UTF-8 at byte {e.start})") from None
    return parse(text, filename=path)


class _Parser:
    def __init__(self, text: str, filename: str):
        self.s = text
        self.pos = 0
        self.filename = filename
        self.types: dict[str, TensorType] = {}
        self.pending_captures: list = []  # (Subgraph, [refs]) resolved against the enclosing graph

    # ------------------------------------------------------------------ errors and low-level scanning
    def error(self, msg: str, pos: int = None) -> NoReturn:
        pos = self.pos if pos is None else pos
        line = self.s.count("\n", 0, pos) + 1
        col = pos - self.s.rfind("\n", 0, pos)
        msg = " ".join(str(msg).split())  # one line, whatever went wrong
        raise ParseError(f"{self.filename}:{line}:{col}: {msg}")

    def found(self) -> str:
        if self.pos >= len(self.s):
            return "end of input"
        m = _TOKEN.match(self.s, self.pos)
        return repr(m.group()[:30])

    def ws(self) -> None:
        if self.s[self.pos:self.pos + 1] in _WS_START:  # cheap test first: this runs before every token
            m = _WS.match(self.s, self.pos)
            if m:
                self.pos = m.end()

    def accept(self, lit: str) -> bool:
        if self.s[self.pos:self.pos + 1] in _WS_START:
            self.ws()
        if self.s.startswith(lit, self.pos):
            self.pos += len(lit)
            return True
        return False

    def expect(self, lit: str) -> None:
        if not self.accept(lit):
            self.error(f"expected '{lit}', found {self.found()}")

    def match(self, regex: re.Pattern, what: str) -> re.Match:
        self.ws()
        m = regex.match(self.s, self.pos)
        if m is None:
            self.error(f"expected {what}, found {self.found()}")
        self.pos = m.end()
        return m

    def string(self) -> str:
        self.ws()
        start = self.pos
        m = _STRING.match(self.s, start)
        if m is None:
            self.error("unterminated string" if self.s.startswith('"', start) else
                       f"expected a quoted string, found {self.found()}")
        self.pos = m.end()
        try:
            return json.loads(m.group())
        except ValueError as e:
            self.error(f"bad string literal: {getattr(e, 'msg', e)}", start)

    def sym(self, what: str = "a name", skip_ws: bool = True) -> str:
        """A bare or quoted name (node, graph, attribute key, function)."""
        if skip_ws:
            self.ws()
        if self.s.startswith('"', self.pos):
            return self.string()
        m = _BARE.match(self.s, self.pos)
        if m is None:
            self.error(f"expected {what}, found {self.found()}")
        self.pos = m.end()
        return m.group()

    def dtype(self, name: str, pos: int) -> DType:
        try:
            return DType.get(name)
        except ValueError:
            self.error(f"unknown dtype {name!r}", pos)

    def tensor_type(self) -> TensorType:
        self.ws()
        start = self.pos
        m = _TYPE.match(self.s, start)
        if m is None:
            self.error(f"expected a tensor type like tensor<2x?xf32>, found {self.found()}")
        self.pos = m.end()
        text = m.group()
        t = self.types.get(text)
        if t is None:
            dt = self.dtype(m.group(2), m.start(2))
            t = self.types[text] = TensorType(dt, Shape.parse(m.group(1) or ""))
        return t

    def type_list(self) -> list[tuple[TensorType, int]]:
        self.expect("(")
        out = []
        if not self.accept(")"):
            while True:
                self.ws()
                pos = self.pos
                out.append((self.tensor_type(), pos))
                if self.accept(")"):
                    break
                self.expect(",")
        return out

    # ------------------------------------------------------------------ attribute values
    def attr_dict(self) -> dict:
        self.expect("{")
        d: dict = {}
        if self.accept("}"):
            return d
        while True:
            self.ws()
            kpos = self.pos
            key = self.sym("an attribute name")
            if key in d:
                self.error(f"duplicate attribute {key!r}", kpos)
            self.expect("=")
            d[key] = self.value()
            if self.accept("}"):
                return d
            self.expect(",")

    def value(self):
        self.ws()
        s, p = self.s, self.pos
        c = s[p:p + 1]
        if c == '"':
            return self.string()
        if c == "[":
            self.pos += 1
            items = []
            if self.accept("]"):
                return items
            while True:
                items.append(self.value())
                if self.accept("]"):
                    return items
                self.expect(",")
        if c == "{":
            return self.attr_dict()
        if c == "@":
            self.pos += 1
            name = self.sym("a function name", skip_ws=False)
            if s.startswith("{", self.pos):
                return FuncRef(name, tuple(sorted(self.attr_dict().items())))
            return FuncRef(name)
        if c == "$":
            self.pos += 1
            return Placeholder(self.sym("a placeholder name", skip_ws=False))
        if c == "#":
            if s.startswith("#bytes<", p):
                return bytes.fromhex(self.match(_BYTES, "#bytes<hex>").group(1))
            if s.startswith("#blob<", p):
                m = self.match(_BLOB, "#blob<sha:DIGEST, SIZE>")
                return Elided(m.group(1), int(m.group(2)))
            if s.startswith("#graph<", p):
                return self.subgraph()
            if s.startswith("#shape<", p):
                return Shape.parse(self.match(_SHAPE, "a shape like #shape<2x?>").group(1) or "")
            self.error(f"unknown attribute value {self.found()}")
        if c == "-" or c.isdigit():
            m = self.match(_NUMBER, "a number")
            text = m.group()
            if m.group(1) is None and m.group(2) is None and text[-1].isdigit():
                return int(text)
            return float(text)
        if s.startswith("tensor<", p):
            return self.tensor_type()
        m = _IDENT.match(s, p)
        if m is None:
            self.error(f"expected an attribute value, found {self.found()}")
        word = m.group()
        self.pos = m.end()
        if word in _KEYWORDS:
            return _KEYWORDS[word]
        if word in ("dense", "dense_resource"):
            return self.tensor(word, p)
        return self.dtype(word, p)

    def subgraph(self) -> Subgraph:
        """``#graph<captures(%a, %b)> graph @body {...}``; captures resolve in the enclosing graph."""
        self.expect("#graph<")
        self.expect("captures")
        self.expect("(")
        refs = []
        if not self.accept(")"):
            while True:
                refs.append(self.value_ref())
                if self.accept(")"):
                    break
                self.expect(",")
        self.expect(">")
        outer = self.pending_captures
        self.pending_captures = []
        body = self._graph()
        self.pending_captures = outer
        sg = Subgraph(body, [])
        outer.append((sg, refs))
        return sg

    def tensor(self, kind: str, start: int) -> Tensor:
        if not self.s.startswith("<", self.pos):
            self.error(f"expected '<' after {kind}")
        self.pos += 1
        digest = raw = elems = None
        if kind == "dense_resource":
            digest = self.match(_DIGEST, "sha:DIGEST").group(1)
        elif self.accept("["):
            elems = []
            if not self.accept("]"):
                while True:
                    self.ws()
                    elems.append((self.value(), self.pos))
                    if self.accept("]"):
                        break
                    self.expect(",")
        else:
            self.ws()
            hpos = self.pos
            if not self.s.startswith('"0x', hpos):
                self.error(f'expected a list of elements or "0xHEX", found {self.found()}')
            end = self.s.find('"', hpos + 3)
            if end < 0:
                self.error("unterminated string", hpos)
            h = self.s[hpos + 3:end]
            if len(h) % 2:
                self.error("odd number of hex digits", hpos)
            try:
                raw = bytearray.fromhex(h)  # writable, so numpy can use it without a copy
            except ValueError:
                self.error("bad hex digit in constant data", hpos)
            self.pos = end + 1
        self.expect(">")
        self.expect(":")
        ty = self.tensor_type()
        if digest is not None:
            return Tensor(ty.dtype, ty.shape, digest=digest)
        dt, shape = ty.dtype, ty.shape
        n = shape.num_elements()
        if n is None:
            self.error(f"constant of type {ty.text()} needs a static shape", start)
        if dt.np is None:
            self.error(f"constants of dtype {dt.name} cannot hold data", start)
        if raw is not None:
            if dt.name == "string":
                self.error("string constants need a list of elements, not hex", start)
            if len(raw) != n * dt.np.itemsize:
                self.error(f"hex data has {len(raw)} bytes, {ty.text()} needs {n * dt.np.itemsize}", start)
            arr = np.frombuffer(raw, dtype=dt.np).reshape(shape.dims)
            return Tensor(dt, shape, arr)
        if len(elems) != n:
            self.error(f"{len(elems)} elements given, {ty.text()} has {n}", start)
        return Tensor(dt, shape, self.elements(elems, dt, start).reshape(shape.dims))

    def elements(self, elems: list, dt: DType, start: int) -> np.ndarray:
        if dt.name == "string":
            out = []
            for v, pos in elems:
                if not isinstance(v, (str, bytes)):
                    self.error("string constant elements must be strings or #bytes<..>", pos)
                out.append(v.encode("utf-8", "surrogatepass") if isinstance(v, str) else v)
            arr = np.empty(len(out), dtype=object)
            arr[:] = out
            return arr
        if dt.name == "bool":
            ok = (bool,)
        elif dt.is_float:
            ok = (int, float)
        elif np.issubdtype(dt.np, np.complexfloating):
            self.error('complex constants are written as "0xHEX"', start)
        else:
            ok = (int,)
        vals = []
        for v, pos in elems:
            if not isinstance(v, ok) or (ok != (bool,) and isinstance(v, bool)):
                self.error(f"bad element {v!r} for a {dt.name} constant", pos)
            vals.append(v)
        try:
            return np.array(vals, dtype=dt.np)
        except (OverflowError, ValueError) as e:
            self.error(f"element out of range for {dt.name}: {e}", start)

    # ------------------------------------------------------------------ graph structure
    def value_ref(self) -> tuple[str, int, int]:
        self.ws()
        pos = self.pos
        self.expect("%")
        name = self.sym("a value name", skip_ws=False)
        m = _INDEX.match(self.s, self.pos)
        if m:
            self.pos = m.end()
            return name, int(m.group(1)), pos
        return name, 0, pos

    def ports(self) -> list[tuple[str, tuple[str, int, int]]]:
        self.expect("{")
        out = []
        if self.accept("}"):
            return out
        while True:
            name = self.sym("a port name")
            self.expect("=")
            out.append((name, self.value_ref()))
            if self.accept("}"):
                return out
            self.expect(",")

    def node(self, graph: Graph, pending: list) -> None:
        self.ws()
        npos = self.pos
        self.pos += 1  # '%'
        name = self.sym("a node name", skip_ws=False)
        if name in graph or not name:
            self.error(f"duplicate node name {name!r}" if name else "empty node name", npos)
        self.expect("=")
        domain, op_type = self.op_name()
        self.expect("(")
        operands, controls = [], []
        if not self.accept(")"):
            while True:
                self.ws()
                if self.s.startswith("^", self.pos):
                    cpos = self.pos
                    self.pos += 1
                    controls.append((self.sym("a control input name", skip_ws=False), cpos))
                elif self.s.startswith("none", self.pos):
                    self.pos += 4
                    operands.append(None)
                else:
                    operands.append(self.value_ref())
                if self.accept(")"):
                    break
                self.expect(",")
        self.ws()
        attrs = self.attr_dict() if self.s.startswith("{", self.pos) else {}
        device = ""
        if self.accept("device"):
            self.expect("(")
            self.ws()
            device = self.string()
            self.expect(")")
        self.expect(":")
        self.ws()
        sig_pos = self.pos
        in_types = self.type_list()
        self.expect("->")
        self.ws()
        if self.s.startswith("(", self.pos):
            out_types = [t for t, _ in self.type_list()]
        else:
            out_types = [self.tensor_type()]
        out_names = []
        if self.accept("results"):
            self.expect("(")
            while True:
                self.ws()
                if self.s.startswith("_", self.pos) and not self.s.startswith('"', self.pos):
                    self.pos += 1
                    out_names.append(None)
                else:
                    out_names.append(self.string())
                if self.accept(")"):
                    break
                self.expect(",")
            if len(out_names) != len(out_types):
                self.error(f"node {name!r} names {len(out_names)} results but has {len(out_types)}", sig_pos)
            for n in out_names:
                if n is not None:
                    if n in self.named:
                        self.error(f"duplicate value name {n!r}", sig_pos)
        node = graph.add_node(op_type, (), attrs, out_types, name=name, domain=domain, device=device, unique=False,
                              output_names=out_names)
        for v in node.outputs:
            if v._name is not None:
                self.named[v._name] = v
        present = [o for o in operands if o is not None]
        if len(in_types) != len(present):
            self.error(f"node {name!r} has {len(present)} operands but its signature lists {len(in_types)} "
                       "operand types", sig_pos)
        pending.append((node, operands, controls, in_types))

    def op_name(self) -> tuple[str, str]:
        """``domain.Op``, ``Op`` (no domain), or with the op quoted: ``domain."Odd.Op"``."""
        self.ws()
        if self.s.startswith('"', self.pos):
            return "", self.string()
        first = self.match(_OP, "an op name like tf.Conv2D").group()
        if not self.s.startswith(".", self.pos):
            return "", first
        self.pos += 1
        if self.s.startswith('"', self.pos):
            return first, self.string()
        m = _OP.match(self.s, self.pos)
        if m is None:
            self.error(f"expected an op name after '{first}.', found {self.found()}")
        self.pos = m.end()
        return first, m.group()

    def resolve(self, graph: Graph, ref: tuple[str, int, int]):
        name, idx, pos = ref
        if idx == 0 and name in self.named:
            return self.named[name]
        node = graph.get(name)
        if node is None:
            self.error(f"undefined value %{name}", pos)
        if idx >= len(node.outputs):
            self.error(f"node {name!r} has {len(node.outputs)} output(s), no output {idx}", pos)
        return node.outputs[idx]

    def parse(self) -> Graph:
        # Parsing allocates many long-lived objects and no garbage cycles; the cyclic GC would only
        # rescan them over and over (about half the time on big graphs).
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            return self._parse()
        except ParseError:
            raise
        except (RecursionError, MemoryError) as e:
            self.error(f"input too deeply nested or too large ({type(e).__name__})")
        except (ValueError, OverflowError) as e:  # numpy/Tensor rejecting a value the grammar accepted
            self.error(f"{type(e).__name__}: {e}")
        finally:
            if gc_was_enabled:
                gc.enable()

    def _parse(self) -> Graph:
        graph = self._graph()
        self.ws()
        if self.pos < len(self.s):
            self.error(f"unexpected text after the graph: {self.found()}")
        return graph

    def declarations(self, graph: Graph, kind: str) -> None:
        """``{%name : type, ...}`` (arguments, captures) or ``{%name = dense<...> : type, ...}``
        (initializers): values no node produces."""
        self.expect("{")
        if self.accept("}"):
            return
        while True:
            self.ws()
            vpos = self.pos
            self.expect("%")
            vname = self.sym("a value name", skip_ws=False)
            if vname in self.named:
                self.error(f"duplicate value name {vname!r}", vpos)
            if kind == "initializers":
                self.expect("=")
                self.ws()
                tpos = self.pos
                t = self.value()
                if not isinstance(t, Tensor):
                    self.error("an initializer must be a dense<...> constant", tpos)
                self.named[vname] = graph.add_initializer(vname, t)
            else:
                self.expect(":")
                add = graph.add_argument if kind == "arguments" else graph.add_capture
                self.named[vname] = add(vname, self.tensor_type())
            if self.accept("}"):
                return
            self.expect(",")

    def _graph(self) -> Graph:
        outer_named = getattr(self, "named", {})
        self.named: dict = {}
        self.expect("graph")
        self.expect("@")
        graph = Graph(self.sym("a graph name", skip_ws=False))
        self.expect("{")
        ports = {"inputs": [], "outputs": []}
        while True:
            self.ws()
            if self.s.startswith("%", self.pos) or self.s.startswith("}", self.pos):
                break
            m = _IDENT.match(self.s, self.pos)
            word = m.group() if m else None
            if word in ports:
                self.pos = m.end()
                ports[word] = self.ports()
            elif word == "attributes":
                self.pos = m.end()
                graph.attrs = self.attr_dict()
            elif word == "opsets":
                self.pos = m.end()
                graph.opset_imports = self.attr_dict()
            elif word in ("arguments", "captures", "initializers"):
                self.pos = m.end()
                self.declarations(graph, word)
            else:
                self.error(f"expected 'inputs', 'outputs', 'arguments', 'initializers', 'attributes', a node or "
                           f"'}}', found {self.found()}")
        pending: list = []
        while True:
            self.ws()
            if self.s.startswith("%", self.pos):
                self.node(graph, pending)
            elif self.s.startswith("}", self.pos):
                self.pos += 1
                break
            else:
                self.error(f"expected a node line '%name = ...' or '}}', found {self.found()}")
        # Connect only now: loop back-edges refer to nodes printed further down.
        for node, operands, controls, in_types in pending:
            values = []
            types = iter(in_types)
            for ref in operands:
                if ref is None:
                    values.append(None)
                    continue
                want, tpos = next(types)
                v = self.resolve(graph, ref)
                if v.type != want:
                    self.error(f"{'%' + ref[0]}{':' + str(ref[1]) if ref[1] else ''} has type {v.type.text()}, "
                               f"but node {node.name!r} declares {want.text()}", tpos)
                values.append(v)
            graph.set_inputs(node, values)
            for cname, cpos in controls:
                src = graph.get(cname)
                if src is None:
                    self.error(f"undefined control input ^{cname}", cpos)
                graph.add_control_input(node, src)
        graph.inputs = [Port(n, self.resolve(graph, r)) for n, r in ports["inputs"]]
        graph.outputs = [Port(n, self.resolve(graph, r)) for n, r in ports["outputs"]]
        # Nested subgraphs parsed in this graph's attributes capture values of this graph.
        mine, self.pending_captures = self.pending_captures, []
        for node in list(graph.nodes()):
            for key, sg in list(node.subgraphs()):
                for psg, refs in mine:
                    if psg is sg:
                        graph.set_attr(node, key, Subgraph(sg.graph, [self.resolve(graph, r) for r in refs]))
        self.named = outer_named
        return graph
