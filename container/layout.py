"""File names every stage agrees on: the data split, the artifact and the evaluation report.

Kept free of imports so that light callers (the serving supervisor, the pipeline's naming, the
deploy code) can use the one definition without loading scikit-learn or matplotlib.
"""

from typing import Final

TRAIN_FILE: Final = "train.csv"
TEST_FILE: Final = "test.csv"
SCHEMA_FILE: Final = "schema.json"

MODEL_FILE: Final = "model.joblib"
SIGNATURE_FILE: Final = "signature.json"
ARTIFACT_FILE: Final = "model.tar.gz"

REPORT_FILE: Final = "evaluation.json"
# Feature importance in Clarify's analysis.json layout, for the registry's Explainability slot.
EXPLAINABILITY_FILE: Final = "explainability.json"
# Where the pipeline's condition step reads the registration metric in the report (JsonGet).
REGISTER_METRIC_PATH: Final = "register_metric.value"
# Where it reads the evaluated model's checksum (the signature's model_sha256, verified on load).
MODEL_SHA256_PATH: Final = "model_sha256"
