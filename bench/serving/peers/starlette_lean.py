"""Lean baseline: Starlette + orjson + onnxruntime, no validation, metrics or records (~40 lines).

Usage: uvicorn-style module; started by bench/serving/run.py as
``python peers/starlette_lean.py MODEL.onnx PORT``.
"""

import sys

import numpy as np
import onnxruntime as ort
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

options = ort.SessionOptions()
options.intra_op_num_threads = 1
options.inter_op_num_threads = 1
session = ort.InferenceSession(sys.argv[1], options)


async def infer(request: Request) -> Response:
    body = orjson.loads(await request.body())
    inp = body["inputs"][0]
    x = np.asarray(inp["data"], dtype=np.float32).reshape(inp["shape"])
    label, proba = session.run(None, {"input": x})
    out = {
        "model_name": "model",
        "outputs": [
            {"name": "label", "datatype": "INT64", "shape": list(label.shape), "data": label},
            {
                "name": "probabilities",
                "datatype": "FP32",
                "shape": list(proba.shape),
                "data": proba.ravel(),
            },
        ],
    }
    return Response(
        orjson.dumps(out, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json"
    )


async def ready(request: Request) -> Response:
    return Response(b"{}", media_type="application/json")


app = Starlette(
    routes=[
        Route("/v2/models/model/infer", infer, methods=["POST"]),
        Route("/v2/health/ready", ready),
    ]
)

if __name__ == "__main__":
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[2]),
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
    )
