"""The data plane's error vocabulary, mapped once to an HTTP status and ``{"error": ...}``.

Who uses it: the model server's protocol, runtime and app; the router may reuse it. Each error
carries its HTTP status, so the one mapper (``driftline.serving.server``) needs no table::

    ServingError (500)                       anything the server cannot attribute to the client
    ├── InvalidInput (400)                   a request that breaks the protocol or the signature
    ├── ModelNotFound (404)                  unknown model name or version
    ├── MethodNotAllowed (405)               known path, wrong verb
    ├── PayloadTooLarge (413)                body over the configured limit
    ├── ModelNotReady (503)                  model still loading, or failed to load/verify
    └── InferenceFailed (500)                the runtime failed on an input that passed validation

Rule (DESIGN.md): bad input is always a 4xx whose message names the field and the problem.
"""

from __future__ import annotations

from http import HTTPStatus


class ServingError(Exception):
    """Base of the tree; ``status`` is the HTTP status the error maps to."""

    status: HTTPStatus = HTTPStatus.INTERNAL_SERVER_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(ServingError):
    """The request breaks the protocol or the model signature (400)."""

    status = HTTPStatus.BAD_REQUEST


class ModelNotFound(ServingError):
    """No model with that name or version is served here (404)."""

    status = HTTPStatus.NOT_FOUND


class MethodNotAllowed(ServingError):
    """The path exists but not for this HTTP method (405)."""

    status = HTTPStatus.METHOD_NOT_ALLOWED


class PayloadTooLarge(ServingError):
    """The request body is over the configured limit (413)."""

    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class ModelNotReady(ServingError):
    """The model is loading, or failed to load or verify (503)."""

    status = HTTPStatus.SERVICE_UNAVAILABLE


class InferenceFailed(ServingError):
    """The runtime failed on an input that passed validation: a server-side fault (500)."""

    status = HTTPStatus.INTERNAL_SERVER_ERROR
