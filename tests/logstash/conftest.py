"""Fixtures for the Logstash tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from logstash_support import SearchStandIn, running_search_stand_in


@pytest.fixture
def search_server() -> Iterator[SearchStandIn]:
    with running_search_stand_in() as stand_in:
        yield stand_in
