"""The route table and the split decision: pure values and pure functions, no I/O.

Who uses it: the router's proxy (:mod:`driftline.serving.router.proxy`) reads the live
:class:`RouteTable` on every request and calls :func:`pick`, :func:`mirrored` and :func:`route`;
the file watcher and the admin endpoint call :func:`parse_table` on every change. The operator
writes the same format (README, "Route table").

Format (YAML or JSON; JSON is a subset of YAML)::

    version: 7                  # integer >= 0 chosen by the writer; exported as a metric
    sticky_header: x-user-id    # optional: requests carrying it keep their variant
    stable:                     # required: the variant that takes whatever is left
      model_version: "1"
      weight: 90                # 0..100; stable + canary weights must sum to 100
      endpoints: ["http://10.0.0.1:8080", "http://10.0.0.2:8080"]
      monitor: http://10.0.0.1:9090   # optional: this variant's monitor; feedback goes there
      model_name: churn         # optional: rewrite /v2/models/{any}/... to this model name
    canary:                     # optional; weight 0 is a dark launch (deployed, no traffic)
      model_version: "2"
      weight: 10
      endpoints: ["http://10.0.0.3:8080"]
    shadow:                     # optional; never answers a client
      model_version: "3"
      mirror_percent: 100       # 0..100: share of inference requests copied to it
      endpoints: ["http://10.0.0.4:8080"]

Why the split is a function of a draw ``u`` in [0, 1): the caller chooses the draw (a random
number, or :func:`sticky_draw` of the sticky header), so the decision is testable without
randomness. The canary owns the low end of the unit interval, ``[0, canary.weight/100)``: a user
whose draw falls there stays on the canary while the weights do not change, and as the canary
weight grows the interval only widens, so users move stable -> canary monotonically, never back.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Mapping
from typing import Annotated, Final, Literal, Self

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

LiveName = Literal["stable", "canary"]
"""Variants that answer clients."""

VariantName = Literal["stable", "canary", "shadow"]
"""Every variant a table can name."""

VARIANTS: Final[tuple[VariantName, ...]] = ("stable", "canary", "shadow")

_HEADER_TOKEN: Final = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_MAX_ENDPOINTS: Final = 256
"""Upper bound on endpoints per variant: a table naming more is almost certainly a mistake."""


class RouteTableError(ValueError):
    """A route table that cannot be used; the message names every bad field and why."""


def _parse_endpoint(value: object) -> object:
    """Accept ``"http://host:port"`` or ``"host:port"`` and turn it into an :class:`Endpoint`."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if "://" in text:
        scheme, _, rest = text.partition("://")
        if scheme.lower() != "http":
            raise ValueError(f"only http:// endpoints are supported, got {value!r}")
        text = rest
    text = text.rstrip("/")
    if "/" in text or "?" in text or "#" in text:
        raise ValueError(f"an endpoint is host:port without a path, got {value!r}")
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"an endpoint needs host:port, got {value!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError as exc:
            raise ValueError(f"bad IPv6 address in {value!r}") from exc
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"the port must be an integer in 1..65535, got {value!r}")
    return {"host": host, "port": int(port_text)}


class Endpoint(BaseModel):
    """One upstream server: a host and a TCP port (plain HTTP/1.1)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field(min_length=1)
    """Host name or IP address."""
    port: int = Field(ge=1, le=65535)
    """TCP port."""

    @property
    def url(self) -> str:
        """``http://host:port`` (IPv6 hosts in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def __str__(self) -> str:
        return self.url


EndpointField = Annotated[Endpoint, BeforeValidator(_parse_endpoint)]


