"""The envelope every Driftline object shares: apiVersion, kind, metadata, spec, status.

``Resource[SpecT, StatusT]`` is subclassed once per kind (``Model``, ``Deployment``, …) with
``kind`` fixed to a literal, so ``Deployment.from_manifest(raw)`` refuses a Model manifest with a
message that names ``kind``. Pure: pydantic only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Generic, Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from driftline.operator.api.meta import ApiModel, ObjectMeta, StatusBase
from driftline.operator.names import KindNames

__all__ = ["Resource"]

SpecT = TypeVar("SpecT", bound=ApiModel)
StatusT = TypeVar("StatusT", bound=StatusBase)


class Resource(BaseModel, Generic[SpecT, StatusT]):
    """A whole object of one Driftline kind: the typed form of a manifest.

    Subclasses set ``kind_names`` (the kind's ``KindNames``) and narrow ``kind`` to a literal.
    """

    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="forbid")

    kind_names: ClassVar[KindNames]
    """The kind's plural, singular and short names (``driftline.operator.names``)."""

    api_version: Literal["driftline.dev/v1alpha1"] = Field(
        default="driftline.dev/v1alpha1", alias="apiVersion"
    )
    """``driftline.dev/v1alpha1``."""

    kind: str
    """The kind (a literal per subclass)."""

    metadata: ObjectMeta
    """Name, namespace, generation, labels and annotations."""

    spec: SpecT
    """What the user asks for."""

    status: StatusT | None = None
    """What the operator observed and did; written only by the operator."""

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> Self:
        """Parse a raw manifest (a dict from YAML or the API server) into a frozen object.

        Args:
            manifest: the manifest; ``status`` may be absent.

        Returns:
            The parsed object.

        Raises:
            pydantic.ValidationError: naming every field that is missing, unknown or invalid.
        """
        return cls.model_validate(dict(manifest))

    def to_manifest(self) -> dict[str, Any]:
        """The manifest as plain JSON-ready data (camelCase keys, unset fields omitted)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)
