"""SearchBootstrap's and SearchWriter's providers against a recording stand-in for OpenSearch
and Dashboards."""

from __future__ import annotations

import base64
import json
import pickle
from typing import Any

import pytest
from logstash_support import LOGSTASH_DIR, SearchStandIn

from infra.opensearch_setup import (
    BootstrapError,
    BootstrapSpec,
    RetryPolicy,
    SearchBootstrapProvider,
    SearchWriterProvider,
    WriterSpec,
    bootstrap,
    ism_policy,
    map_writer,
    unmap_writer,
    writer_role,
    writer_role_name,
)

FAST = RetryPolicy(attempts=3, delay_seconds=0.0, timeout_seconds=5.0)
TEMPLATE_NAME = "bacalhau-logs-metrics"


def props(server: SearchStandIn, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "opensearch_url": server.url,
        "dashboards_url": server.url + "/",
        "templates": {
            TEMPLATE_NAME: (LOGSTASH_DIR / "templates" / f"{TEMPLATE_NAME}.json").read_text()
        },
        "dashboards_ndjson": (LOGSTASH_DIR / "dashboards" / "bacalhau-logs.ndjson").read_text(),
        "metrics_retention_days": 14,
        "username": None,
        "password": None,
    }
    return base | overrides


def run(server: SearchStandIn, **overrides: Any) -> dict[str, Any]:
    return bootstrap(BootstrapSpec.from_props(props(server, **overrides)), FAST)


def calls(server: SearchStandIn) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in server.requests]


def test_installs_template_policy_and_dashboards(search_server: SearchStandIn) -> None:
    outs = run(search_server)
    assert calls(search_server) == [
        ("PUT", f"/_index_template/{TEMPLATE_NAME}"),
        ("GET", "/_plugins/_ism/policies/bacalhau-logs-metrics-retention"),
        ("PUT", "/_plugins/_ism/policies/bacalhau-logs-metrics-retention"),
        ("POST", "/api/saved_objects/_import?overwrite=true"),
    ]
    template, _, ism, dashboards = search_server.requests
    assert json.loads(template.body) == json.loads(props(search_server)["templates"][TEMPLATE_NAME])
    assert template.headers["content-type"] == "application/json"
    assert json.loads(ism.body) == ism_policy(14)
    assert dashboards.headers["osd-xsrf"] == "true"
    assert dashboards.headers["content-type"].startswith("multipart/form-data")
    assert b'name="file"; filename="bacalhau-logs.ndjson"' in dashboards.body
    assert props(search_server)["dashboards_ndjson"].encode() in dashboards.body
    assert outs["imported_objects"] == 14
    assert outs["template_names"] == [TEMPLATE_NAME]
    assert "authorization" not in template.headers


def test_second_run_gives_the_same_result_and_updates_the_policy_in_place(
    search_server: SearchStandIn,
) -> None:
    first = run(search_server)
    search_server.requests.clear()
    second = run(search_server)
    assert second == first
    assert (
        "PUT",
        "/_plugins/_ism/policies/bacalhau-logs-metrics-retention?if_seq_no=7&if_primary_term=2",
    ) in calls(search_server)


def test_retention_days_reach_the_policy() -> None:
    transition = ism_policy(3)["policy"]["states"][0]["transitions"][0]
    assert transition["conditions"] == {"min_index_age": "3d"}


def test_credentials_are_sent_as_basic_auth_and_kept_out_of_outputs(
    search_server: SearchStandIn,
) -> None:
    outs = run(search_server, username="admin", password="s3cr3t-Pa55")
    expected = "Basic " + base64.b64encode(b"admin:s3cr3t-Pa55").decode()
    assert {r.headers.get("authorization") for r in search_server.requests} == {expected}
    assert "s3cr3t-Pa55" not in json.dumps(outs)
    assert "admin" not in json.dumps(outs)


def test_retries_while_the_backend_answers_503(search_server: SearchStandIn) -> None:
    search_server.queue("/_index_template/", (503, "starting"), (503, "starting"))
    run(search_server)
    template_calls = [c for c in calls(search_server) if c[1].startswith("/_index_template/")]
    assert len(template_calls) == 3


