"""HTTP header names the data plane adds or reads, defined once.

Who uses it: the router sets :data:`VARIANT` and :data:`MODEL_VERSION` on every answer it
forwards (and reads :data:`VARIANT` on feedback to find the variant that answered); clients, the
operator's tests and the benchmark read them. Names are lower-case (HTTP header names are
case-insensitive; the serving core lower-cases what it receives).
"""

from __future__ import annotations

from typing import Final

VARIANT: Final = "x-driftline-variant"
"""The variant that answered: ``stable`` or ``canary`` (never ``shadow``)."""

MODEL_VERSION: Final = "x-driftline-model-version"
"""The model version of the variant that answered, as written in the route table."""

ROUTE_VERSION: Final = "x-driftline-route-version"
"""The ``version`` of the route table that routed the request."""

MIRRORED: Final = "x-driftline-mirrored"
"""On an answer: the request was also mirrored to this variant (``shadow``). Send it back with
the feedback (delayed labels) so the router forwards the labels to the shadow's monitor too, and
the shadow's performance can be judged on the same requests."""

SHADOW_FEEDBACK: Final = "x-driftline-shadow-feedback"
"""On a feedback answer: what became of the copy for the shadow's monitor (``forwarded``,
``failed``, ``no_monitor``)."""
