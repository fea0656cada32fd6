"""KServe's Python model server (the `kserve` SDK) with a scikit-learn model class.

Equivalent to KServe's sklearnserver (not published on PyPI): load a joblib model, answer V2
requests with predict_proba. Usage: ``python peers/kserve_sklearn.py MODEL.joblib PORT``.
"""

import sys

import joblib
import numpy as np
from kserve import InferRequest, InferResponse, Model, ModelServer
from kserve.utils.utils import get_predict_input, get_predict_response


class SKLearnModel(Model):
    def __init__(self, name: str, path: str) -> None:
        super().__init__(name)
        self.path = path
        self.model = None

    def load(self) -> bool:
        self.model = joblib.load(self.path)
        self.ready = True
        return self.ready

    def predict(self, payload: InferRequest, headers: dict | None = None) -> InferResponse:
        instances = get_predict_input(payload)
        result = self.model.predict_proba(np.asarray(instances, dtype=np.float32))
        return get_predict_response(payload, result, self.name)


if __name__ == "__main__":
    model = SKLearnModel("model", sys.argv[1])
    model.load()
    ModelServer(
        http_port=int(sys.argv[2]), grpc_port=int(sys.argv[3]), workers=1, enable_docs_url=False
    ).start([model])
