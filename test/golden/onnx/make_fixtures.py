"""Generates cellstream's ONNX golden fixtures and the refusal inputs.

Run with the fixture venv (the versions these files were made with):
    torch 2.15.0, onnx 1.23.2, onnxruntime 1.32.0, onnxscript 0.7.2, numpy 2.4.6, Python 3.11
    /root/fxenv/bin/python test/golden/onnx/make_fixtures.py

Each golden fixture is a folder test/golden/fixtures/<name>/ with
  fixture.json    name, format, model file, producer, oracle, tolerance, outputSize
  model.onnx      the model as the framework wrote it
  events.ndjson   events of several keys, interleaved irregularly, one with a mid-sequence reset
  expected.ndjson one line per event: the framework's output for that key's sequence (since its
                  last reset) run whole from a zero state, at that event's step.

The oracle is the framework itself: PyTorch's forward for exported modules (onnxruntime is checked
to agree), onnxruntime for hand-built graphs. Nothing here is computed by cellstream.
Refusal inputs (not golden) go to test/fixtures/onnx-bad/.
"""

import json
import os
import random
import shutil
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper, numpy_helper

warnings.filterwarnings("ignore")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
GOLDEN = os.path.join(ROOT, "test", "golden", "fixtures")
BAD = os.path.join(ROOT, "test", "fixtures", "onnx-bad")
TS0 = 1732700000000
TOL = 1e-5
VERSIONS = f"torch {torch.__version__}, onnx {onnx.__version__}, onnxruntime {ort.__version__}"
TORCH_V = torch.__version__.split("+")[0]
HAND = f"onnx {onnx.__version__} helper + onnxruntime {ort.__version__}"


# --- events ---------------------------------------------------------------------------------------


