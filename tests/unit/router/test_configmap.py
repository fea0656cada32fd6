"""The pure half of the ConfigMap watch: the flag, credentials, LIST/WATCH decoding, backoff."""

from __future__ import annotations

import base64
from pathlib import Path, PurePosixPath

import orjson
import pytest
from click.testing import CliRunner

from driftline.operator import names
from driftline.operator.cli import driftline
from driftline.serving.router.configmap import (
    DEFAULT_KEY,
    Bookmark,
    ConfigMapError,
    ConfigMapRef,
    Expired,
    Ignored,
    Snapshot,
    access_from_kubeconfig,
    decode_event,
    decode_list,
    in_cluster_access,
    list_path,
    next_backoff,
    parse_ref,
    watch_query,
)
from driftline.serving.router.settings import RouterSettings

REF = ConfigMapRef("shop", "churn-routes", "routes.json")


def cm(name: str = "churn-routes", rv: str = "7", data: object = None) -> dict[str, object]:
    obj: dict[str, object] = {"metadata": {"name": name, "resourceVersion": rv}}
    if data is not None:
        obj["data"] = data
    return obj


def line(kind: str, obj: object) -> bytes:
    return orjson.dumps({"type": kind, "object": obj})


def test_the_operator_writes_the_key_the_router_reads_by_default() -> None:
    assert DEFAULT_KEY == names.ROUTE_TABLE_KEY


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("shop/churn-routes", ConfigMapRef("shop", "churn-routes", DEFAULT_KEY)),
        ("shop/churn-routes/t.yaml", ConfigMapRef("shop", "churn-routes", "t.yaml")),
        (" a/b.c ", ConfigMapRef("a", "b.c", DEFAULT_KEY)),
    ],
)
def test_parse_ref_accepts(text: str, want: ConfigMapRef) -> None:
    assert parse_ref(text) == want


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("shop", "NAMESPACE/NAME"),
        ("shop//k", "NAMESPACE/NAME"),
        ("a/b/c/d", "NAMESPACE/NAME"),
        ("Shop/x", "namespace 'Shop'"),
        ("shop/-x", "name '-x'"),
        ("shop/x/a b", "key 'a b'"),
    ],
)
def test_parse_ref_names_the_bad_part(text: str, message: str) -> None:
    with pytest.raises(ConfigMapError, match=message):
        parse_ref(text)


def test_settings_need_exactly_one_table_source(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exactly one table source"):
        RouterSettings()
    with pytest.raises(ValueError, match="exactly one table source"):
        RouterSettings(table=tmp_path / "t.yaml", table_configmap="a/b")
    with pytest.raises(ValueError, match="namespace 'A'"):
        RouterSettings(table_configmap="A/b")
    with pytest.raises(ValueError, match="only used with --table-configmap"):
        RouterSettings(table=tmp_path / "t.yaml", kubeconfig=tmp_path / "k")
    settings = RouterSettings(table_configmap="a/b/k")
    assert settings.configmap_ref() == ConfigMapRef("a", "b", "k")


def test_route_command_reports_conflicting_sources_as_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        driftline, ["route", "--table", str(tmp_path / "t"), "--table-configmap", "a/b"]
    )
    assert result.exit_code == 2
    assert "exactly one table source" in result.output


def test_in_cluster_access_uses_the_service_account_files() -> None:
    access = in_cluster_access(
        {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    )
    assert access.server == "https://10.0.0.1:443"
    assert access.token_file == "/var/run/secrets/kubernetes.io/serviceaccount/token"
    assert access.ca_file == "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
    v6 = in_cluster_access(
        {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "6443"}
    )
    assert v6.server == "https://[fd00::1]:6443"
    with pytest.raises(ConfigMapError, match="not in a cluster"):
        in_cluster_access({})
    with pytest.raises(ConfigMapError, match="port number"):
        in_cluster_access({"KUBERNETES_SERVICE_HOST": "h", "KUBERNETES_SERVICE_PORT": "x"})


def _kubeconfig(user: dict[str, object], cluster: dict[str, object] | None = None) -> object:
    return {
        "current-context": "c",
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
        "clusters": [{"name": "k", "cluster": cluster or {"server": "https://api:6443/"}}],
        "users": [{"name": "u", "user": user}],
    }


def test_kubeconfig_token_and_relative_paths() -> None:
    pem = base64.b64encode(b"-----BEGIN CERTIFICATE-----\n").decode()
    doc = _kubeconfig(
        {"token": "t0k", "tokenFile": "tok"},
        {"server": "https://api:6443/", "certificate-authority": "ca.pem"},
    )
    access = access_from_kubeconfig(doc, PurePosixPath("/home/me/.kube"))
    assert access.server == "https://api:6443"
    assert access.token == "t0k" and access.token_file == "/home/me/.kube/tok"
    assert access.ca_file == "/home/me/.kube/ca.pem" and not access.insecure
    inline = access_from_kubeconfig(
        _kubeconfig(
            {"client-certificate-data": pem, "client-key-data": pem},
            {"server": "https://api", "certificate-authority-data": pem},
        ),
        PurePosixPath("/"),
    )
    assert inline.client_inline and inline.client_cert == "-----BEGIN CERTIFICATE-----\n"
    assert inline.ca_data == "-----BEGIN CERTIFICATE-----\n"


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "not a mapping"),
        ({"contexts": []}, "no current-context"),
        (_kubeconfig({"exec": {"command": "aws"}}), "exec is not supported"),
        (_kubeconfig({"client-certificate": "c.pem"}), "both a client certificate and its key"),
        (_kubeconfig({}, {"server": "api:6443"}), "server must be an http"),
        (_kubeconfig({"token": ""}), "token must be a non-empty string"),
        (_kubeconfig({"client-key-data": "%%%"}), "not base64"),
    ],
)
def test_kubeconfig_errors_name_the_entry(doc: object, message: str) -> None:
    with pytest.raises(ConfigMapError, match=message):
        access_from_kubeconfig(doc, PurePosixPath("/"))


