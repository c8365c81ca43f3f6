"""The provider sandbox: a local fake of Twilio, SendGrid and Slack / Teams webhooks.

    python -m localstack.sandbox [--host 127.0.0.1] [--port 8025]

The real SDKs are pointed here (see `notifiers.registry`), so the whole send path runs
without credentials and every delivery can be inspected. Tests use `Sandbox`, which runs the
same server in a thread on a free loopback port.

Provider endpoints
    POST /2010-04-01/Accounts/{sid}/Messages.json   Twilio (form, HTTP basic auth) -> 201
         To numbers as in Twilio's test credentials: +15005550001 -> 400 21211 (invalid),
         +15005550002 -> 400 21612 (unroutable), +15005550003 -> 400 21408 (no permission),
         +15005550004 -> 400 21610 (unsubscribed), +15005550009 -> 400 21614 (not mobile);
         also with a `whatsapp:` prefix.
    POST /twilio/status                             a stand-in status callback -> 204
    POST /v3/mail/send                              SendGrid (JSON, Bearer) -> 202 + X-Message-Id;
                                                    any address @invalid.example -> 400
    POST /slack/<anything>                          -> 200 "ok"
    POST /teams/<anything>                          -> 200 "1"

Control endpoints
    GET    /sandbox/messages[?provider=&notification_id=]   recorded requests, oldest first
    DELETE /sandbox/messages                                forget them
    GET    /sandbox/messages/<seq>/attachments/<index>     a recorded email's attachment
                                                            (the recorded request lists
                                                            them in `attachments`)
    GET    /sandbox/faults     POST /sandbox/faults     DELETE /sandbox/faults
    GET    /sandbox/health

Every provider request is recorded, faulted or not: `received_at` (epoch seconds), method,
path, query, headers, raw `body`, parsed `form` / `json`, `provider`, `auth`, `status` (what
was answered), `message_id`, `fault` and `notification_id`, found per provider as:
    twilio    the `notification_id` query parameter of the `StatusCallback` URL
    sendgrid  `custom_args.notification_id` (top level or first personalization)
    chat      the `X-Herald-Notification-Id` header (also honoured for the others)

Modules: `server` (the HTTP server, `Sandbox`, `main`), `recording` (recorded requests and
faults), one per provider (`twilio`, `sendgrid`, `chat`) and `reply` (an answer).

Faults (`POST /sandbox/faults`, a JSON object or a list of them, or `Sandbox.fail`) make
the next requests of a provider fail, slow down or both; their fields are listed in
`localstack.sandbox.recording`.
"""

from localstack.sandbox.recording import FAULT_FIELDS, PROVIDERS, Fault, SandboxState
from localstack.sandbox.server import NOTIFICATION_ID_HEADER, Sandbox, main

__all__ = [
    "FAULT_FIELDS",
    "NOTIFICATION_ID_HEADER",
    "PROVIDERS",
    "Fault",
    "Sandbox",
    "SandboxState",
    "main",
]
