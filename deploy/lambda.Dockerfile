# The router and the workers as Lambda functions (deploy: compute=lambda): AWS's Python
# base image, which carries the runtime interface client, with Herald installed. Each
# function's command names its handler (listeners/lambda_entry.py).
FROM public.ecr.aws/lambda/python:3.11

COPY pyproject.toml README.md ./
COPY core ./core
COPY api ./api
COPY listeners ./listeners
COPY notifiers ./notifiers
COPY localstack ./localstack
COPY alerting ./alerting
RUN pip install --no-cache-dir .

CMD ["listeners.lambda_entry.router"]
