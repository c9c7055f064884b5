"""The package import graph of graphir/ has no cycle and respects the layer order.

Every ``import`` in graphir/ counts as an edge, including imports inside functions (a lazy import still
couples the two modules; it only hides the cycle until run time), except those under
``if TYPE_CHECKING:``. Importing ``graphir.a.b`` implicitly runs ``graphir/a/__init__.py`` first, but that
is Python's doing, not the module's, so only the named module is an edge.

Layers, lowest first (a module may import its own layer or a lower one, never a higher one)::

    errors -> ir -> dialects -> frontends / backends / runtime_check -> transforms -> pipeline / compiler
           -> tuning -> lpot / cli

and graphir/ir is the framework-neutral core: it imports nothing from graphir outside graphir/ir except the
error model (graphir.errors, the layer below it).

Run as a script (``python tests/test_import_graph.py``) to print the edges, cycles and violations.
"""
from __future__ import annotations

import ast
import os
import sys
from dataclasses import dataclass

import networkx as nx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = "graphir"

# Module (or package prefix) -> layer. The longest matching prefix wins. Small leaf helpers sit with the
# layer that owns them: quiet (TF import noise) beside errors; the LPOT config, data and metrics modules
# with tuning; the package facade (graphir/__init__.py, whose API the CLI uses) beside the CLI; the demo
# and ``python -m graphir`` on top.
LAYERS = [
    ("errors", 0), ("quiet", 0), ("table", 0),
    ("ir", 1),
    ("dialects", 2),
    ("frontends", 3), ("backends", 3), ("runtime_check", 3), ("builtins", 3),
    ("transforms", 4),
    ("pipeline", 5), ("compiler", 5),
    ("tuning", 6), ("config", 6), ("data", 6), ("metrics", 6),
    ("lpot", 7), ("api", 7), ("cli", 7), ("", 7),   # "" = graphir/__init__.py
    ("demo", 8), ("__main__", 8),
]
LAYER_NAMES = ["errors", "ir", "dialects", "frontends/backends/runtime_check", "transforms",
               "pipeline/compiler", "tuning", "lpot/cli/package facade", "demo/__main__"]
# What graphir/ir may import from the rest of graphir: nothing.
IR_MAY_IMPORT: set = set()


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    where: str  # file:line

    def __str__(self):
        return f"{self.src} -> {self.dst} ({self.where})"


def module_files(root: str = ROOT) -> dict[str, str]:
    """Dotted module name -> file path, for every .py file under graphir/."""
    out = {}
    base = os.path.join(root, PKG)
    for d, dirs, files in os.walk(base):
        dirs[:] = sorted(x for x in dirs if x != "__pycache__")
        for f in sorted(files):
            if not f.endswith(".py"):
                continue
            rel = os.path.relpath(os.path.join(d, f), root)[:-3].split(os.sep)
            if rel[-1] == "__init__":
                rel = rel[:-1]
            out[".".join(rel)] = os.path.join(d, f)
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST):
    """Every Import/ImportFrom node, at any depth, skipping the body of ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _resolve(name: str, modules: dict) -> str | None:
    """The longest prefix of ``name`` that is a graphir module (``graphir.ir.core.Graph`` -> ``graphir.ir.core``)."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        cand = ".".join(parts[:i])
        if cand in modules:
            return cand
    return None


