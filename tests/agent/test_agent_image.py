"""The agent Dockerfile (no Docker engine here, so it is checked, not built)."""

import re

from tests.agent.conftest import REPO

DOCKERFILE = (REPO / "agent" / "Dockerfile").read_text()


def test_base_image_is_pinned_by_full_tag() -> None:
    base = re.search(r"^FROM (\S+)", DOCKERFILE, re.MULTILINE)
    assert base is not None
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", base.group(1))


def test_runs_as_non_root() -> None:
    users = re.findall(r"^USER (\S+)", DOCKERFILE, re.MULTILINE)
    assert users and users[-1].split(":")[0] not in ("root", "0")


def test_dependencies_pinned_to_the_tested_versions() -> None:
    import boto3
    import duckdb
    import numpy
    import pyarrow

    for name, version in (
        ("duckdb", duckdb.__version__),
        ("pyarrow", pyarrow.__version__),
        ("boto3", boto3.__version__),
        ("numpy", numpy.__version__),
    ):
        assert f"{name}=={version}" in DOCKERFILE, name


def test_entrypoint_is_the_cli() -> None:
    assert 'ENTRYPOINT ["python", "-m", "agent"]' in DOCKERFILE


def test_bytecode_is_compiled_in_the_image() -> None:
    # Every query job is a fresh process under a user that cannot write __pycache__.
    compiled = DOCKERFILE.index("RUN python -m compileall -q ./agent")
    assert DOCKERFILE.index("COPY . ./agent/") < compiled < DOCKERFILE.index("USER 10001")
