"""Triton Python-backend model: the critic's exported vision graph on onnxruntime.

The graph file is ``vision.onnx`` beside this file, or the path in the
``LIFT_VISION_GRAPH`` environment variable of the server (so the committed
repository loads unedited with a graph exported anywhere). The model's inputs
come from the graph (auto-completed config): Qwen2-VL's ``pixels``/``cos``/``sin``
with videos as the batch axis, or VILA's ``pixels`` with frames as the batch axis.
Requests the dynamic batcher hands over together are grouped by shape, run as one
batch each, and split back per request.
"""

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

OUTPUT = "embeds"


def _graph_path(here):
    path = os.environ.get("LIFT_VISION_GRAPH") or os.path.join(here, "vision.onnx")
    if os.path.isdir(path):
        path = os.path.join(path, "vision.onnx")
    if not os.path.isfile(path):
        raise pb_utils.TritonModelException(
            f"no vision graph at {path}: run `lift critic export --model CKPT --out DIR` and "
            "set LIFT_VISION_GRAPH=DIR for tritonserver (or copy vision.onnx here)"
        )
    return path


def _dims(shape):
    """Triton dims of an ONNX input/output shape without its batch axis (-1: dynamic)."""
    return [d if isinstance(d, int) and d > 0 else -1 for d in shape[1:]]


class TritonPythonModel:
    @staticmethod
    def auto_complete_config(auto_complete_model_config):
        """The inputs and output of the graph this server serves (config.pbtxt names none)."""
        here = os.path.dirname(os.path.abspath(__file__))
        session = ort.InferenceSession(_graph_path(here), providers=["CPUExecutionProvider"])
        declared = {i["name"] for i in auto_complete_model_config.as_dict().get("input", [])}
        for i in session.get_inputs():
            if i.name not in declared:
                auto_complete_model_config.add_input(
                    {"name": i.name, "data_type": "TYPE_FP32", "dims": _dims(i.shape)}
                )
        declared = {o["name"] for o in auto_complete_model_config.as_dict().get("output", [])}
        for o in session.get_outputs():
            if o.name == OUTPUT and o.name not in declared:
                auto_complete_model_config.add_output(
                    {"name": o.name, "data_type": "TYPE_FP32", "dims": _dims(o.shape)}
                )
        return auto_complete_model_config

    def initialize(self, args):
        config = json.loads(args["model_config"])
        here = os.path.join(args["model_repository"], args["model_version"])
        path = _graph_path(here)
        self.inputs = tuple(i["name"] for i in config["input"])
        threads = int(
            config.get("parameters", {}).get("intra_op_threads", {}).get("string_value", "0")
        )
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    def execute(self, requests):
        arrays = [
            {n: pb_utils.get_input_tensor_by_name(r, n).as_numpy() for n in self.inputs}
            for r in requests
        ]
        groups = {}
        for i, a in enumerate(arrays):
            groups.setdefault(tuple(a["pixels"].shape[1:]), []).append(i)
        results = [None] * len(requests)
        for members in groups.values():
            feed = {n: np.concatenate([arrays[i][n] for i in members]) for n in self.inputs}
            try:
                out = self.session.run([OUTPUT], feed)[0]
            except Exception as exc:  # a malformed request fails alone, the model stays up
                for i in members:
                    results[i] = pb_utils.InferenceResponse(
                        error=pb_utils.TritonError(f"vision graph failed: {exc}")
                    )
                continue
            start = 0
            for i in members:
                n = arrays[i]["pixels"].shape[0]
                results[i] = pb_utils.InferenceResponse(
                    output_tensors=[pb_utils.Tensor(OUTPUT, out[start : start + n])]
                )
                start += n
        return results

    def finalize(self):
        self.session = None