def test_list_and_watch_queries_select_the_one_object() -> None:
    assert list_path(REF) == "/api/v1/namespaces/shop/configmaps"
    assert watch_query(REF, None, 300) == {"fieldSelector": "metadata.name=churn-routes"}
    assert watch_query(REF, "42", 60) == {
        "fieldSelector": "metadata.name=churn-routes",
        "watch": "true",
        "resourceVersion": "42",
        "allowWatchBookmarks": "true",
        "timeoutSeconds": "60",
    }


def test_decode_list() -> None:
    body = orjson.dumps(
        {"metadata": {"resourceVersion": "9"}, "items": [cm(data={"routes.json": "{}"})]}
    )
    assert decode_list(body, REF) == Snapshot("9", "{}")
    empty = decode_list(orjson.dumps({"metadata": {"resourceVersion": "9"}, "items": []}), REF)
    assert empty.content is None and "does not exist" in (empty.problem or "")
    other_key = decode_list(
        orjson.dumps({"metadata": {"resourceVersion": "9"}, "items": [cm(data={"x": "1"})]}), REF
    )
    assert other_key.content is None and "no key 'routes.json' (keys: ['x'])" in (
        other_key.problem or ""
    )
    with pytest.raises(ConfigMapError, match="not JSON"):
        decode_list(b"<html>", REF)
    with pytest.raises(ConfigMapError, match="resourceVersion"):
        decode_list(orjson.dumps({"items": []}), REF)
    with pytest.raises(ConfigMapError, match="no items"):
        decode_list(orjson.dumps({"kind": "Status"}), REF)


def test_decode_event_changes_and_deletion() -> None:
    assert decode_event(line("ADDED", cm(data={"routes.json": "a"})), REF) == Snapshot("7", "a")
    assert decode_event(line("MODIFIED", cm(rv="8", data={"routes.json": "b"})), REF) == Snapshot(
        "8", "b"
    )
    deleted = decode_event(line("DELETED", cm(rv="9", data={"routes.json": "b"})), REF)
    assert isinstance(deleted, Snapshot) and deleted.content is None
    assert deleted.resource_version == "9" and "deleted" in (deleted.problem or "")
    no_data = decode_event(line("MODIFIED", cm(rv="10")), REF)
    assert isinstance(no_data, Snapshot) and no_data.content is None
    not_text = decode_event(line("MODIFIED", cm(data={"routes.json": 5})), REF)
    assert isinstance(not_text, Snapshot) and "not a string" in (not_text.problem or "")


def test_decode_event_bookmark_gone_and_garbage() -> None:
    bookmark = {"kind": "ConfigMap", "metadata": {"resourceVersion": "12"}}
    assert decode_event(line("BOOKMARK", bookmark), REF) == Bookmark("12")
    gone = {
        "kind": "Status",
        "code": 410,
        "reason": "Expired",
        "message": "too old resource version",
    }
    event = decode_event(line("ERROR", gone), REF)
    assert isinstance(event, Expired) and "410" in event.message
    assert isinstance(decode_event(b"{not json", REF), Ignored)
    assert isinstance(decode_event(b"[]", REF), Ignored)
    assert isinstance(decode_event(line("ADDED", "x"), REF), Ignored)
    assert isinstance(
        decode_event(line("ADDED", {"metadata": {"name": "churn-routes"}}), REF), Ignored
    )
    assert isinstance(decode_event(line("ADDED", cm(name="other", data={})), REF), Ignored)
    assert isinstance(decode_event(line("WEIRD", cm()), REF), Ignored)


def test_backoff_doubles_to_a_ceiling() -> None:
    delays = [0.0]
    for _ in range(8):
        delays.append(next_backoff(delays[-1], 0.2, 5.0))
    assert delays[1:5] == [0.2, 0.4, 0.8, 1.6]
    assert delays[-1] == 5.0
