"""Random-graph fuzzing of the passes: seeded random TF inference graphs, checked pass by pass in TF.

``make_graph(seed)`` builds a random DAG over the inference op set graphir optimizes (elementwise ops,
MatMul / Conv2D / depthwise conv with batch norms, biases and activations, Reshape / Transpose / Concat
and friends, reductions, constant sub-graphs, casts, duplicated sub-expressions, TF1 conds on constant
predicates or on data, TF1 while loops, debug and identity ops, control edges, dead branches) in a
``tf.Graph`` with fixed-shape fp32 placeholders, and loads it into the IR with every node kept.

``check_graph(graph)`` runs every registered pass alone, then the full fp32 and bf16 pipelines, on
copies of the graph, and reports a :class:`Failure` when a pass raises or leaves invalid IR, when a
result computes different values from the original in TensorFlow, when a pass is not idempotent (a
second run changes the printed IR), or when a result's text does not re-parse to the same text.

``minimize(graph, failure)`` shrinks a failing graph (greedy delta debugging: fewer outputs, nodes
bypassed or cut off into new inputs, dead nodes and control edges dropped) while the same check keeps
failing the same way, and
``fuzz(seed)`` puts it together: it returns None or a report with the seed and the minimal ``.gir``.

Used by tests/test_fuzz.py (a fixed set of seeds in ``make test``) and benchmarks/fuzz.py (``make fuzz``).
"""
from __future__ import annotations

import os
import sys
import traceback
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from conftest import parse_ir, print_ir, run_graph, run_pipeline  # noqa: E402

# Options a pass needs to do anything on graphs this small (the bf16 cost model would keep them fp32).
PASS_OPTIONS = {"auto-mixed-precision": "{min_region_flops=0, flops_per_cast_byte=0}"}
BF16_CHECKS = {"pass:auto-mixed-precision", "pipeline:bf16"}
# |got - want| <= ATOL * max(1, max|want|) + RTOL * |want|, per output. Measured over 150 seeds: fp32
# results differ by at most 1.3e-7 of that scale (folding and reassociation round differently), bf16 ones
# by 8e-3 (8 bits of mantissa through a dozen ops); the bounds leave a margin of ~100x and ~4x.
FP32_TOL = (1e-5, 1e-5)
BF16_TOL = (3e-2, 3e-2)
MAX_REDUCTION_TRIALS = 400


# ------------------------------------------------------------------------------------------ generator
@dataclass
class _Entry:
    tensor: object                 # tf.Tensor, float32, static shape
    rebuild: Optional[Callable]    # rebuild(*inputs) -> tf.Tensor: the same op again (for duplicates)
    inputs: tuple


