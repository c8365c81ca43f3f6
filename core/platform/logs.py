"""JSON log lines on stdout, one per record, personal data masked.

supervisord collects stdout; a line carries `event_id` / `notification_id` when the caller
passes them in `extra`, so one event can be followed across processes.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from core.platform.masking import mask_text

CONTEXT_FIELDS = ("event_id", "notification_id", "channel", "queue")
#: Numbers a log line may carry for a CloudWatch Logs metric filter to read (the deployed
#: stack's scheduler-lag alarm reads `lag_seconds`), kept numeric in the JSON.
METRIC_FIELDS = ("lag_seconds",)


class JsonFormatter(logging.Formatter):
    def __init__(self, process: str) -> None:
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "process": self.process,
            "logger": record.name,
            "msg": mask_text(record.getMessage()),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = str(value)
        for name in METRIC_FIELDS:
            value = getattr(record, name, None)
            if isinstance(value, int | float):
                line[name] = value
        if record.exc_info:
            line["exc"] = mask_text(self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=False)


def configure_logging(process: str, level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(process))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn installs its own plain-text handlers before it builds the app; its lines
    # (tracebacks of failed requests included) go through this formatter too. The access
    # log stays as uvicorn left it when it was turned off (--no-access-log: no handlers).
    for server in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(server)
        if server == "uvicorn.access" and not logger.handlers:
            continue
        logger.handlers[:] = []
        logger.propagate = True
    # The Twilio SDK logs every request at INFO: ten lines a message, with the account SID
    # in each URL; httpx a line per request (each chat send's webhook URL, masked at a
    # cost per line). Their errors reach our logs as delivery errors, masked.
    for noisy in ("botocore", "boto3", "urllib3", "twilio", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
