#!/usr/bin/env python3
"""Writes the small ONNX test models under tests/fixtures/models/ (opset 17, IR 8).

Each model takes `images` float32 [batch, 3, 32, 32] (dynamic batch) and returns a
fixed table of four candidate boxes in its layout, except that one row's score is
multiplied by the mean of that batch item's input (its "gate"): a white frame keeps the
row, a black frame drops it. So the expected detections are known exactly, batch items
can be told apart, and NMS and class handling are exercised:

  row 0: box (4,4)-(12,12)   class 0, score 0.81          kept
  row 1: box (5,5)-(13,13)   class 0, score 0.72          suppressed by row 0 (IoU 0.62)
  row 2: box (5,5)-(13,13)   class 1, score 0.63          kept (another class)
  row 3: box (20,20)-(28,28) class 2, score 0.9 x gate    kept when the frame is bright

Run: .venv/bin/python scripts/make_test_models.py
"""

import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "models")
C = 3

# cx, cy, w, h, objectness (yolov5 only), class scores
ROWS = [
    (8, 8, 8, 8, 0.9, [0.9, 0.1, 0.1]),
    (9, 9, 8, 8, 0.9, [0.8, 0.1, 0.1]),
    (9, 9, 8, 8, 0.9, [0.1, 0.7, 0.1]),
    (24, 24, 8, 8, 0.9, [0.1, 0.1, 0.9]),
]


def tables(layout):
    """(base, gated) arrays of the output shape without batch; out = base + gate * gated."""
    if layout == "yolov5":
        base = np.array([[cx, cy, w, h, obj, *cls] for cx, cy, w, h, obj, cls in ROWS], np.float32)
        gated = np.zeros_like(base)
        gated[3, 4] = base[3, 4]
        base[3, 4] = 0.0
    elif layout == "yolov8":
        # objectness folded into the class scores, as YOLOv8 has none
        rows = np.array([[cx, cy, w, h, *(obj * np.array(cls))] for cx, cy, w, h, obj, cls in ROWS], np.float32)
        base = rows.T.copy()  # [4 + C, N]
        gated = np.zeros_like(base)
        gated[4 + 2, 3] = base[4 + 2, 3]
        base[4 + 2, 3] = 0.0
    elif layout == "decoded":
        rows = []
        for cx, cy, w, h, obj, cls in ROWS:
            c = int(np.argmax(cls))
            rows.append([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, obj * cls[c], c])
        # end-to-end models pad with zero rows
        rows.append([0, 0, 0, 0, 0, 0])
        base = np.array(rows, np.float32)
        gated = np.zeros_like(base)
        gated[3, 4] = base[3, 4]
        base[3, 4] = 0.0
    return base, gated


def make(layout):
    base, gated = tables(layout)
    images = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, 32, 32])
    out_shape = ["batch", *base.shape]
    output = helper.make_tensor_value_info("output0", TensorProto.FLOAT, out_shape)
    inits = [
        numpy_helper.from_array(base[None], "base"),
        numpy_helper.from_array(gated[None], "gated"),
        numpy_helper.from_array(np.array([-1, 1, 1], np.int64), "gate_shape"),
    ]
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["gate4"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Reshape", ["gate4", "gate_shape"], ["gate"]),
        helper.make_node("Mul", ["gate", "gated"], ["scaled"]),
        helper.make_node("Add", ["base", "scaled"], ["output0"]),
    ]
    graph = helper.make_graph(nodes, f"{layout}-test", [images], [output], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="gridwatch make_test_models.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = os.path.join(OUT, f"{layout}-test.onnx")
    onnx.save(model, path)
    print("wrote", os.path.normpath(path))


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    for layout in ("yolov5", "yolov8", "decoded"):
        make(layout)
