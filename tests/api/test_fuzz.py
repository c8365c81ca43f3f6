"""Property-based fuzzing of every API operation from its own OpenAPI schema.

Schemathesis generates requests that fit the schema and requests that do not, sends them
to the app in-process (ASGI) backed by the emulator server, and checks each answer: never a
5xx, its status documented, its content type and body as documented for that status. Only
checks that look at the one response are used: the others send requests of their own,
outside the in-process session. What it found is pinned in
`test_fuzz_regressions.py` as ordinary tests.

The examples per operation are bounded (`HERALD_FUZZ_EXAMPLES`, default 15) so the run stays
well under a minute; raise it for a longer hunt.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.main import create_app
from core.platform.settings import Settings
from tests.conftest import AUTH, Stack

EXAMPLES = int(os.environ.get("HERALD_FUZZ_EXAMPLES", "15"))
BASE_URL = f"http://{asgi.HOST}"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

# The schema does not depend on settings or AWS, so it is read once, without I/O.
schema = schemathesis.openapi.from_dict(create_app(Settings(_env_file=None)).openapi())  # type: ignore[call-arg]
# The API key is sent by the test itself; random ones would only ever test the 401.
schema.config.generation.update(with_security_parameters=False, database="none")


@pytest.fixture
def session(stack: Stack) -> Iterator[Any]:
    """An in-process HTTP session on a fresh app (lifespan started) over the emulator."""
    app: Any = create_app(stack.settings, stack.clients)
    with asgi.get_client(app) as client:
        client.headers.update(AUTH)
        yield client
    asgi.shutdown_lifespans()


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_answer_is_documented_and_never_5xx(case: Any, session: Any) -> None:
    case.call_and_validate(
        session=session,
        base_url=BASE_URL,
        checks=CHECKS,
    )
