"""Passive health of upstream endpoints: eject an endpoint that fails to connect, for a while.

Who uses it: the upstream pools (:mod:`driftline.serving.router.upstream`) keep one
:class:`EndpointHealth` per endpoint and replace it through these pure functions on every connect
success or failure; the proxy asks :func:`available` before choosing an endpoint.

Why passive and why connect failures only: the router sees every request, so a dead endpoint shows
up at once without probes; and only a failed *connect* proves the endpoint is unreachable (an
upstream 5xx or a slow answer is the model's behaviour, which the rollout analysis must see, not
hide by ejecting). Each ejection in a row doubles the time out, up to a ceiling, so a flapping
endpoint is tried less and less often; one success resets it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    """How endpoints are ejected.

    Attributes:
        failures_to_eject: consecutive connect failures that eject an endpoint.
        base_ejection_s: how long the first ejection lasts (seconds).
        max_ejection_s: ceiling of the doubling ejection time (seconds).
    """

    failures_to_eject: int = 1
    base_ejection_s: float = 5.0
    max_ejection_s: float = 60.0

    def __post_init__(self) -> None:
        if self.failures_to_eject < 1:
            raise ValueError("failures_to_eject must be at least 1")
        if not 0 < self.base_ejection_s <= self.max_ejection_s:
            raise ValueError("need 0 < base_ejection_s <= max_ejection_s")


@dataclass(frozen=True, slots=True)
class EndpointHealth:
    """What the router knows about one endpoint's reachability.

    Attributes:
        consecutive_failures: connect failures since the last success or ejection.
        ejections: ejections in a row without a success in between (drives the back-off).
        ejected_until: monotonic time before which the endpoint is not used (0: never ejected).
    """

    consecutive_failures: int = 0
    ejections: int = 0
    ejected_until: float = 0.0


HEALTHY = EndpointHealth()


def available(health: EndpointHealth, now: float) -> bool:
    """Whether the endpoint may be used at monotonic time ``now``."""
    return now >= health.ejected_until


def on_success(health: EndpointHealth) -> EndpointHealth:
    """A connect succeeded: forget the failures and the back-off."""
    return HEALTHY if health != HEALTHY else health


def on_connect_failure(
    health: EndpointHealth, now: float, policy: HealthPolicy
) -> tuple[EndpointHealth, bool]:
    """A connect failed at ``now``.

    Returns:
        The new health, and whether this failure ejected the endpoint (the caller counts it).
    """
    failures = health.consecutive_failures + 1
    if failures < policy.failures_to_eject:
        return replace(health, consecutive_failures=failures), False
    duration = min(policy.base_ejection_s * (2.0**health.ejections), policy.max_ejection_s)
    return EndpointHealth(0, health.ejections + 1, now + duration), True
