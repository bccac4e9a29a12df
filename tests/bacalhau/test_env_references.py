"""Job files reference every credential a backend might supply; each backend keeps its own."""

from __future__ import annotations

from infra.bacalhau.spec import without_missing_env_references

SPEC = {
    "Name": "dev-eu-1-logstash",
    "Tasks": [
        {
            "Name": "logstash",
            "Env": {
                "REGION": "eu-1",
                "AWS_ACCESS_KEY_ID": "env:LOGS_S3_ACCESS_KEY_ID",
                "OPENSEARCH_USER": "env:LOGS_OPENSEARCH_USER",
            },
        }
    ],
}


def test_keeps_references_the_nodes_define_and_plain_values() -> None:
    job = without_missing_env_references(SPEC, {"LOGS_S3_ACCESS_KEY_ID"})
    assert job["Tasks"][0]["Env"] == {
        "REGION": "eu-1",
        "AWS_ACCESS_KEY_ID": "env:LOGS_S3_ACCESS_KEY_ID",
    }


def test_instance_role_backend_drops_every_credential_reference() -> None:
    job = without_missing_env_references(SPEC, frozenset())
    assert job["Tasks"][0]["Env"] == {"REGION": "eu-1"}


def test_input_spec_is_not_modified() -> None:
    without_missing_env_references(SPEC, frozenset())
    assert len(SPEC["Tasks"][0]["Env"]) == 3  # type: ignore[index]
