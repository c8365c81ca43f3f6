"""The baseline for the API's CPU figure: the same framework and server, no work.

    uvicorn bench.bare_app:app

`POST /events` takes the body as JSON and answers 202, so the difference between Herald's
API and this app is what Herald does per event (validation, the DynamoDB record, the SNS
publish), not what FastAPI and uvicorn cost anyway.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import Body, FastAPI, status

app = FastAPI(title="bare")


@app.post("/events", status_code=status.HTTP_202_ACCEPTED)
async def post_event(body: dict[str, Any] = Body()) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "status": "START", "duplicate": False}


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}
