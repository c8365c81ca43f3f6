from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from tests.conftest import AUTH, Stack


@pytest.fixture
def client(stack: Stack) -> Iterator[TestClient]:
    """The API in-process (ASGI), talking to the emulator server over loopback."""
    with TestClient(create_app(stack.settings, stack.clients), headers=AUTH) as test_client:
        yield test_client