def make_events(seed, n_in, keys=("k1", "k2", "k3", "k4")):
    """Per key a list of segments (each a float32 [T, I] array run from zero state), and the
    interleaved event order. Key k2 is reset mid-sequence."""
    rng = np.random.default_rng(seed)
    pyr = random.Random(seed)
    plan = {}
    for k in keys:
        length = int(rng.integers(5, 31))
        x = rng.normal(0.0, 1.0, size=(length, n_in)).astype(np.float32)
        if k == "k2":
            cut = max(2, length // 2)
            plan[k] = [x[:cut], x[cut:]]
        else:
            plan[k] = [x]
    # (key, segment, step) in arrival order: pick a random key with events left, weighted unevenly.
    cursors = {k: [0, 0] for k in keys}
    weights = {k: pyr.uniform(0.5, 3.0) for k in keys}
    order = []
    while True:
        live = [k for k in keys if cursors[k][0] < len(plan[k])]
        if not live:
            break
        k = pyr.choices(live, weights=[weights[q] for q in live])[0]
        seg, t = cursors[k]
        order.append((k, seg, t))
        t += 1
        if t == len(plan[k][seg]):
            seg, t = seg + 1, 0
        cursors[k] = [seg, t]
    return plan, order


def write_fixture(name, model_bytes, producer, oracle, plan, order, outputs):
    """outputs[key][segment] is a float32 [T, O] array from the oracle."""
    d = os.path.join(GOLDEN, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    with open(os.path.join(d, "model.onnx"), "wb") as f:
        f.write(model_bytes)
    out_size = int(next(iter(outputs.values()))[0].shape[-1])
    meta = {
        "name": name,
        "format": "onnx",
        "model": "model.onnx",
        "producer": producer,
        "oracle": oracle,
        "tolerance": TOL,
        "outputSize": out_size,
    }
    with open(os.path.join(d, "fixture.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    ts = TS0
    rng = random.Random(name)
    with open(os.path.join(d, "events.ndjson"), "w") as ev, open(os.path.join(d, "expected.ndjson"), "w") as ex:
        for k, seg, t in order:
            ts += rng.randint(1, 90_000)
            e = {"key": k, "ts": ts, "features": [float(v) for v in plan[k][seg][t]]}
            if seg > 0 and t == 0:
                e["reset"] = True
            ev.write(json.dumps(e) + "\n")
            ex.write(json.dumps({"key": k, "ts": ts, "output": [float(v) for v in outputs[k][seg][t]]}) + "\n")
    print(f"{name}: {len(order)} events, output {out_size}")


def ort_run(model_bytes, x):
    sess = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return sess.run(None, {name: x})[0]


# --- PyTorch exports ------------------------------------------------------------------------------


class Net(torch.nn.Module):
    def __init__(self, cell, n_in, hidden, layers, n_out, batch_first, act, squeeze=False):
        super().__init__()
        rnn = torch.nn.LSTM if cell == "lstm" else torch.nn.GRU
        self.rnn = rnn(n_in, hidden, num_layers=layers, batch_first=batch_first)
        self.fc = torch.nn.Linear(hidden, n_out)
        self.batch_first = batch_first
        self.act = act
        self.squeeze = squeeze

    def forward(self, x):
        y, _ = self.rnn(x)
        if self.squeeze:
            # [T, 1, H] -> [T, H]: Linear on a matrix exports as Gemm.
            y = y.squeeze(1)
        y = self.fc(y)
        if self.act == "softmax":
            y = torch.softmax(y, dim=-1)
        elif self.act == "sigmoid":
            y = torch.sigmoid(y)
        return y


def torch_export(net, n_in, dynamo):
    net.eval()
    t = 6
    x = torch.randn(1, t, n_in) if net.batch_first else torch.randn(t, 1, n_in)
    path = "/tmp/cellstream_fixture_export.onnx"
    if dynamo:
        time_axis = 1 if net.batch_first else 0
        prog = torch.onnx.export(
            net,
            (x,),
            dynamo=True,
            input_names=["x"],
            output_names=["y"],
            dynamic_shapes={"x": {time_axis: torch.export.Dim("t", min=1, max=100000)}},
            verbose=False,
        )
        prog.save(path)
    else:
        axes = {0: "batch", 1: "t"} if net.batch_first else {0: "t", 1: "batch"}
        if net.squeeze:
            # With a dynamic batch, squeeze(1) exports as If(Equal(dim, 1)); a static batch of one
            # (what a stream of single keys is) exports a plain Squeeze.
            axes = {0: "t"}
        torch.onnx.export(
            net,
            (x,),
            path,
            dynamo=False,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": axes, "y": {0: "t"} if net.squeeze else axes},
        )
    with open(path, "rb") as f:
        data = f.read()
    os.remove(path)
    return data


def torch_fixture(name, seed, cell, n_in, hidden, layers, n_out, batch_first, act, dynamo=False, squeeze=False):
    torch.manual_seed(seed)
    net = Net(cell, n_in, hidden, layers, n_out, batch_first, act, squeeze)
    model = torch_export(net, n_in, dynamo)
    plan, order = make_events(seed, n_in)
    outputs = {}
    worst = 0.0
    for k, segs in plan.items():
        outputs[k] = []
        for seg in segs:
            x = seg[None, :, :] if batch_first else seg[:, None, :]
            with torch.no_grad():
                y = net(torch.from_numpy(x)).numpy()
            y_ort = ort_run(model, x)
            worst = max(worst, float(np.abs(y - y_ort).max()))
            y = y.reshape(len(seg), n_out)
            outputs[k].append(y)
    assert worst <= TOL, f"{name}: onnxruntime disagrees with PyTorch by {worst}"
    producer = f"pytorch {TORCH_V} torch.onnx.export(dynamo={dynamo})"
    if dynamo:
        import onnxscript

        producer += f", onnxscript {onnxscript.__version__}"
    write_fixture(name, model, producer, "pytorch", plan, order, outputs)
    print(f"  onnxruntime vs pytorch max abs diff {worst:.3g}")


# --- hand-built graphs ----------------------------------------------------------------------------


def init(name, arr):
    return numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name)


def hand_graph(
    cell,
    n_in,
    hidden,
    n_out,
    seed,
    attrs,
    peephole=False,
    head="matmul",
    act=None,
    scale=0.5,
    direction="forward",
    pre_op=None,
    initial_h=None,
):
    """X [T, 1, I] -> LSTM/GRU -> Y [T, 1, 1, H] -> Squeeze -> head -> optional activation."""
    rng = np.random.default_rng(seed)
    g = 4 if cell == "LSTM" else 3
    dirs = 2 if direction == "bidirectional" else 1
    inits = [
        init("W", rng.normal(0, scale, (dirs, g * hidden, n_in))),
        init("R", rng.normal(0, scale, (dirs, g * hidden, hidden))),
        init("B", rng.normal(0, 0.3, (dirs, 2 * g * hidden))),
    ]
    nodes = []
    x_name = "x"
    if pre_op == "Mul":
        inits.append(init("two", [2.0]))
        nodes.append(helper.make_node("Mul", ["x", "two"], ["x_scaled"], name="scale_input"))
        x_name = "x_scaled"
    rnn_inputs = [x_name, "W", "R", "B", ""]
    if initial_h is not None:
        inits.append(init("h0", initial_h))
        rnn_inputs.append("h0")
    if peephole:
        while len(rnn_inputs) < 7:
            rnn_inputs.append("")
        inits.append(init("P", rng.normal(0, 0.5, (dirs, 3 * hidden))))
        rnn_inputs.append("P")
    nodes.append(
        helper.make_node(
            cell, rnn_inputs, ["Y"], name=f"{cell.lower()}_0", hidden_size=hidden, direction=direction, **attrs
        )
    )
    inits.append(numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"))
    nodes.append(helper.make_node("Squeeze", ["Y", "axis1"], ["Ys"], name="squeeze_dir"))  # [T, 1, H]
    last = "Ys"
    if head == "gemm":
        inits.append(numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1b"))
        nodes.append(helper.make_node("Squeeze", ["Ys", "axis1b"], ["Y2"], name="squeeze_batch"))  # [T, H]
        inits.append(init("Wo", rng.normal(0, 0.5, (n_out, hidden))))
        inits.append(init("bo", rng.normal(0, 0.3, (n_out,))))
        nodes.append(
            helper.make_node("Gemm", ["Y2", "Wo", "bo"], ["lin"], name="head_gemm", transB=1, alpha=0.7, beta=1.3)
        )
        out_shape = ["T", n_out]
    else:
        inits.append(init("Wo", rng.normal(0, 0.5, (hidden, n_out))))
        inits.append(init("bo", rng.normal(0, 0.3, (n_out,))))
        nodes.append(helper.make_node("MatMul", ["Ys", "Wo"], ["mm"], name="head_matmul"))
        nodes.append(helper.make_node("Add", ["mm", "bo"], ["lin"], name="head_bias"))
        out_shape = ["T", 1, n_out]
    last = "lin"
    if act:
        extra = {"axis": -1} if act == "Softmax" else {}
        nodes.append(helper.make_node(act, [last], ["y"], name="head_act", **extra))
    else:
        nodes.append(helper.make_node("Identity", [last], ["y"], name="head_out"))
    graph = helper.make_graph(
        nodes,
        "cellstream_fixture",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["T", 1, n_in])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="cellstream-fixtures")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def hand_fixture(name, seed, cell, n_in, hidden, n_out, attrs, must_differ_without=None, **kw):
    model = hand_graph(cell, n_in, hidden, n_out, seed, attrs, **kw)
    data = model.SerializeToString()
    plan, order = make_events(seed, n_in)
    outputs = {k: [ort_run(data, seg[:, None, :]).reshape(len(seg), n_out) for seg in segs] for k, segs in plan.items()}
    if must_differ_without is not None:
        # The attribute under test must change the numbers, or the fixture proves nothing.
        plain = {a: v for a, v in attrs.items() if a not in must_differ_without}
        other = hand_graph(cell, n_in, hidden, n_out, seed, plain, **kw).SerializeToString()
        diff = max(
            float(np.abs(ort_run(other, seg[:, None, :]).reshape(len(seg), n_out) - outputs[k][i]).max())
            for k, segs in plan.items()
            for i, seg in enumerate(segs)
        )
        assert diff > 1e-2, f"{name}: {must_differ_without} barely matters ({diff})"
    write_fixture(name, data, HAND, "onnxruntime", plan, order, outputs)
    if must_differ_without is not None:
        print(f"  without {must_differ_without}: outputs move by up to {diff:.3g}")


def bad_models():
    shutil.rmtree(BAD, ignore_errors=True)
    os.makedirs(BAD)

    def save(name, model):
        with open(os.path.join(BAD, name), "wb") as f:
            f.write(model if isinstance(model, bytes) else model.SerializeToString())

    torch.manual_seed(7)

    class Bi(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = torch.nn.LSTM(3, 4, bidirectional=True)
            self.fc = torch.nn.Linear(8, 2)

        def forward(self, x):
            return self.fc(self.rnn(x)[0])

    path = "/tmp/cellstream_bad.onnx"
    torch.onnx.export(Bi().eval(), (torch.randn(5, 1, 3),), path, dynamo=False, input_names=["x"], output_names=["y"])
    with open(path, "rb") as f:
        save("bidirectional_lstm.onnx", f.read())
    os.remove(path)
    save("reverse_gru.onnx", hand_graph("GRU", 3, 4, 2, 11, {}, direction="reverse"))
    save("mul_before_lstm.onnx", hand_graph("LSTM", 3, 4, 2, 12, {}, pre_op="Mul"))
    save("nonzero_initial_state.onnx", hand_graph("LSTM", 3, 4, 2, 13, {}, initial_h=np.full((1, 1, 4), 0.25)))
    print(f"refusal inputs in {os.path.relpath(BAD, ROOT)}: {sorted(os.listdir(BAD))}")


def main():
    print(VERSIONS)
    torch.set_num_threads(1)
    torch_fixture("onnx-torch-lstm1-seqfirst", 101, "lstm", 4, 8, 1, 3, False, None)
    torch_fixture("onnx-torch-lstm2-batchfirst-softmax", 102, "lstm", 5, 12, 2, 4, True, "softmax")
    torch_fixture("onnx-torch-lstm3-sigmoid", 103, "lstm", 3, 6, 3, 2, False, "sigmoid")
    torch_fixture("onnx-torch-gru1-gemm", 104, "gru", 6, 10, 1, 3, False, None, squeeze=True)
    torch_fixture("onnx-torch-gru2-batchfirst-softmax", 105, "gru", 4, 16, 2, 5, True, "softmax")
    torch_fixture("onnx-dynamo-lstm2-batchfirst-softmax", 106, "lstm", 5, 8, 2, 3, True, "softmax", dynamo=True)
    torch_fixture("onnx-dynamo-gru1-sigmoid", 107, "gru", 3, 7, 1, 2, False, "sigmoid", dynamo=True)

    hand_fixture("onnx-lstm-peephole", 201, "LSTM", 4, 6, 3, {}, peephole=True, head="gemm", act="Tanh")
    hand_fixture(
        "onnx-lstm-input-forget", 202, "LSTM", 3, 8, 4, {"input_forget": 1}, ["input_forget"], act="Softmax"
    )
    hand_fixture("onnx-lstm-clip", 203, "LSTM", 5, 6, 2, {"clip": 0.5}, ["clip"], scale=2.0)
    hand_fixture(
        "onnx-lstm-act-hardsigmoid-relu",
        204,
        "LSTM",
        4,
        5,
        3,
        {"activations": ["HardSigmoid", "Tanh", "Relu"], "activation_alpha": [0.25], "activation_beta": [0.45]},
        ["activations", "activation_alpha", "activation_beta"],
    )
    hand_fixture(
        "onnx-lstm-act-affine-thresholded",
        205,
        "LSTM",
        3,
        6,
        2,
        # alphas are consumed by Affine then ThresholdedRelu, betas by Affine only.
        {
            "activations": ["Sigmoid", "Affine", "ThresholdedRelu"],
            "activation_alpha": [0.8, 0.05],
            "activation_beta": [0.1],
        },
        ["activations", "activation_alpha", "activation_beta"],
    )
    hand_fixture(
        "onnx-lstm-act-scaledtanh-leaky-softsign",
        206,
        "LSTM",
        4,
        7,
        3,
        {
            "activations": ["ScaledTanh", "LeakyRelu", "Softsign"],
            "activation_alpha": [0.5, 0.1],
            "activation_beta": [1.5],
        },
        ["activations", "activation_alpha", "activation_beta"],
        act="Sigmoid",
    )
    hand_fixture("onnx-gru-lbr0", 207, "GRU", 4, 8, 3, {"linear_before_reset": 0}, act="Softmax")
    hand_fixture("onnx-gru-lbr1", 208, "GRU", 5, 9, 2, {"linear_before_reset": 1}, head="gemm")
    hand_fixture(
        "onnx-gru-act-hardsigmoid-elu",
        209,
        "GRU",
        3,
        6,
        2,
        {"activations": ["HardSigmoid", "Elu"], "activation_alpha": [0.3, 0.9], "activation_beta": [0.6]},
        ["activations", "activation_alpha", "activation_beta"],
        act="Relu",
    )
    bad_models()


if __name__ == "__main__":
    main()
