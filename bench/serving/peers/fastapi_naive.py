"""Naive baseline: FastAPI with pydantic request/response models + onnxruntime.

What a user writes first: typed models, default JSON encoding, default uvicorn.
Usage: ``python peers/fastapi_naive.py MODEL.onnx PORT``.
"""

import sys
from typing import Any

import numpy as np
import onnxruntime as ort
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

session = ort.InferenceSession(sys.argv[1])
app = FastAPI()


class Tensor(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[Any]


class InferRequest(BaseModel):
    id: str | None = None
    inputs: list[Tensor]


class InferResponse(BaseModel):
    model_name: str
    id: str | None = None
    outputs: list[Tensor]


@app.post("/v2/models/model/infer")
def infer(request: InferRequest) -> InferResponse:
    inp = request.inputs[0]
    x = np.asarray(inp.data, dtype=np.float32).reshape(inp.shape)
    label, proba = session.run(None, {"input": x})
    return InferResponse(
        model_name="model",
        id=request.id,
        outputs=[
            Tensor(name="label", shape=list(label.shape), datatype="INT64", data=label.tolist()),
            Tensor(
                name="probabilities",
                shape=list(proba.shape),
                datatype="FP32",
                data=proba.ravel().tolist(),
            ),
        ],
    )


@app.get("/v2/health/ready")
def ready() -> dict[str, bool]:
    return {"ready": True}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", access_log=False)