def import_edges(root: str = ROOT) -> list[Edge]:
    modules = module_files(root)
    edges = []
    for mod, path in modules.items():
        is_pkg = os.path.basename(path) == "__init__.py"
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        where = os.path.relpath(path, root)
        for node in _imports(tree):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                if node.level:
                    # ``from . import x`` in a/b.py means package a; in a/__init__.py, package a too.
                    pkg = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    pkg = pkg[:len(pkg) - (node.level - 1)]
                    base = ".".join(pkg + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                # ``from pkg import sub`` imports the submodule when there is one, else a name from pkg.
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for t in targets:
                if t != PKG and not t.startswith(PKG + "."):
                    continue
                dst = _resolve(t, modules)
                if dst is not None and dst != mod:
                    edges.append(Edge(mod, dst, f"{where}:{node.lineno}"))
    return edges


def build_graph(edges) -> nx.DiGraph:
    g = nx.DiGraph()
    for e in edges:
        if g.has_edge(e.src, e.dst):
            g[e.src][e.dst]["where"].append(e.where)
        else:
            g.add_edge(e.src, e.dst, where=[e.where])
    return g


def cycles(g: nx.DiGraph) -> list[list[tuple[str, str, str]]]:
    """Cycles covering every import edge that lies on a cycle: [(src, dst, where), ...] each.

    Listing every simple cycle would bury the point on a tangled component, and one cycle per strongly
    connected component would hide the other knots in it; so each edge inside a component that no cycle
    printed so far uses gets the shortest cycle through it."""
    out = []
    for comp in sorted(sorted(c) for c in nx.strongly_connected_components(g) if len(c) > 1):
        sub = g.subgraph(comp)
        covered: set = set()
        for a, b in sorted(sub.edges()):
            if (a, b) in covered:
                continue
            cyc = [a] + nx.shortest_path(sub, b, a)[:-1]
            start = cyc.index(min(cyc))
            cyc = cyc[start:] + cyc[:start]
            pairs = list(zip(cyc, cyc[1:] + cyc[:1]))
            covered.update(pairs)
            out.append([(x, y, g[x][y]["where"][0]) for x, y in pairs])
    return out


def layer_of(mod: str) -> int:
    rel = mod[len(PKG) + 1:] if mod.startswith(PKG + ".") else ""
    best = None
    for prefix, layer in LAYERS:
        if rel == prefix or (prefix and rel.startswith(prefix + ".")):
            if best is None or len(prefix) > len(best[0]):
                best = (prefix, layer)
    if best is None:
        raise KeyError(f"module {mod} has no layer; add it to LAYERS in {__file__}")
    return best[1]


def layer_violations(edges) -> list[str]:
    out = []
    for e in edges:
        ls, ld = layer_of(e.src), layer_of(e.dst)
        if ld > ls:
            out.append(f"{e}: layer {LAYER_NAMES[ls]!r} imports the higher layer {LAYER_NAMES[ld]!r}")
    return sorted(set(out))


def ir_violations(edges) -> list[str]:
    ir = f"{PKG}.ir"
    return sorted({f"{e}: graphir/ir imports from outside graphir/ir" for e in edges
                   if (e.src == ir or e.src.startswith(ir + ".")) and not (e.dst == ir or e.dst.startswith(ir + "."))
                   and e.dst not in IR_MAY_IMPORT})


def _format_cycles(cs) -> str:
    lines = []
    for c in cs:
        path = " -> ".join([a for a, _, _ in c] + [c[0][0]])
        lines.append(f"cycle: {path}")
        lines.extend(f"    {a} -> {b} at {w}" for a, b, w in c)
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- tests
def test_the_edge_parser_sees_lazy_and_relative_imports(tmp_path):
    """The checker itself: function-level imports count, TYPE_CHECKING ones do not, relative forms resolve."""
    pkg = tmp_path / PKG
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from .a import f\n")
    (pkg / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import T\n"
                              "def f():\n    from .sub import c\n    import graphir.b\n")
    (pkg / "b.py").write_text("import os\nfrom . import a\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "c.py").write_text("from .. import a\nfrom ..b import x\n")
    got = {(e.src, e.dst) for e in import_edges(str(tmp_path))}
    assert got == {("graphir", "graphir.a"), ("graphir.a", "graphir.sub.c"), ("graphir.a", "graphir.b"),
                   ("graphir.b", "graphir.a"), ("graphir.sub.c", "graphir.a"), ("graphir.sub.c", "graphir.b")}
    cs = cycles(build_graph(import_edges(str(tmp_path))))
    # Every edge on a cycle is shown (graphir -> graphir.a is on none), each cycle closes on itself.
    assert {(a, b) for c in cs for a, b, _ in c} == got - {("graphir", "graphir.a")}
    assert all(c[-1][1] == c[0][0] for c in cs)


def test_no_import_cycles():
    edges = import_edges()
    assert {"graphir.ir.core", "graphir.compiler"} <= {e.src for e in edges}  # it looked at the real package
    cs = cycles(build_graph(edges))
    assert not cs, "import cycles in graphir/:\n" + _format_cycles(cs)


def test_layer_order():
    bad = layer_violations(import_edges())
    assert not bad, "imports against the layer order:\n" + "\n".join(bad)


def test_ir_is_self_contained():
    bad = ir_violations(import_edges())
    assert not bad, "\n".join(bad)


if __name__ == "__main__":
    es = import_edges()
    problems = [_format_cycles(cycles(build_graph(es)))] + layer_violations(es) + ir_violations(es)
    problems = [p for p in problems if p]
    print("\n".join(problems) or f"{len(es)} import edges, no cycle, layers respected")
    sys.exit(1 if problems else 0)
