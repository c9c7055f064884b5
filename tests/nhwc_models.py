"""ONNX models shaped like TF NHWC CNNs converted to ONNX: every Conv / pooling op wrapped in
Transpose(NHWC->NCHW) ... Transpose(NCHW->NHWC), everything between them NHWC (random, trained-like weights)."""
import numpy as np
import onnx
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

TO_NCHW, TO_NHWC = [0, 3, 1, 2], [0, 2, 3, 1]


class NHWC:
    """A tiny builder: values are names, every op returns its output name."""

    def __init__(self, seed=0, opset=17):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.n, self.opset = [], [], 0, opset

    def _name(self, base):
        self.n += 1
        return f"{base}{self.n}"

    def const(self, a, base="c"):
        name = self._name(base)
        self.inits.append(nh.from_array(np.asarray(a), name))
        return name

    def op(self, op, ins, base=None, n_out=1, **attrs):
        outs = [self._name(base or op.lower()) for _ in range(n_out)]
        self.nodes.append(h.make_node(op, ins, outs, name=self._name(op + "_n"), **attrs))
        return outs[0] if n_out == 1 else outs

    def rand(self, *shape, scale=0.3):
        return (self.rng.standard_normal(shape) * scale).astype(np.float32)

    def conv(self, x, cin, cout, k=3, group=1, stride=1, pads=None):
        """Transpose -> Conv -> Transpose, as a converter wraps a TF Conv2D / DepthwiseConv2d."""
        p = k // 2 if pads is None else pads
        t = self.op("Transpose", [x], perm=TO_NCHW)
        w = self.const(self.rand(cout, cin // group, k, k, scale=0.5 / np.sqrt(k * k * cin / group)), "W")
        c = self.op("Conv", [t, w], group=group, strides=[stride, stride], pads=[p] * 4, kernel_shape=[k, k])
        return self.op("Transpose", [c], perm=TO_NHWC)

    def bias_add(self, x, ch):
        return self.op("Add", [x, self.const(self.rand(ch), "bias")])

    def max_pool(self, x):
        t = self.op("Transpose", [x], perm=TO_NCHW)
        m = self.op("MaxPool", [t], kernel_shape=[2, 2], strides=[2, 2])
        return self.op("Transpose", [m], perm=TO_NHWC)

    def model(self, inputs, outputs):
        g = h.make_graph(self.nodes, "nhwc", [h.make_tensor_value_info(*i) for i in inputs],
                         [h.make_tensor_value_info(*o) for o in outputs], self.inits)
        m = h.make_model(g, opset_imports=[h.make_opsetid("", self.opset)])
        onnx.checker.check_model(m, full_check=True)
        return m


def resnet(head="mean", seed=0, c=8):
    """conv+bias+relu, two residual blocks (the second with a strided projection), a max pool, and a
    head: ReduceMean over H, W (keepdims 0) + Gemm ("mean"), or Reshape + MatMul + Add ("flatten")."""
    b = NHWC(seed)
    x = b.op("Relu", [b.bias_add(b.conv("X", 3, c), c)])
    for proj in (False, True):
        y = b.op("Relu", [b.bias_add(b.conv(x, c, c, stride=2 if proj else 1), c)])
        y = b.bias_add(b.conv(y, c, c), c)
        sc = b.bias_add(b.conv(x, c, c, k=1, stride=2, pads=0), c) if proj else x
        x = b.op("Relu", [b.op("Add", [y, sc])])
    x = b.max_pool(x)
    if head == "mean":
        f = b.op("ReduceMean", [x], axes=[1, 2], keepdims=0)
        b.op("Gemm", [f, b.const(b.rand(c, 5), "fw"), b.const(b.rand(5), "fb")], base="out")
    else:
        f = b.op("Reshape", [x, b.const(np.array([-1, 2 * 2 * c], np.int64), "shape")])
        mm = b.op("MatMul", [f, b.const(b.rand(4 * c, 5), "fw")])
        b.op("Add", [mm, b.const(b.rand(5), "fb")], base="out")
    out = b.nodes[-1].output[0]
    return b.model([("X", TP.FLOAT, ["N", 16, 16, 3])], [(out, TP.FLOAT, ["N", 5])])


def mobilenet(seed=0, c=8):
    """Explicit Pad + conv, ReLU6 (Clip), a depthwise conv (group), a squeeze-excitation block (ReduceMean
    keepdims 1 + two 1x1 convs + HardSigmoid + Mul), swish (x * Sigmoid(x)), a BN-folded scale (Mul by a
    [C] constant), two branches concatenated on axis 3, and a ReduceMean head + MatMul + Softmax."""
    b = NHWC(seed)
    x = b.op("Pad", ["X", b.const(np.array([0, 1, 1, 0, 0, 1, 1, 0], np.int64), "pads")])
    x = b.conv(x, 3, c, pads=0)
    x = b.op("Clip", [b.bias_add(x, c), b.const(np.float32(0), "lo"), b.const(np.float32(6), "hi")])
    d = b.bias_add(b.conv(x, c, c, group=c), c)
    d = b.op("Mul", [d, b.op("Sigmoid", [d])])
    s = b.op("ReduceMean", [d], axes=[1, 2], keepdims=1)
    s = b.op("Relu", [b.bias_add(b.conv(s, c, 4, k=1, pads=0), 4)])
    s = b.op("HardSigmoid", [b.bias_add(b.conv(s, 4, c, k=1, pads=0), c)])
    x = b.op("Mul", [d, s])
    x = b.op("Mul", [x, b.const(b.rand(c) + 1, "scale")])
    left = b.op("Relu", [b.bias_add(b.conv(x, c, c, k=1, pads=0), c)])
    right = b.op("Relu", [b.bias_add(b.conv(x, c, c), c)])
    x = b.op("Concat", [left, right], axis=-1)
    x = b.op("Add", [x, b.const(np.float32(0.5), "half")])
    f = b.op("ReduceMean", [x], axes=[1, 2], keepdims=0)
    logits = b.op("MatMul", [f, b.const(b.rand(2 * c, 5), "fw")])
    b.op("Softmax", [logits], base="probs", axis=-1)
    out = b.nodes[-1].output[0]
    return b.model([("X", TP.FLOAT, ["N", 8, 8, 3])], [(out, TP.FLOAT, ["N", 5])])
