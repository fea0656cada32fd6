"""Train the serving benchmark's model and write it for every server under test.

GradientBoostingClassifier, 100 trees, depth 8, on 20 features x 20,000 rows (make_classification,
seed 0). Written as ``model.onnx`` (skl2onnx, plain tensor outputs ``label`` and ``probabilities``)
for Driftline and the ONNX Runtime baselines, and as ``model.joblib`` for the scikit-learn peers
(MLServer, KServe), plus ``request.json``: one single-row OIP v2 request every server answers.

Usage: python bench/serving/model.py OUT_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import joblib
import numpy as np
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import make_classification
from sklearn.ensemble import GradientBoostingClassifier

FEATURES = 20
ROWS = 20_000
SEED = 0


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    x, y = make_classification(
        n_samples=ROWS, n_features=FEATURES, n_informative=12, random_state=SEED
    )
    x = x.astype(np.float32)
    model = GradientBoostingClassifier(n_estimators=100, max_depth=8, random_state=SEED)
    model.fit(x, y)
    joblib.dump(model, out / "model.joblib")
    onx = to_onnx(
        model,
        initial_types=[("input", FloatTensorType([None, FEATURES]))],
        options={id(model): {"zipmap": False}},
        target_opset=17,
    )
    (out / "model.onnx").write_bytes(onx.SerializeToString())
    row = x[:1]
    request = {
        "inputs": [
            {
                "name": "input",
                "shape": [1, FEATURES],
                "datatype": "FP32",
                "data": row.ravel().tolist(),
            }
        ]
    }
    (out / "request.json").write_text(json.dumps(request))
    np.save(out / "rows.npy", x[:1024])
    print(f"wrote {out}/model.onnx, model.joblib, request.json (accuracy {model.score(x, y):.3f})")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