class _Variant(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    model_version: str = Field(min_length=1, max_length=128)
    """The model version this variant serves; sent back in the model-version response header."""
    endpoints: tuple[EndpointField, ...] = Field(min_length=1, max_length=_MAX_ENDPOINTS)
    """Upstream model servers of this variant; requests rotate over the healthy ones."""
    monitor: EndpointField | None = None
    """This variant's monitor (``http://host:port``); feedback (delayed labels) goes there."""
    model_name: str | None = Field(default=None, min_length=1, max_length=256)
    """When set, ``/v2/models/{any}/...`` is rewritten to this model name for this variant."""

    @field_validator("endpoints")
    @classmethod
    def _unique_endpoints(cls, value: tuple[Endpoint, ...]) -> tuple[Endpoint, ...]:
        seen: set[Endpoint] = set()
        for endpoint in value:
            if endpoint in seen:
                raise ValueError(f"endpoint {endpoint} is listed twice")
            seen.add(endpoint)
        return value

    @field_validator("model_name")
    @classmethod
    def _model_name_is_a_path_segment(cls, value: str | None) -> str | None:
        if value is not None and ("/" in value or value.strip() != value):
            raise ValueError(f"model_name must be one path segment, got {value!r}")
        return value


class LiveVariant(_Variant):
    """A variant that answers clients: stable or canary."""

    weight: int = Field(ge=0, le=100)
    """Percent of live traffic, 0..100; stable + canary sum to 100; 0 is a dark launch."""


class ShadowVariant(_Variant):
    """A variant that only receives mirrored copies; its answers are compared, never returned."""

    mirror_percent: int = Field(ge=0, le=100)
    """Percent of inference requests copied to the shadow, 0..100."""


class RouteTable(BaseModel):
    """The whole routing state of one router; immutable, replaced as a whole on every change."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = Field(ge=0)
    """The writer's version of this table (the operator increments it); exported as a metric."""
    sticky_header: str | None = None
    """Request header whose value keeps a user on one variant (lower-cased); none: random."""
    stable: LiveVariant
    """The variant that takes the traffic no other variant takes, and every fallback."""
    canary: LiveVariant | None = None
    """The candidate under test, if any."""
    shadow: ShadowVariant | None = None
    """The variant that receives mirrored copies, if any."""

    @field_validator("sticky_header")
    @classmethod
    def _header_name(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _HEADER_TOKEN.match(value):
            raise ValueError(f"not a valid HTTP header name: {value!r}")
        return value.lower()

    @model_validator(mode="after")
    def _weights_sum_to_100(self) -> Self:
        canary = self.canary.weight if self.canary is not None else 0
        total = self.stable.weight + canary
        if total != 100:
            parts = f"stable.weight={self.stable.weight}"
            if self.canary is not None:
                parts += f" + canary.weight={canary}"
            raise ValueError(f"weights of the live variants must sum to 100, got {parts} = {total}")
        return self

    def variant(self, name: VariantName) -> LiveVariant | ShadowVariant | None:
        """The variant called ``name``, or None when the table has none by that name."""
        if name == "stable":
            return self.stable
        if name == "canary":
            return self.canary
        return self.shadow

    def weight(self, name: VariantName) -> int:
        """The live weight of ``name`` in percent (0 for the shadow and for absent variants)."""
        variant = self.variant(name)
        return variant.weight if isinstance(variant, LiveVariant) else 0

    def digest(self) -> str:
        """A short content hash (sha256 of the canonical JSON), to tell tables apart in stats."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(canonical).hexdigest()[:16]


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        loc = ".".join(str(part) for part in item["loc"]) or "(table)"
        message = item["msg"].removeprefix("Value error, ")
        lines.append(f"{loc}: {message}")
    return "; ".join(lines)


def table_from_mapping(data: object) -> RouteTable:
    """Validate an already-decoded table (a mapping); the whole table or nothing.

    Raises:
        RouteTableError: naming every invalid field (``canary.weight: ...``).
    """
    if not isinstance(data, Mapping):
        raise RouteTableError(
            f"a route table must be a mapping at the top level, got {type(data).__name__}"
        )
    try:
        return RouteTable.model_validate(data)
    except ValidationError as exc:
        raise RouteTableError(f"invalid route table: {_describe(exc)}") from None


def parse_table(text: str | bytes) -> RouteTable:
    """Parse and validate a route table written as YAML or JSON.

    Raises:
        RouteTableError: when the text is not YAML/JSON or the table is invalid; the message
            names the field and the problem.
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RouteTableError(f"route table is not valid YAML or JSON: {exc}") from None
    return table_from_mapping(data)


def sticky_draw(key: str) -> float:
    """Map a sticky key (e.g. a user id) to a draw in [0, 1), uniformly and deterministically.

    The same key always gives the same draw (blake2b, no per-process salt), so a user keeps the
    variant :func:`pick` gives them as long as the weights do not change, across restarts and
    across router replicas.
    """
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 18446744073709551616.0  # 2**64


def pick(table: RouteTable, u: float) -> LiveName:
    """The live variant for draw ``u`` in [0, 1).

    The canary owns ``[0, canary.weight / 100)``, stable the rest, so a given draw moves from
    stable to canary as the canary weight grows and never back.

    Raises:
        ValueError: when ``u`` is outside [0, 1).
    """
    if not 0.0 <= u < 1.0:
        raise ValueError(f"the draw must be in [0, 1), got {u}")
    canary = table.canary
    if canary is not None and u * 100.0 < canary.weight:
        return "canary"
    return "stable"


def mirrored(table: RouteTable, u: float) -> bool:
    """Whether a request with draw ``u`` in [0, 1) is copied to the shadow."""
    shadow = table.shadow
    return shadow is not None and u * 100.0 < shadow.mirror_percent


def route(intended: LiveName, available: frozenset[VariantName] | set[VariantName]) -> LiveName:
    """Where a request goes when its variant may have no healthy endpoint.

    Args:
        intended: what :func:`pick` chose.
        available: the variants that have at least one endpoint not ejected.

    Returns:
        ``intended`` when it is available, else ``"stable"``: a variant with no healthy endpoint
        gives its share to stable (the caller counts the event). When stable itself has none, the
        answer is still ``"stable"`` and the proxy answers 503.
    """
    if intended in available:
        return intended
    return "stable"
