"""Values, schemas and errors shared by every other package; imports nothing else of ours."""

from distillwatch.core.errors import DistillwatchError, RecordError
from distillwatch.core.schema import (
    ACCOUNT_SCHEMA,
    CALL_SCHEMA,
    ENDPOINTS,
    LABEL_SCHEMA,
    LABELS,
    MODEL_SCHEMA,
    SCHEMA_VERSION,
    SIGNUP_CHANNELS,
    json_schema,
)

__all__ = [
    "ACCOUNT_SCHEMA",
    "CALL_SCHEMA",
    "ENDPOINTS",
    "LABELS",
    "LABEL_SCHEMA",
    "MODEL_SCHEMA",
    "SCHEMA_VERSION",
    "SIGNUP_CHANNELS",
    "DistillwatchError",
    "RecordError",
    "json_schema",
]
