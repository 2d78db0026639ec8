"""FastAPI pieces shared by all services: the app bootstrap, errors, bodies and docs.

- :mod:`lift.http.app`: :func:`service_app` (error handlers, metrics, health,
  self-hosted docs) and :func:`run_until_disconnect`;
- :mod:`lift.http.errors`: the one error model and the status of each kind of failure;
- :mod:`lift.http.bodies`: JSON and multipart bodies, size-capped, read into models;
- :mod:`lift.http.limits`: body size and time caps for every route, header deadline,
  connection cap (wired by :mod:`lift.runner`);
- :mod:`lift.http.docs`: the OpenAPI document (bodies of several media types) and the
  Swagger UI / ReDoc pages served without a CDN.
"""

from lift.http.app import Health, Readiness, RequestMetrics, run_until_disconnect, service_app
from lift.http.bodies import (
    JSON,
    MULTIPART,
    body_kind,
    parse_json,
    read_body,
    read_form_model,
    read_json_body,
    read_upload,
)
from lift.http.docs import ASSETS_URL, register_schema, request_body, schema_examples
from lift.http.errors import ErrorDetail, ErrorResponse, error_body, error_responses

__all__ = [
    "ASSETS_URL",
    "JSON",
    "MULTIPART",
    "ErrorDetail",
    "ErrorResponse",
    "Health",
    "Readiness",
    "RequestMetrics",
    "body_kind",
    "error_body",
    "error_responses",
    "parse_json",
    "read_body",
    "read_form_model",
    "read_json_body",
    "read_upload",
    "register_schema",
    "request_body",
    "run_until_disconnect",
    "schema_examples",
    "service_app",
]
