"""OperatorSettings, kopf configuration and the error mapping.

We test these aspects:
- settings come from DRIFTLINE_OPERATOR_* variables, validated, with named fields in errors;
- configure_kopf puts kopf's bookkeeping under our group and sets peering;
- Driftline errors map to kopf permanent/temporary errors, keeping the delay.
"""

from __future__ import annotations

import kopf
import pydantic
import pytest

from driftline.operator import names
from driftline.operator.errors import (
    ApiRejected,
    ApiUnavailable,
    ArtifactInvalid,
    DependencyNotReady,
    SpecInvalid,
)
from driftline.operator.handlers import kopf_error
from driftline.operator.settings import OperatorSettings, configure_kopf


def test_reading_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLINE_OPERATOR_NAMESPACES", "team-a, team-b")
    monkeypatch.setenv("DRIFTLINE_OPERATOR_METRICS_PORT", "9100")
    settings = OperatorSettings()
    assert settings.namespaces == ("team-a", "team-b")
    assert settings.metrics_port == 9100
    assert not settings.clusterwide
    assert OperatorSettings(namespaces=()).clusterwide


def test_rejecting_an_invalid_port_names_the_field() -> None:
    with pytest.raises(pydantic.ValidationError, match="metrics_port"):
        OperatorSettings(metrics_port=70000)


def test_configuring_kopf_uses_our_keys() -> None:
    kopf_settings = kopf.OperatorSettings()
    configure_kopf(kopf_settings, OperatorSettings(priority=5))
    assert kopf_settings.persistence.finalizer == names.FINALIZER
    assert kopf_settings.peering.name == names.PEERING_NAME
    assert kopf_settings.peering.priority == 5
    assert kopf_settings.peering.mandatory
    assert kopf_settings.peering.clusterwide
    assert isinstance(kopf_settings.persistence.progress_storage, kopf.AnnotationsProgressStorage)


def test_a_stopped_resync_timer_is_waited_for_briefly_and_rechecked_every_second() -> None:
    """The timer listens for pokes most of each tick: deletion must not wait kopf's 60 s poll."""
    kopf_settings = kopf.OperatorSettings()
    configure_kopf(kopf_settings, OperatorSettings())
    assert kopf_settings.background.instant_exit_timeout == 0.5
    assert kopf_settings.background.cancellation_polling <= 1.0


@pytest.mark.parametrize(
    "error",
    [
        SpecInvalid("spec.model: required"),
        ArtifactInvalid("sha256 mismatch"),
        ApiRejected("422", status=422),
    ],
)
def test_permanent_failures_stop_retries(error: Exception) -> None:
    mapped = kopf_error(error)  # type: ignore[arg-type]
    assert isinstance(mapped, kopf.PermanentError)
    assert error.reason in str(mapped)  # type: ignore[attr-defined]


def test_temporary_failures_keep_their_delay() -> None:
    mapped = kopf_error(DependencyNotReady("model iris-v2 not Ready", delay=3))
    assert isinstance(mapped, kopf.TemporaryError)
    assert mapped.delay == 3
    assert isinstance(kopf_error(ApiUnavailable("503", status=503)), kopf.TemporaryError)
