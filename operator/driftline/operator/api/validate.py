"""Validate a manifest the way the API server would: structural schema, then CEL rules.

Local mode (``driftline up``) has no API server, yet a bad manifest must be rejected there with the
message a cluster would give; the tests use the same code to prove that every example is valid and
that every CEL rule does what its message says. The steps follow the API server's order:

1. ``apiVersion``/``kind`` pick the generated CRD (``crdgen``); ``metadata.name`` is checked;
2. unknown fields are reported (kubectl's default ``--validate=strict``: ``unknown field
   "spec.foo"``), ``null`` values of non-nullable fields are pruned, scalar defaults applied;
3. the OpenAPI schema is checked (``jsonschema``, draft 4 semantics as OpenAPI v3 uses them), and
   each error is worded as the API server words it (``spec.replicas: Invalid value: -1:
   spec.replicas in body should be greater than or equal to 0``);
4. every ``x-kubernetes-validations`` rule is evaluated with a real CEL implementation
   (``cel-python``) on the object's values typed as the API server types them (``number`` fields
   are doubles, ``integer`` fields ints). A rule that evaluates to false is always reported; an
   evaluation error is reported only where the schema passed (elsewhere it is noise from wrong
   types). Transition rules (``oldSelf``) run only when an old object is given.

Pure: no I/O. The compiled CEL programs are cached per rule text.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import celpy
import jsonschema
from celpy import celtypes
from celpy.evaluation import CELEvalError

from driftline.operator import names
from driftline.operator.api import KINDS, crdgen

__all__ = ["Problem", "ProblemType", "format_problems", "validate_manifest"]

ProblemType = Literal[
    "Invalid value",
    "Required value",
    "Unsupported value",
    "Too many",
    "Too long",
    "Unknown field",
]
"""The ``field.ErrorType`` wordings of the Kubernetes API machinery that Driftline produces."""

_NAME_PATTERN: Final = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_NAME_HELP: Final = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
    "or '.', and must start and end with an alphanumeric character"
)


@dataclass(frozen=True)
class Problem:
    """One reason a manifest is invalid, shaped like the API server's ``field.Error``.

    Attributes:
        field: path of the offending field, e.g. ``spec.rollout.steps[1].weight``.
        type: the error type (``Invalid value``, ``Required value``…).
        value: the offending value (a type name such as ``"array"`` for CEL rules on objects).
        detail: what is wrong, in the API server's words.
        rule: the CEL rule that failed, or None for schema and envelope problems.
    """

    field: str
    type: ProblemType
    value: object = None
    detail: str = ""
    rule: str | None = None

    def __str__(self) -> str:
        if self.type == "Unknown field":
            return f'unknown field "{self.field}"'
        if self.type == "Required value":
            return f"{self.field}: Required value" + (f": {self.detail}" if self.detail else "")
        if self.type == "Too long":
            return f"{self.field}: Too long: {self.detail}"
        head = f"{self.field}: {self.type}: {_show(self.value)}"
        return f"{head}: {self.detail}" if self.detail else head


def format_problems(kind: str, name: str, problems: list[Problem]) -> str:
    """The API server's one-line rejection, e.g. ``Deployment.driftline.dev "web" is invalid: …``.

    Args:
        kind: the manifest's kind.
        name: the manifest's name.
        problems: what ``validate_manifest`` returned (non-empty).

    Returns:
        The message ``kubectl apply`` would print after ``The ... is invalid:``.
    """
    body = "; ".join(str(p) for p in problems)
    if len(problems) > 1:
        body = f"[{body}]"
    return f'{kind}.{names.GROUP} "{name}" is invalid: {body}'


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, Mapping):
        return '"object"'
    if isinstance(value, list):
        return '"array"'
    return '"null"'


def _path(parts: Iterator[str | int] | list[str | int]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


@functools.cache
def _schemas() -> dict[str, dict[str, Any]]:
    """The openAPIV3Schema of every kind, keyed by kind (generated once per process)."""
    out: dict[str, dict[str, Any]] = {}
    for crd in crdgen.crds():
        root = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        out[crd["spec"]["names"]["kind"]] = root
    return out


# ------------------------------------------------------------------- prune, default, unknown fields


def _prepare(
    value: Any, schema: Mapping[str, Any], path: list[str | int], unknown: list[Problem]
) -> Any:
    """Copy ``value`` with nulls pruned and scalar defaults applied; collect unknown fields."""
    if isinstance(value, dict) and "properties" in schema:
        props: Mapping[str, Any] = schema["properties"]
        out: dict[str, Any] = {}
        for key, child in value.items():
            if key not in props:
                if not (path == [] and key in ("metadata",)):
                    unknown.append(Problem(_path([*path, key]), "Unknown field"))
                continue
            if child is None and not props[key].get("nullable"):
                continue
            out[key] = _prepare(child, props[key], [*path, key], unknown)
        for key, child_schema in props.items():
            if key not in out and "default" in child_schema:
                out[key] = copy.deepcopy(child_schema["default"])
        return out
    if isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        return {
            k: _prepare(v, schema["additionalProperties"], [*path, k], unknown)
            for k, v in value.items()
        }
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_prepare(v, schema["items"], [*path, i], unknown) for i, v in enumerate(value)]
    return value


# --------------------------------------------------------------------------------- schema errors


def _nullable_as_json_schema(node: Any) -> Any:
    """OpenAPI's ``nullable: true`` spelled as JSON schema: ``type: [X, "null"]``."""
    if isinstance(node, list):
        return [_nullable_as_json_schema(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _nullable_as_json_schema(v) for k, v in node.items()}
    if out.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


@functools.cache
def _validator(kind: str) -> Any:
    """A draft-4 validator over the kind's schema (OpenAPI v3 shares draft 4's keywords)."""
    return jsonschema.Draft4Validator(_nullable_as_json_schema(_schemas()[kind]))


def _schema_problem(error: jsonschema.ValidationError) -> Problem:
    field = _path(list(error.absolute_path))
    value = error.instance
    validator = error.validator
    arg = error.validator_value
    where = f"{field} in body"
    if validator == "required":
        missing = re.match(r"'([^']+)' is a required property", error.message)
        name = missing.group(1) if missing else "?"
        return Problem(_path([*error.absolute_path, name]), "Required value")
    if validator == "enum":
        supported = ", ".join(json.dumps(v) for v in arg)
        return Problem(field, "Unsupported value", value, f"supported values: {supported}")
    if validator in ("type", "anyOf"):
        if validator == "anyOf":
            expected = "integer or string"
        else:
            expected = next(t for t in ([arg] if isinstance(arg, str) else arg) if t != "null")
        got = _json_type(value)
        return Problem(
            field, "Invalid value", got, f"{where} must be of type {expected}: {_show(got)}"
        )
    if validator == "minimum":
        exclusive = error.schema.get("exclusiveMinimum") is True
        rel = "greater than" if exclusive else "greater than or equal to"
        return Problem(field, "Invalid value", value, f"{where} should be {rel} {_num(arg)}")
    if validator == "maximum":
        exclusive = error.schema.get("exclusiveMaximum") is True
        rel = "less than" if exclusive else "less than or equal to"
        return Problem(field, "Invalid value", value, f"{where} should be {rel} {_num(arg)}")
    if validator == "pattern":
        return Problem(field, "Invalid value", value, f"{where} should match '{arg}'")
    if validator == "minLength":
        return Problem(
            field, "Invalid value", value, f"{where} should be at least {arg} chars long"
        )
    if validator == "maxLength":
        return Problem(field, "Too long", value, f"may not be more than {arg} bytes")
    if validator == "maxItems":
        return Problem(field, "Too many", len(value), f"must have at most {arg} items")
    if validator == "minItems":
        return Problem(
            field, "Invalid value", len(value), f"{where} should have at least {arg} items"
        )
    return Problem(field, "Invalid value", value, error.message)


def _num(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return "null"


# ------------------------------------------------------------------------------------------ CEL


@functools.cache
def _program(expression: str) -> Any:
    env = celpy.Environment()
    return env.program(env.compile(expression))


def _to_cel(value: Any, schema: Mapping[str, Any]) -> Any:
    """Type ``value`` as the API server's CEL does: by the schema, not by the JSON literal."""
    kind = schema.get("type")
    if isinstance(value, Mapping):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        return celtypes.MapType(
            {
                celtypes.StringType(k): _to_cel(
                    v, props.get(k, {}) if props else (extra if isinstance(extra, dict) else {})
                )
                for k, v in value.items()
            }
        )
    if isinstance(value, list):
        return celtypes.ListType([_to_cel(v, schema.get("items", {})) for v in value])
    if isinstance(value, bool):
        return celtypes.BoolType(value)
    if kind == "number" and isinstance(value, int | float):
        return celtypes.DoubleType(float(value))
    if isinstance(value, int):
        return celtypes.IntType(value)
    if isinstance(value, float):
        return celtypes.DoubleType(value)
    if isinstance(value, str):
        return celtypes.StringType(value)
    return None


def _cel_problems(
    value: Any,
    old: Any,
    schema: Mapping[str, Any],
    path: list[str | int],
    bad_paths: list[str],
) -> Iterator[Problem]:
    here = _path(path)
    # Where the schema already failed inside this subtree, a rule sees wrong types: its evaluation
    # errors are noise then, but a rule that evaluates to false is still worth reporting.
    subtree_bad = any(
        bad == here or not here or bad.startswith((here + ".", here + "[")) for bad in bad_paths
    )
    for rule in schema.get("x-kubernetes-validations", []):
        uses_old = "oldSelf" in rule["rule"]
        if uses_old and old is None:
            continue  # transition rules run on update only, as in the API server
        activation = {"self": _to_cel(value, schema)}
        if uses_old:
            activation["oldSelf"] = _to_cel(old, schema)
        field = here + rule.get("fieldPath", "")
        try:
            ok = _program(rule["rule"]).evaluate(activation)
        except CELEvalError as exc:
            ok = exc
        if isinstance(ok, CELEvalError):
            if not subtree_bad:
                detail = f"rule {rule['rule']!r} failed to evaluate: {ok.args[0]}"
                yield Problem(
                    field, "Invalid value", _type_name(value, schema), detail, rule["rule"]
                )
            continue
        if not bool(ok):
            yield Problem(
                field,
                "Invalid value",
                _type_name(value, schema),
                _message(rule, activation),
                rule["rule"],
            )
    if isinstance(value, Mapping) and "properties" in schema:
        for key, child_schema in schema["properties"].items():
            if key in value:
                child_old = old.get(key) if isinstance(old, Mapping) else None
                yield from _cel_problems(
                    value[key], child_old, child_schema, [*path, key], bad_paths
                )
    elif isinstance(value, Mapping) and isinstance(schema.get("additionalProperties"), dict):
        for key, child in value.items():
            yield from _cel_problems(
                child, None, schema["additionalProperties"], [*path, key], bad_paths
            )
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, child in enumerate(value):
            yield from _cel_problems(child, None, schema["items"], [*path, i], bad_paths)


def _type_name(value: Any, schema: Mapping[str, Any]) -> str:
    """The API server shows a CEL failure's value as the schema type of the rule's node."""
    return str(schema.get("type") or _json_type(value))


def _message(rule: Mapping[str, Any], activation: Mapping[str, Any]) -> str:
    expression = rule.get("messageExpression")
    if expression:
        try:
            text = _program(expression).evaluate(activation)
            if isinstance(text, str) and text:
                return str(text)
        except CELEvalError:
            pass  # the API server falls back to the static message, as here
    return str(rule.get("message") or f"failed rule: {rule['rule']}")


# -------------------------------------------------------------------------------------- entry


def validate_manifest(
    manifest: Mapping[str, Any], *, old: Mapping[str, Any] | None = None
) -> list[Problem]:
    """Every reason the API server would refuse ``manifest``; empty when it would accept it.

    Args:
        manifest: a Driftline manifest as parsed from YAML (``status`` is ignored, as on create).
        old: the stored object, for update-only (transition) rules; None on create.

    Returns:
        The problems in a stable order: unknown fields, schema errors, then CEL rules.
    """
    api_version = manifest.get("apiVersion")
    kind = manifest.get("kind")
    if api_version != names.API_VERSION:
        return [
            Problem(
                "apiVersion",
                "Unsupported value",
                api_version,
                f"supported values: {json.dumps(names.API_VERSION)}",
            )
        ]
    kinds = [k.kind_names.kind for k in KINDS]
    if kind not in kinds:
        supported = ", ".join(json.dumps(k) for k in kinds)
        return [Problem("kind", "Unsupported value", kind, f"supported values: {supported}")]
    schema = _schemas()[str(kind)]
    problems = _metadata_problems(manifest.get("metadata"))
    body = {k: v for k, v in manifest.items() if k != "status"}
    unknown: list[Problem] = []
    prepared = _prepare(body, schema, [], unknown)
    problems += unknown
    validator = _validator(str(kind))
    schema_errors = sorted(
        validator.iter_errors(prepared),
        key=lambda e: (list(map(str, e.absolute_path)), e.validator),
    )
    schema_problems = [_schema_problem(e) for e in schema_errors]
    problems += schema_problems
    old_prepared = None
    if old is not None:
        old_prepared = _prepare({k: v for k, v in old.items() if k != "status"}, schema, [], [])
    bad = [p.field for p in schema_problems]
    problems += list(_cel_problems(prepared, old_prepared, schema, [], bad))
    return problems


def _metadata_problems(metadata: object) -> list[Problem]:
    if not isinstance(metadata, Mapping):
        return [
            Problem("metadata.name", "Required value", detail="name or generateName is required")
        ]
    name = metadata.get("name")
    if not name and not metadata.get("generateName"):
        return [
            Problem("metadata.name", "Required value", detail="name or generateName is required")
        ]
    if isinstance(name, str) and (len(name) > 253 or not _NAME_PATTERN.match(name)):
        return [Problem("metadata.name", "Invalid value", name, _NAME_HELP)]
    return []
