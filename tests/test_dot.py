"""Graphviz DOT output: deterministic, coloured by precision, structurally valid DOT."""
import re
import shutil
import subprocess

import numpy as np

from graphir.ir import Graph, Port, Shape, Tensor, TensorType
from graphir.ir.dot import COLORS, precision_class, to_dot
from graphir.ir.types import bf16, f32, i32


def _t(*dims, dtype=f32):
    return TensorType(dtype, Shape(dims))


def mixed_graph(order=1):
    """x(f32) -> Cast -> MatMul(bf16) -> Cast -> Relu(f32), a Split with two outputs, a control edge."""
    g = Graph('mixed "graph"')
    x = g.add_node("Placeholder", attrs={"dtype": f32, "shape": Shape([None, 4])}, output_types=[_t(None, 4)],
                   name="x", domain="tf")
    w = Tensor.from_array(np.ones((4, 4), np.float32), bf16)
    nodes = [("w", "Const", [], {"dtype": bf16, "value": w}, [_t(4, 4, dtype=bf16)])]
    nodes.append(("x/cast", "Cast", ["x"], {"SrcT": f32, "DstT": bf16}, [_t(None, 4, dtype=bf16)]))
    nodes.append(("mm", "MatMul", ["x/cast", "w"], {"T": bf16}, [_t(None, 4, dtype=bf16)]))
    nodes.append(("mm/cast", "Cast", ["mm"], {"SrcT": bf16, "DstT": f32}, [_t(None, 4)]))
    nodes.append(("relu", "Relu", ["mm/cast"], {"T": f32}, [_t(None, 4)]))
    nodes.append(("dim", "Const", [], {"dtype": i32, "value": Tensor.from_array(np.int32(1))}, [_t(dtype=i32)]))
    nodes.append(("split", "Split", ["dim", "relu"], {"T": f32, "num_split": 2}, [_t(None, 2), _t(None, 2)]))
    made = {"x": x}
    pending = list(nodes) if order == 1 else list(reversed(nodes))
    while pending:  # insert in the requested order, as soon as inputs exist
        for item in list(pending):
            name, op, ins, attrs, types = item
            if all(i in made for i in ins):
                made[name] = g.add_node(op, [made[i].output() for i in ins], attrs, types, name=name, domain="tf")
                pending.remove(item)
    g.add_control_input(made["split"], made["w"])
    g.inputs.append(Port("x", x.output()))
    g.outputs += [Port("left", made["split"].output(0)), Port("right", made["split"].output(1))]
    return g


def test_precision_classes():
    g = mixed_graph()
    g.add_node("Shape", [g.node("relu").output()], {"T": f32, "out_type": i32}, [_t(2, dtype=i32)], name="shape", domain="tf")
    got = {n.name: precision_class(n) for n in g.nodes()}
    assert got == {"x": "f32", "w": "bf16", "x/cast": "cast", "mm": "bf16", "mm/cast": "cast", "relu": "f32",
                   "dim": "other", "split": "f32", "shape": "other"}


def _node_colors(dot: str) -> dict:
    return {m.group(1): m.group(2) for m in re.finditer(r'^  "([^"]+)" \[label=.*fillcolor="([^"]+)"\];$', dot, re.M)}


def test_dot_is_deterministic_and_coloured_by_precision():
    g = mixed_graph()
    dot = to_dot(g)
    assert dot == to_dot(g) == to_dot(mixed_graph(order=-1))  # insertion order does not matter
    colors = _node_colors(dot)
    assert colors["mm"] == colors["w"] == COLORS["bf16"][0]
    assert colors["relu"] == colors["x"] == COLORS["f32"][0]
    assert colors["x/cast"] == COLORS["cast"][0] and colors["dim"] == COLORS["other"][0]
    assert len({COLORS[k][0] for k in COLORS}) == len(COLORS)
    # Legend, typed data edges, dashed control edge, multi-output label.
    for _, text in COLORS.values():
        assert f'label="{text}"' in dot
    assert '"x/cast" -> "mm" [label="tensor<?x4xbf16>"];' in dot
    assert '"split" -> "output:right" [label=":1 tensor<?x2xf32>"' in dot
    assert re.search(r'"w" -> "split" \[style=dashed', dot)
    assert 'digraph "mixed \\"graph\\"" {' in dot


def test_dot_is_structurally_valid():
    g = mixed_graph()
    dot = to_dot(g)
    body = re.sub(r'"(?:[^"\\]|\\.)*"', '""', dot)  # strings may hold any brackets
    assert body.count("{") == body.count("}") and body.count("[") == body.count("]")
    assert dot.startswith("digraph ") and dot.rstrip().endswith("}")
    declared = set(re.findall(r'^\s+"((?:[^"\\]|\\.)*)" \[', dot, re.M))
    for a, b in re.findall(r'^\s+"((?:[^"\\]|\\.)*)" -> "((?:[^"\\]|\\.)*)"', dot, re.M):
        assert a in declared and b in declared, (a, b)
    n_edges = sum(len(n.inputs) + len(n.control_inputs) for n in g.nodes())
    real = [line for line in dot.splitlines() if " -> " in line and "invis" not in line and "put:" not in line]
    assert len(real) == n_edges
    if shutil.which("dot"):  # graphviz is optional; when present it must accept the output
        subprocess.run(["dot", "-Tsvg"], input=dot.encode(), check=True, capture_output=True)