def test_gives_up_after_the_bounded_attempts(search_server: SearchStandIn) -> None:
    search_server.queue("/api/saved_objects/", *[(503, "not ready")] * 3)
    with pytest.raises(BootstrapError, match="after 3 attempts: HTTP 503"):
        run(search_server)


def test_client_errors_fail_at_once_with_the_reason(search_server: SearchStandIn) -> None:
    search_server.queue("/_index_template/", (400, '{"error":"mapper_parsing_exception"}'))
    with pytest.raises(BootstrapError, match=r"PUT .*/_index_template/.* -> 400: .*mapper_parsing"):
        run(search_server)
    assert len(search_server.requests) == 1


def test_unreachable_backend_is_retried_then_reported() -> None:
    spec = BootstrapSpec.from_props(
        {
            "opensearch_url": "http://127.0.0.1:9",
            "dashboards_url": "http://127.0.0.1:9",
            "templates": {"t": "{}"},
            "dashboards_ndjson": "",
            "metrics_retention_days": 1,
        }
    )
    with pytest.raises(BootstrapError, match="after 2 attempts: ConnectionError"):
        bootstrap(spec, RetryPolicy(attempts=2, delay_seconds=0.0, timeout_seconds=1.0))


def test_rejected_import_is_an_error(search_server: SearchStandIn) -> None:
    search_server.queue(
        "/api/saved_objects/", (200, '{"success":false,"errors":[{"id":"x","error":{}}]}')
    )
    with pytest.raises(BootstrapError, match="dashboard import rejected"):
        run(search_server)


def test_invalid_retention_is_rejected(search_server: SearchStandIn) -> None:
    with pytest.raises(BootstrapError, match="metrics_retention_days"):
        BootstrapSpec.from_props(props(search_server, metrics_retention_days=0))


def test_provider_diff_follows_content_not_credentials(search_server: SearchStandIn) -> None:
    provider = SearchBootstrapProvider()
    created = provider.create(props(search_server))
    olds = created.outs or {}
    same = provider.diff(created.id, olds, props(search_server, password="rotated"))
    assert same.changes is False
    changed_template = props(search_server)
    changed_template["templates"] = {TEMPLATE_NAME: '{"index_patterns": ["x-*"]}'}
    assert provider.diff(created.id, olds, changed_template).changes is True
    changed_retention = props(search_server, metrics_retention_days=30)
    assert provider.diff(created.id, olds, changed_retention).changes is True
    assert provider.diff(created.id, olds, changed_retention).replaces == []


def test_provider_update_reinstalls_and_returns_new_digest(search_server: SearchStandIn) -> None:
    provider = SearchBootstrapProvider()
    created = provider.create(props(search_server))
    updated = provider.update(
        created.id, created.outs or {}, props(search_server, metrics_retention_days=30)
    )
    assert (updated.outs or {})["digest"] != (created.outs or {})["digest"]
    assert (updated.outs or {})["metrics_retention_days"] == 30


def test_pickled_provider_holds_no_credentials(search_server: SearchStandIn) -> None:
    provider = SearchBootstrapProvider()
    provider.create(props(search_server, username="admin", password="s3cr3t-Pa55"))
    assert b"s3cr3t-Pa55" not in pickle.dumps(provider)


@pytest.fixture
def fake_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-token-example")
    for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")


def test_aws_region_signs_every_request_with_sigv4(
    search_server: SearchStandIn, fake_aws_credentials: None
) -> None:
    run(search_server, aws_region="eu-west-1")
    assert len(search_server.requests) == 4
    for request in search_server.requests:
        authorization = request.headers["authorization"]
        assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
        assert "/eu-west-1/es/aws4_request" in authorization
        assert "SignedHeaders=" in authorization and "Signature=" in authorization
        assert request.headers["x-amz-security-token"] == "session-token-example"
        assert "x-amz-date" in request.headers