class _Gen:
    """One random graph. Every builder takes the rng and the pool and adds one tensor (or nothing)."""

    def __init__(self, seed: int):
        import tensorflow as tf

        self.tf = tf
        self.raw = tf.raw_ops
        self.rng = np.random.default_rng(seed)
        self.pool: list[_Entry] = []
        self.errors = 0

    # ---------------------------------------------------------------- helpers
    def pick(self, pred=lambda e: True, recent=True) -> Optional[_Entry]:
        # Scalars (the scalar constants operands use) only ever serve as operands.
        cands = [e for e in self.pool if e.tensor.shape.rank and pred(e)]
        if not cands:
            return None
        if recent:  # favour recent tensors, so graphs grow deep as well as wide
            i = len(cands) - 1 - min(int(self.rng.geometric(0.35)) - 1, len(cands) - 1)
            return cands[i]
        return cands[int(self.rng.integers(len(cands)))]

    def add(self, t, rebuild=None, inputs=()):
        self.pool.append(_Entry(t, rebuild, tuple(inputs)))
        return t

    def values(self, shape, scale=1.0, positive=False):
        a = self.rng.standard_normal(shape) * scale
        a = np.abs(a) + 0.5 if positive else a
        return np.round(a, 3).astype(np.float32)  # short decimals: readable in a minimal .gir

    def const(self, shape, scale=1.0, positive=False):
        v = self.values(shape, scale, positive)
        return self.add(self.tf.constant(v), lambda: self.tf.constant(v))

    @staticmethod
    def shape(t):
        return tuple(int(d) for d in t.shape)

    def chance(self, p):
        return self.rng.random() < p

    def choice(self, items):
        return items[int(self.rng.integers(len(items)))]

    # ---------------------------------------------------------------- builders
    def unary(self):
        x = self.pick()
        tf, raw = self.tf, self.raw
        ops = {
            "relu": tf.nn.relu, "relu6": tf.nn.relu6, "tanh": tf.tanh, "sigmoid": tf.sigmoid, "neg": tf.negative,
            "abs": tf.abs, "elu": tf.nn.elu, "softplus": tf.nn.softplus, "leaky": lambda a: tf.nn.leaky_relu(a, 0.1),
            "identity": tf.identity, "stop_gradient": tf.stop_gradient, "snapshot": lambda a: raw.Snapshot(input=a),
            "check_numerics": lambda a: tf.debugging.check_numerics(a, "fuzz"),
            "exp_tanh": lambda a: tf.exp(tf.tanh(a)), "log1p_abs": lambda a: tf.math.log(tf.abs(a) + 1.0),
            "sqrt_abs": lambda a: tf.sqrt(tf.abs(a)), "square_tanh": lambda a: tf.square(tf.tanh(a)),
            "rsqrt": lambda a: tf.math.rsqrt(tf.abs(a) + 1.0),
        }
        f = ops[self.choice(sorted(ops))]
        return self.add(f(x.tensor), f, [x.tensor])

    def operand(self, x):
        """A second operand for an elementwise op on ``x``: a tensor of its shape or a broadcastable constant."""
        shape = self.shape(x)
        kind = self.choice(["same", "same", "const", "vector", "scalar", "neutral"])
        if kind == "same":
            y = self.pick(lambda e: self.shape(e.tensor) == shape and e.tensor is not x, recent=False)
            if y is not None:
                return y.tensor, None
            kind = "const"
        if kind == "const":
            return self.const(shape), None
        if kind == "vector":
            return self.const(shape[-1:]), None
        if kind == "scalar":
            return self.const(()), None
        return None, "neutral"

    def binary(self):
        tf = self.tf
        x = self.pick().tensor
        y, special = self.operand(x)
        op = self.choice(["add", "addv2", "sub", "mul", "max", "min", "sqdiff", "div", "biasadd"])
        if special == "neutral":  # x+0, x*1, x-0, x/1 (simplify-arithmetic), sometimes broadcast as a vector
            neutral = {"add": 0.0, "addv2": 0.0, "sub": 0.0, "mul": 1.0, "div": 1.0}.get(op)
            if neutral is None:
                op, neutral = "mul", 1.0
            v = np.full(self.shape(x)[-1:] if self.chance(0.5) else (), neutral, np.float32)
            y = self.add(tf.constant(v), lambda: tf.constant(v))
        fns = {
            "add": lambda a, b: self.raw.Add(x=a, y=b), "addv2": tf.add, "sub": tf.subtract, "mul": tf.multiply,
            "max": tf.maximum, "min": tf.minimum, "sqdiff": tf.math.squared_difference,
        }
        if op == "div":
            f = (lambda a, b: a / (tf.abs(b) + 1.0)) if special is None else (lambda a, b: a / b)
        elif op == "biasadd":
            if len(self.shape(x)) < 2:
                return None
            b = self.const(self.shape(x)[-1:])
            f = tf.nn.bias_add
            return self.add(f(x, b), f, [x, b])
        else:
            f = fns[op]
        if op in ("add", "addv2", "mul", "max", "min") and self.chance(0.4):
            x, y = y, x  # constants on either side
        return self.add(f(x, y), f, [x, y])

    def matmul(self):
        tf = self.tf
        e = self.pick(lambda e: len(e.tensor.shape) == 2)
        if e is None:
            return self.flatten()
        x = e.tensor
        b, k = self.shape(x)
        n = int(self.rng.integers(1, 6))
        other = self.pick(lambda e: len(e.tensor.shape) == 2 and int(e.tensor.shape[1]) == k, recent=False)
        if other is not None and self.chance(0.2):  # non-constant weights: nothing to fold
            f = lambda a, w: tf.matmul(a, w, transpose_b=True)  # noqa: E731
            return self.add(f(x, other.tensor), f, [x, other.tensor])
        tb = self.chance(0.3)
        w = self.const((n, k) if tb else (k, n), scale=1.0 / np.sqrt(k))
        f = lambda a, ww: tf.matmul(a, ww, transpose_b=tb)  # noqa: E731
        y = self.add(f(x, w), f, [x, w])
        return self.epilogue(y, n)

    def epilogue(self, y, c, rank=2):
        """What follows a conv/matmul: bias, batch norm (fused or decomposed), activation, in common orders."""
        tf = self.tf
        shape = (1,) * (rank - 1) + (c,)
        r = self.rng.random()
        acts = [tf.nn.relu, tf.nn.relu6, tf.tanh, tf.sigmoid, tf.nn.elu]
        if r < 0.3:
            b = self.const((c,))
            y = self.add(tf.nn.bias_add(y, b), tf.nn.bias_add, [y, b])
        elif r < 0.5 and rank == 4:
            g, be, m = self.const((c,), 0.3), self.const((c,), 0.5), self.const((c,), 0.5)
            v = self.const((c,), 0.5, positive=True)

            def bn(a, g_, b_, m_, v_):
                return self.raw.FusedBatchNormV3(x=a, scale=g_, offset=b_, mean=m_, variance=v_, epsilon=1e-3,
                                                 is_training=False)[0]
            y = self.add(bn(y, g, be, m, v), bn, [y, g, be, m, v])
            # TF's own remapper fuses FusedBatchNorm + Tanh/Sigmoid into a kernel it does not have on CPU
            # ("Fusion is not implemented: [FusedBatchNorm,Tanh]"): the original graph would not run.
            acts = [tf.nn.relu, tf.nn.relu6, tf.nn.elu]
        elif r < 0.7:
            s = self.const(shape if self.chance(0.5) else (c,), 0.5, positive=True)
            y = self.add(y * s, tf.multiply, [y, s])
            t = self.const(shape if self.chance(0.5) else (c,))
            y = self.add(y + t, tf.add, [y, t])
        if self.chance(0.6):
            act = self.choice(acts)
            y = self.add(act(y), act, [y])
        return y

    def conv(self):
        tf = self.tf
        e = self.pick(lambda e: len(e.tensor.shape) == 4)
        if e is None:
            return self.unflatten()
        x = e.tensor
        _, h, w, c = self.shape(x)
        k = int(self.rng.integers(1, min(3, h, w) + 1))
        stride = 2 if self.chance(0.25) else 1
        pad = self.choice(["SAME", "VALID"])
        r = self.rng.random()
        if r < 0.5:
            o = int(self.rng.integers(1, 5))
            wt = self.const((k, k, c, o), scale=1.0 / np.sqrt(k * k * c))
            f = lambda a, ww: tf.nn.conv2d(a, ww, stride, pad)  # noqa: E731
            y = self.add(f(x, wt), f, [x, wt])
            if o == c and self.shape(y) == self.shape(x) and self.chance(0.5):  # a residual block
                b = self.const((o,))
                y = self.add(tf.nn.bias_add(y, b), tf.nn.bias_add, [y, b])
                y = self.add(y + x, tf.add, [y, x])
                return self.add(tf.nn.relu(y), tf.nn.relu, [y])
            return self.epilogue(y, o, rank=4)
        if r < 0.8:
            m = int(self.rng.integers(1, 3))
            wt = self.const((k, k, c, m), scale=1.0 / k)
            f = lambda a, ww: tf.nn.depthwise_conv2d(a, ww, [1, stride, stride, 1], pad)  # noqa: E731
            y = self.add(f(x, wt), f, [x, wt])
            return self.epilogue(y, c * m, rank=4)
        pool = self.choice([tf.nn.max_pool2d, tf.nn.avg_pool2d])
        kk = min(2, h, w)
        f = lambda a: pool(a, kk, stride, pad)  # noqa: E731
        return self.add(f(x), f, [x])

    def flatten(self):
        tf = self.tf
        e = self.pick(lambda e: len(e.tensor.shape) >= 3)
        if e is None:
            return None
        x = e.tensor
        shape = self.shape(x)
        if self.chance(0.5):  # through Shape/StridedSlice/Concat: fold-constants work
            f = lambda a: tf.reshape(a, tf.concat([tf.shape(a)[:1], [-1]], 0))  # noqa: E731
        else:
            f = lambda a: tf.reshape(a, [shape[0], -1])  # noqa: E731
        return self.add(f(x), f, [x])

    def unflatten(self):
        tf = self.tf
        e = self.pick(lambda e: len(e.tensor.shape) == 2)
        if e is None:
            return None
        x = e.tensor
        b, n = self.shape(x)
        hw = [d for d in (1, 2, 3, 4) if n % d == 0 and n // d <= 8]
        h = self.choice(hw)
        f = lambda a: tf.reshape(a, [b, h, 1, n // h])  # noqa: E731
        return self.add(f(x), f, [x])

    def shape_op(self):
        tf = self.tf
        e = self.pick()
        x = e.tensor
        shape = self.shape(x)
        rank = len(shape)
        kind = self.choice(["transpose", "transpose2", "expand_squeeze", "concat", "reshape2", "slice", "pad",
                            "tile", "flatten", "unflatten"])
        if kind == "flatten":
            return self.flatten()
        if kind == "unflatten":
            return self.unflatten()
        if kind in ("transpose", "transpose2"):
            p1 = [int(i) for i in self.rng.permutation(rank)]
            f = lambda a: tf.transpose(a, p1)  # noqa: E731
            y = self.add(f(x), f, [x])
            if kind == "transpose2":  # a pair: the inverse (removed) or another one (composed)
                p2 = [int(i) for i in (np.argsort(p1) if self.chance(0.5) else self.rng.permutation(rank))]
                g = lambda a: tf.transpose(a, p2)  # noqa: E731
                y = self.add(g(y), g, [y])
            return y
        if kind == "expand_squeeze":
            ax = int(self.rng.integers(0, rank + 1))
            f = lambda a: tf.squeeze(tf.expand_dims(a, ax), [ax])  # noqa: E731
            return self.add(f(x), f, [x])
        if kind == "concat":
            y = self.pick(lambda e: self.shape(e.tensor) == shape, recent=False).tensor
            ax = int(self.rng.integers(0, rank))
            f = lambda a, b: tf.concat([a, b], ax)  # noqa: E731
            return self.add(f(x, y), f, [x, y])
        if kind == "reshape2":  # to some other shape and back: Reshape of Reshape
            n = int(np.prod(shape))
            f = lambda a: tf.reshape(tf.reshape(a, [n]), shape)  # noqa: E731
            return self.add(f(x), f, [x])
        if kind == "slice":
            begin = [int(self.rng.integers(0, d)) for d in shape]
            size = [int(self.rng.integers(1, d - b + 1)) for d, b in zip(shape, begin)]
            f = lambda a: tf.slice(a, begin, size)  # noqa: E731
            return self.add(f(x), f, [x])
        if kind == "pad":
            # Not the batch or channel dims of a 4-d tensor: TF's own remapper folds a Pad into the Conv2D
            # after it and then runs it with the unpadded depth ("input depth must be evenly divisible
            # by filter depth: 2 vs 3"), so the original graph would not run.
            inner = range(1, rank - 1) if rank == 4 else range(rank)
            pads = [[int(self.rng.integers(0, 2)), int(self.rng.integers(0, 2))] if i in inner else [0, 0]
                    for i in range(rank)]
            f = lambda a: tf.pad(a, pads)  # noqa: E731
            return self.add(f(x), f, [x])
        mult = [int(self.rng.integers(1, 3)) if d <= 4 else 1 for d in shape]
        f = lambda a: tf.tile(a, mult)  # noqa: E731
        return self.add(f(x), f, [x])

    def reduce(self):
        tf = self.tf
        x = self.pick().tensor
        rank = len(x.shape)
        if self.chance(0.3):
            return self.add(tf.nn.softmax(x), tf.nn.softmax, [x])
        red = self.choice([tf.reduce_mean, tf.reduce_sum, tf.reduce_max, tf.reduce_min])
        ax = int(self.rng.integers(0, rank))
        keep = self.chance(0.5) or rank == 1
        f = lambda a: red(a, axis=ax, keepdims=keep)  # noqa: E731
        return self.add(f(x), f, [x])

    def constant_subgraph(self):
        """A sub-graph of constants only (fold-constants), combined with a tensor."""
        tf = self.tf
        x = self.pick().tensor
        shape = self.shape(x)[-1:] if self.chance(0.6) else self.shape(x)
        c1, c2 = self.values(shape), self.values(shape, positive=True)

        def f(a):
            k = tf.exp(tf.tanh(tf.constant(c1))) * tf.sqrt(tf.constant(c2)) + tf.fill(list(shape), 0.5)
            return a * k if self.chance(0.5) else a + k
        return self.add(f(x), None, [x])

    def like(self):
        tf = self.tf
        x = self.pick().tensor
        f = self.choice([lambda a: a + tf.zeros_like(a), lambda a: a * tf.ones_like(a)])
        return self.add(f(x), f, [x])

    def cast(self):
        tf = self.tf
        x = self.pick().tensor
        kind = self.choice(["f64", "bf16", "f16"])
        if kind == "f64":     # exact round trip
            f = lambda a: tf.cast(tf.cast(a, tf.float64), tf.float32)  # noqa: E731
        elif kind == "bf16":  # lossy round trip, must stay
            f = lambda a: tf.cast(tf.cast(a, tf.bfloat16), tf.float32)  # noqa: E731
        else:
            f = lambda a: tf.cast(tf.cast(tf.tanh(a), tf.float16), tf.float32)  # noqa: E731
        return self.add(f(x), f, [x])

    def duplicate(self):
        """The same op on the same inputs again: a common sub-expression."""
        e = self.pick(lambda e: e.rebuild is not None, recent=False)
        if e is None:
            return None
        return self.add(e.rebuild(*e.inputs), e.rebuild, e.inputs)

    def cond(self):
        """A TF1 cond on a constant predicate, on a learning phase (a PlaceholderWithDefault), or on data."""
        tf = self.tf
        from models import control_flow_v1

        x = self.pick().tensor
        value = bool(self.chance(0.5))
        r = self.rng.random()
        with control_flow_v1():
            if r < 0.6:
                pred = tf.constant(value)
                if self.chance(0.5):
                    pred = tf.compat.v1.placeholder_with_default(pred, [])
            else:
                pred = tf.reduce_sum(self.pick(recent=False).tensor) > 0.0
            a, b = self.choice([tf.nn.relu, tf.tanh]), self.choice([tf.sigmoid, tf.negative, tf.identity])
            # Branches that compute the same thing twice, or need constants of their own, now and then.
            c = self.values(self.shape(x)[-1:])
            y = tf.compat.v1.cond(pred, lambda: a(x) * tf.constant(c) + a(x), lambda: b(x) + 0.0)
        return self.add(y, None, [x])

    def loop(self):
        """A TF1 while loop (Enter/Merge/Switch/NextIteration/Exit): a few steps of tanh(h * w + b)."""
        tf = self.tf
        from models import control_flow_v1

        x = self.pick().tensor
        c = self.shape(x)[-1]
        w, b = self.values((c,), 0.5), self.values((c,), 0.5)
        steps = int(self.rng.integers(1, 4))
        with control_flow_v1():
            _, y = tf.compat.v1.while_loop(
                lambda i, h: i < steps,
                lambda i, h: (i + 1, tf.tanh(h * tf.constant(w) + tf.constant(b) * 1.0)),
                [tf.constant(0), x])
        return self.add(y, None, [x])

    def control(self):
        """A control edge: from an Assert (debug op), a NoOp group, or another tensor's op."""
        tf = self.tf
        x = self.pick().tensor
        other = self.pick(recent=False).tensor
        r = self.rng.random()
        if r < 0.4:
            dep = self.raw.Assert(condition=tf.reduce_all(tf.math.is_finite(other)), data=[other])
        elif r < 0.6:
            dep = tf.group(other.op)
        else:
            dep = other.op
        with tf.control_dependencies([dep]):
            y = self.choice([tf.nn.relu, tf.tanh, tf.identity])(x)
        return self.add(y, None, [x])

    def dead(self):
        """A branch nothing reads."""
        self.choice([self.unary, self.binary, self.reduce])()
        self.pool.pop()

    BUILDERS = [("unary", 5), ("binary", 6), ("matmul", 3), ("conv", 3), ("shape_op", 4), ("reduce", 2),
                ("constant_subgraph", 1), ("like", 1), ("cast", 1), ("duplicate", 2), ("cond", 1),
                ("loop", 0.5), ("control", 1), ("dead", 1)]

    def build(self, n_ops: int):
        tf = self.tf
        names = [b for b, _ in self.BUILDERS]
        w = np.array([w for _, w in self.BUILDERS], float)
        w /= w.sum()
        n_in = 1 if self.chance(0.6) else 2
        for i in range(n_in):
            if self.chance(0.5):
                shape = [int(self.rng.integers(1, 4)), int(self.rng.integers(2, 7))]
            else:
                shape = [1, int(self.rng.integers(2, 6)), int(self.rng.integers(2, 6)), int(self.rng.integers(1, 5))]
            self.add(tf.compat.v1.placeholder(tf.float32, shape, name=f"x{i}"))
        while len(self.pool) < n_ops + n_in:
            b = names[int(self.rng.choice(len(names), p=w))]
            before = len(self.pool)
            try:
                getattr(self, b)()
            except (ValueError, TypeError, tf.errors.OpError):
                self.errors += 1  # a combination TF rejects at graph construction: try another
                del self.pool[before:]
                if self.errors > 50:
                    raise
            if b == "dead":
                n_ops -= 1


def make_graph(seed: int, n_ops: Optional[int] = None):
    """The random graph for ``seed`` as IR: inputs x0[, x1], outputs out0.. (some through Identity nodes,
    some the op's own output); every node the builders made is kept, dead ones included."""
    import tensorflow as tf

    from graphir.frontends.tf import from_graph_def
    from graphir.ir import Port

    g = tf.Graph()
    with g.as_default():
        gen = _Gen(seed)
        n = n_ops if n_ops is not None else int(gen.rng.integers(4, 20))
        gen.build(n)
        made = [e.tensor for e in gen.pool if e.tensor.op.type != "Placeholder"]
        outs = [made[-1]] + [made[int(i)] for i in gen.rng.choice(len(made), int(gen.rng.integers(0, 3)))]
        seen, names = set(), []
        for i, t in enumerate(outs):
            if t.name in seen:
                continue
            seen.add(t.name)
            names.append(tf.identity(t, name=f"out{i}").name if gen.chance(0.5) else t.name)
    ir = from_graph_def(g.as_graph_def())
    ir.outputs = [Port(f"out{i}", ir.value(n[:-2] if n.endswith(":0") else n)) for i, n in enumerate(names)]
    ir.verify()
    return ir


# ------------------------------------------------------------------------------------------- checker
@dataclass
class Failure:
    check: str    # "original", "pass:<name>", "pipeline:fp32", "pipeline:bf16"
    kind: str     # crash | mismatch | not-idempotent | round-trip | tf-error
    message: str

    def __str__(self):
        return f"{self.check}: {self.kind}: {self.message}"


def checks() -> list[str]:
    from graphir.transforms.pass_manager import known_passes

    return [f"pass:{p}" for p in known_passes()] + ["pipeline:fp32", "pipeline:bf16"]


def compare(want, got, tol) -> Optional[str]:
    atol, rtol = tol
    if len(want) != len(got):
        return f"{len(got)} outputs, expected {len(want)}"
    for i, (a, b) in enumerate(zip(want, got)):
        if a.shape != b.shape or a.dtype != b.dtype:
            return f"output {i}: {b.dtype}{list(b.shape)}, expected {a.dtype}{list(a.shape)}"
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        # NaN and +-inf must sit in the same places; the finite values must agree within the tolerance.
        def special(x):
            return np.where(np.isnan(x), 2.0, np.where(np.isinf(x), np.sign(x), 0.0))
        odd = special(a64) != special(b64)
        fin = np.isfinite(a64) & np.isfinite(b64)
        diff = np.abs(np.where(fin, a64, 0.0) - np.where(fin, b64, 0.0))
        scale = max(1.0, float(np.abs(a64[fin]).max(initial=0.0)))
        if odd.any() or (diff - rtol * np.where(fin, np.abs(a64), 0.0)).max(initial=0.0) > atol * scale:
            j = int(np.argmax(odd)) if odd.any() else int(np.argmax(diff))
            return (f"output {i}: max |diff| {diff.max(initial=0.0):.3g} (scale {scale:.3g}); at flat index {j}: "
                    f"got {b64.reshape(-1)[j]:.6g}, expected {a64.reshape(-1)[j]:.6g}")
    return None


def _one(e: BaseException) -> str:
    from graphir.errors import one_line

    return f"{type(e).__name__}: {one_line(e)}"[:400]


def _transform(graph, check: str):
    import graphir

    if check == "pipeline:fp32":
        return graphir.compile(graph, precisions="fp32").ir
    if check == "pipeline:bf16":
        # An explicit target compiles for that CPU whatever this one has; TF emulates bf16 if it must.
        return graphir.compile(graph, precisions="bf16", target="amx_bf16").ir
    name = check.split(":", 1)[1]
    return run_pipeline(graph, name + PASS_OPTIONS.get(name, ""))


def check_graph(graph, *, seed: int = 0, only: Optional[str] = None) -> list[Failure]:
    """Every check on ``graph`` (or just ``only``); [] when all hold."""
    from graphir.runtime_check.runner import random_inputs

    feeds = random_inputs(graph, dim=2, seed=seed)
    try:
        want = run_graph(graph, feeds)
    except Exception as e:
        return [Failure("original", "tf-error", _one(e))]
    before = print_ir(graph)
    failures = []
    for check in [only] if only else checks():
        if check == "pass:tf-to-onnx" and _unexportable(graph):
            continue  # ops without an ONNX conversion (TF1 control flow): refusing them is the right answer
        try:
            out = _transform(graph, check)
        except Exception as e:
            failures.append(Failure(check, "crash", _one(e)))
            continue
        text = print_ir(out)
        if text != before or not check.startswith("pass:"):  # an unchanged graph computes the same
            try:
                got = run_graph(out, feeds)
            except Exception as e:
                failures.append(Failure(check, "tf-error", _one(e)))
                continue
            msg = compare(want, got, BF16_TOL if check in BF16_CHECKS else FP32_TOL)
            if msg:
                failures.append(Failure(check, "mismatch", msg))
                continue
        if check.startswith("pass:"):
            full = out.text(full_constants=True)
            try:
                reparsed = parse_ir(full).text(full_constants=True)
            except Exception as e:
                reparsed = f"<{_one(e)}>"
            if reparsed != full:
                failures.append(Failure(check, "round-trip", _first_diff(full, reparsed)))
                continue
            try:
                again = print_ir(_transform(out, check))
            except Exception as e:
                failures.append(Failure(check, "crash", "on the second run: " + _one(e)))
                continue
            if again != text:
                failures.append(Failure(check, "not-idempotent", _first_diff(text, again)))
    return failures


def _unexportable(graph) -> bool:
    from graphir.transforms.tf_to_onnx import unsupported_ops

    return bool(unsupported_ops(graph))


def _first_diff(a: str, b: str) -> str:
    la, lb = a.splitlines(), b.splitlines()
    for i, (x, y) in enumerate(zip(la, lb)):
        if x != y:
            return f"line {i + 1}: {x.strip()[:160]!r} became {y.strip()[:160]!r}"
    return f"{len(la)} lines became {len(lb)}"


# ------------------------------------------------------------------------------------------ minimizer
def _live(graph) -> set:
    """Nodes the outputs and inputs need, by data or control edges."""
    stack = [p.value.node for p in graph.outputs + graph.inputs]
    seen = set()
    while stack:
        n = stack.pop()
        if n.name in seen:
            continue
        seen.add(n.name)
        stack.extend(v.node for v in n.inputs)
        stack.extend(n.control_inputs)
    return seen


def _size(graph) -> tuple:
    """What shrinking lowers: live computation, then all computation, then control edges, then inputs (a
    new input costs least: cutting the graph at one is how it shrinks)."""
    live = _live(graph)
    ops = [n for n in graph.nodes() if not n.info.source]
    return (sum(1 for n in ops if n.name in live), len(ops), sum(len(n.control_inputs) for n in graph.nodes()),
            len(graph))


def _strip(graph) -> None:
    live = _live(graph)
    dead = [n for n in graph.nodes() if n.name not in live]
    if dead:
        graph.remove_nodes(dead)


def _candidates(graph):
    """Smaller variants of ``graph``, biggest cuts first: (description, function that edits a copy).

    An edit removes only what it orphans: a failure may need a node that was dead all along (a duplicate
    CSE merges the live one into, say), so dead nodes go by separate candidates, all at once or one by one."""
    from graphir.ir import Port

    def drop_output(i):
        def f(g):
            del g.outputs[i]
        return f

    def orphans(g, n):  # drop n and, transitively, what only it used
        stack = [n]
        while stack:
            n = stack.pop()
            if n.graph is g and not g.is_signature_node(n) and not g.users(n) and not g.control_users(n):
                stack += [v.node for v in n.inputs] + list(n.control_inputs)
                g.remove_node(n, forward_control=False)

    def cut(name):  # the node's value becomes a new graph input
        def f(g):
            n = g.node(name)
            v = n.outputs[0]
            ph = g.add_node("Placeholder", (), {"dtype": v.dtype, "shape": v.shape}, [v.type], name=f"{name}_in", domain="tf")
            g.replace_all_uses_with(v, ph.outputs[0], outputs=True)
            g.inputs.append(Port(ph.name, ph.outputs[0]))
            for u in g.control_users(n):
                g.remove_control_input(u, n)
            orphans(g, n)
        return f

    def bypass(name, slot):  # readers read the node's input instead
        def f(g):
            n = g.node(name)
            g.replace_all_uses_with(n.outputs[0], n.inputs[slot], outputs=True)
            orphans(g, n)
        return f

    def drop_control(name, src):
        def f(g):
            g.remove_control_input(g.node(name), g.node(src))
        return f

    def drop_input(i):
        def f(g):
            n = g.inputs[i].value.node
            del g.inputs[i]
            if not g.is_signature_node(n) and not g.users(n) and not g.control_users(n):
                g.remove_node(n)
        return f

    def remove(name):  # a dead node and the (dead) nodes it feeds, loop back edges included
        def f(g):
            doomed, stack = {}, [g.node(name)]
            while stack:
                n = stack.pop()
                if n.name not in doomed:
                    doomed[n.name] = n
                    stack.extend(g.users(n) + g.control_users(n))
            g.remove_nodes(list(doomed.values()))
        return f

    out = [(f"drop output {p.name}", drop_output(i)) for i, p in enumerate(graph.outputs) if len(graph.outputs) > 1]
    live = _live(graph)
    order = graph.topo_order()
    if len(live) < len(graph):
        out.append(("strip dead nodes", _strip))
        out += [(f"remove dead {n.name} and what it feeds", remove(n.name)) for n in order if n.name not in live]
    # Inside a TF1 cond branch a new input would be live where the branch was dead: a Merge would then see
    # two live inputs and pick either. Branches are not cut.
    in_branch: set = set()
    stack = [u for n in order if n.op_type in ("Switch", "RefSwitch") for u in graph.users(n)]
    while stack:
        u = stack.pop()
        if u.name not in in_branch and u.op_type not in ("Merge", "RefMerge"):
            in_branch.add(u.name)
            stack.extend(graph.users(u))
    for n in order:
        if n.info.source or len(n.outputs) != 1 or n.const_value() is not None or n.name in in_branch:
            continue
        v = n.outputs[0]
        if v.shape.is_static and v.dtype.np is not None:
            out.append((f"cut at {n.name}", cut(n.name)))
    for n in reversed(order):
        if len(n.outputs) == 1:
            for s, v in enumerate(n.inputs):
                if v.type == n.outputs[0].type:
                    out.append((f"bypass {n.name}", bypass(n.name, s)))
                    break
        for c in n.control_inputs:
            out.append((f"drop ^{c.name} of {n.name}", drop_control(n.name, c.name)))
    for i, p in enumerate(graph.inputs):
        if not graph.users(p.value.node) and not graph.control_users(p.value.node) and not graph.is_output(p.value):
            out.append((f"drop unused input {p.name}", drop_input(i)))
    return out


def minimize(graph, failure: Failure, *, seed: int = 0, log=None):
    """A small graph on which ``failure.check`` still fails with ``failure.kind`` (greedy delta debugging)."""
    def fails(g) -> bool:
        try:
            g.verify()
        except Exception:
            return False
        return any(f.kind == failure.kind and f.check == failure.check
                   for f in check_graph(g, seed=seed, only=None if failure.check == "original" else failure.check))

    # A candidate that did not keep the failure is not tried again until a sweep finds nothing else:
    # re-trying every one after each success would make shrinking quadratic in the graph size.
    failed: set = set()
    fresh = True  # no success since ``failed`` was last cleared
    trials = 0
    while trials < MAX_REDUCTION_TRIALS:
        for what, edit in _candidates(graph):
            if what in failed:
                continue
            trials += 1
            g = graph.copy()
            try:
                edit(g)
                ok = _size(g) < _size(graph) and fails(g)
            except Exception:
                ok = False
            if ok:
                if log:
                    log(f"  {what}: {len(g)} nodes")
                graph, fresh = g, False
                break
            failed.add(what)
            if trials >= MAX_REDUCTION_TRIALS:
                break
        else:
            if fresh:
                break
            failed.clear()
            fresh = True
    return graph


# ---------------------------------------------------------------------------------------------- driver
def fuzz(seed: int, *, reduce: bool = True, log=None) -> Optional[str]:
    """None if every check holds on the graph of ``seed``; else a report with the seed, the failures and
    the minimal ``.gir`` of the first one."""
    try:
        graph = make_graph(seed)
    except Exception:
        return f"seed {seed}: the generator failed:\n{traceback.format_exc()}"
    failures = check_graph(graph, seed=seed)
    if not failures:
        return None
    lines = [f"seed {seed}: {len(failures)} failing check(s) on a graph of {len(graph)} nodes:"]
    lines += [f"  {f}" for f in failures]
    first = failures[0]
    small = minimize(graph, first, seed=seed, log=log) if reduce else graph
    lines.append(f"minimal .gir for {first.check} ({first.kind}), {len(small)} nodes"
                 f" (reproduce: python benchmarks/fuzz.py --seed {seed}):")
    lines.append(small.text(full_constants=True))
    return "\n".join(lines)
