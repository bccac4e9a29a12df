"""SearchBootstrap's provider against a recording stand-in for OpenSearch and Dashboards."""

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
    bootstrap,
    ism_policy,
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