def test_sigv4_wins_over_basic_auth_and_keeps_no_credentials(
    search_server: SearchStandIn, fake_aws_credentials: None
) -> None:
    outs = run(search_server, aws_region="us-east-1", username="admin", password="s3cret")
    assert all(
        r.headers["authorization"].startswith("AWS4-HMAC-SHA256") for r in search_server.requests
    )
    assert "AKIDEXAMPLE" not in json.dumps(outs)
    assert "AKIDEXAMPLE" not in pickle.dumps(SearchBootstrapProvider()).decode("latin-1")


def test_the_bootstrap_makes_no_security_call(search_server: SearchStandIn) -> None:
    outs = run(search_server)
    assert not [r for r in search_server.requests if "_security" in r.path]
    assert not [key for key in outs if "role" in key]


def test_missing_aws_credentials_fail_clearly(
    search_server: SearchStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    import botocore.session

    monkeypatch.setattr(botocore.session.Session, "get_credentials", lambda self: None)
    with pytest.raises(BootstrapError, match="no AWS credentials"):
        run(search_server, aws_region="us-east-1")


def test_digest_changes_with_the_signing_region(search_server: SearchStandIn) -> None:
    base = BootstrapSpec.from_props(props(search_server)).digest()
    signed = BootstrapSpec.from_props(props(search_server, aws_region="us-east-1")).digest()
    assert base != signed


# SearchWriter: one node region's writer role and its mapping.

SECURITY = "/_plugins/_security/api"
NODE_ROLE = "arn:aws:iam::123456789012:role/eu-west-1-nodes-role"
WRITER = "bacalhau_logs_writer_eu_west_1"


def writer_props(server: SearchStandIn, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "opensearch_url": server.url + "/",
        "region": "eu-west-1",
        "role_arn": NODE_ROLE,
        "aws_region": None,
    }
    return base | overrides


def security_accepts(server: SearchStandIn, calls: int = 2) -> None:
    # The stand-in answers 404 to security calls unless told otherwise.
    server.queue(SECURITY, *[(200, '{"status":"OK"}')] * calls)


def test_writer_role_is_named_per_region_with_write_only_permissions() -> None:
    assert writer_role_name("eu-west-1") == WRITER
    assert writer_role_name("ap-southeast-2") == "bacalhau_logs_writer_ap_southeast_2"
    role = writer_role("eu-west-1")
    assert role["cluster_permissions"] == ["cluster_monitor", "cluster_composite_ops"]
    (index_permissions,) = role["index_permissions"]
    assert index_permissions == {
        "index_patterns": ["bacalhau-logs-metrics-*"],
        "allowed_actions": ["crud", "create_index", "indices:admin/mapping/put"],
    }
    assert "eu-west-1" in role["description"]


def test_writer_puts_its_role_and_maps_exactly_its_node_role(search_server: SearchStandIn) -> None:
    security_accepts(search_server)
    created = SearchWriterProvider().create(writer_props(search_server))
    assert calls(search_server) == [
        ("PUT", f"{SECURITY}/roles/{WRITER}"),
        ("PUT", f"{SECURITY}/rolesmapping/{WRITER}"),
    ]
    role, mapping = search_server.requests
    assert json.loads(role.body) == writer_role("eu-west-1")
    assert json.loads(mapping.body)["backend_roles"] == [NODE_ROLE]
    assert "authorization" not in role.headers
    assert created.id == WRITER
    assert created.outs == {
        "opensearch_url": search_server.url,
        "region": "eu-west-1",
        "role_arn": NODE_ROLE,
        "aws_region": None,
        "role_name": WRITER,
    }


def test_writer_update_maps_the_new_node_role_in_place(search_server: SearchStandIn) -> None:
    provider = SearchWriterProvider()
    security_accepts(search_server, calls=4)
    olds = provider.create(writer_props(search_server)).outs or {}
    search_server.requests.clear()
    new_role = "arn:aws:iam::123456789012:role/eu-west-1-nodes-role-2"
    news = writer_props(search_server, role_arn=new_role)
    diff = provider.diff(WRITER, olds, news)
    assert (diff.changes, diff.replaces) == (True, [])
    updated = provider.update(WRITER, olds, news)
    (_, mapping) = search_server.requests
    assert json.loads(mapping.body)["backend_roles"] == [new_role]
    assert (updated.outs or {})["role_arn"] == new_role


def test_writer_diff_replaces_on_another_region_or_domain(search_server: SearchStandIn) -> None:
    provider = SearchWriterProvider()
    security_accepts(search_server)
    olds = provider.create(writer_props(search_server)).outs or {}
    assert provider.diff(WRITER, olds, writer_props(search_server)).changes is False
    moved = provider.diff(WRITER, olds, writer_props(search_server, region="eu-central-1"))
    assert (moved.changes, moved.replaces) == (True, ["region"])
    other = provider.diff(WRITER, olds, writer_props(search_server, opensearch_url="https://x"))
    assert other.replaces == ["opensearch_url"]
    signed = provider.diff(WRITER, olds, writer_props(search_server, aws_region="us-east-1"))
    assert (signed.changes, signed.replaces) == (True, [])


def test_writer_delete_removes_the_mapping_then_the_role(search_server: SearchStandIn) -> None:
    security_accepts(search_server, calls=4)
    provider = SearchWriterProvider()
    outs = provider.create(writer_props(search_server)).outs or {}
    search_server.requests.clear()
    provider.delete(WRITER, outs)
    assert calls(search_server) == [
        ("DELETE", f"{SECURITY}/rolesmapping/{WRITER}"),
        ("DELETE", f"{SECURITY}/roles/{WRITER}"),
    ]


def test_writer_already_gone_is_deleted(search_server: SearchStandIn) -> None:
    # Unqueued, the stand-in answers 404: neither mapping nor role exists any more.
    unmap_writer(WriterSpec.from_props(writer_props(search_server)), FAST)
    assert calls(search_server) == [
        ("DELETE", f"{SECURITY}/rolesmapping/{WRITER}"),
        ("DELETE", f"{SECURITY}/roles/{WRITER}"),
    ]


def test_writer_delete_refused_is_an_error(search_server: SearchStandIn) -> None:
    search_server.queue(SECURITY, (403, '{"status":"FORBIDDEN"}'))
    with pytest.raises(BootstrapError, match=r"DELETE .*/rolesmapping/.* -> 403"):
        unmap_writer(WriterSpec.from_props(writer_props(search_server)), FAST)


def test_writer_retries_a_starting_domain_within_bounds(search_server: SearchStandIn) -> None:
    search_server.queue(SECURITY, *[(503, "starting")] * 3)
    with pytest.raises(BootstrapError, match="after 3 attempts: HTTP 503"):
        map_writer(WriterSpec.from_props(writer_props(search_server)), FAST)


def test_writer_signs_for_the_domains_region_and_keeps_no_credentials(
    search_server: SearchStandIn, fake_aws_credentials: None
) -> None:
    security_accepts(search_server)
    provider = SearchWriterProvider()
    created = provider.create(writer_props(search_server, aws_region="us-east-1"))
    assert len(search_server.requests) == 2
    for request in search_server.requests:
        authorization = request.headers["authorization"]
        assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
        # Signed for the domain's region, not the node region it maps.
        assert "/us-east-1/es/aws4_request" in authorization
    stored = json.dumps(created.outs) + pickle.dumps(provider).decode("latin-1")
    for secret in ("AKIDEXAMPLE", "wJalrXUtnFEMI", "session-token-example"):
        assert secret not in stored


def test_writer_needs_a_region_and_a_role(search_server: SearchStandIn) -> None:
    with pytest.raises(BootstrapError, match="`region` and `role_arn`"):
        WriterSpec.from_props(writer_props(search_server, role_arn=None))
    with pytest.raises(BootstrapError, match="`region` and `role_arn`"):
        WriterSpec.from_props(writer_props(search_server, region=""))
