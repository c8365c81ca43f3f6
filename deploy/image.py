"""What the services' container images are built from: the project's Dockerfile (and the
Lambda one) with a build context of only what they copy, so a change to tests, docs or a
local virtualenv does not make a new image."""

from __future__ import annotations

#: The image's build context: what the Dockerfiles copy, nothing else (no .venv, no tests).
IMAGE_CONTEXT = [
    "*",
    "!Dockerfile",
    "!deploy/lambda.Dockerfile",
    "!pyproject.toml",
    "!README.md",
    "!supervisord.conf",
    "!locustfile.py",
    "!core",
    "!api",
    "!listeners",
    "!notifiers",
    "!localstack",
    "!alerting",
    "**/__pycache__",
]
