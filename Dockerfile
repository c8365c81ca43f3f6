# Herald's services in one image; supervisord runs them (see supervisord.conf).
FROM python:3.11-slim

WORKDIR /app
ENV PYTHONUNBUFFERED=1 \
    HERALD_PYTHON=python \
    HERALD_API_HOST=0.0.0.0 \
    HERALD_API_PORT=8000 \
    HERALD_EMULATOR=false \
    HERALD_EMULATOR_PORT=4566 \
    HERALD_EMULATOR_DYNAMODB_PORT=4567 \
    HERALD_SANDBOX=true \
    HERALD_SANDBOX_PORT=8025 \
    HERALD_ROUTERS=1 \
    HERALD_WORKERS=1 \
    HERALD_SCHEDULERS=1 \
    HERALD_EVALUATORS=1

COPY pyproject.toml README.md ./
COPY core ./core
COPY api ./api
COPY listeners ./listeners
COPY notifiers ./notifiers
COPY localstack ./localstack
COPY alerting ./alerting
RUN pip install --no-cache-dir . && mkdir -p var/log var/metrics
COPY supervisord.conf locustfile.py ./

EXPOSE 8000 8025
CMD ["supervisord", "-n", "-c", "supervisord.conf"]
