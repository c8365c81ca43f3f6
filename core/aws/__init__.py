"""The one layer that calls AWS: the client factory (`clients`), resource names (`names`),
error classification and back-off (`errors`: what is refused, retryable or ambiguous),
DynamoDB keys, cursors and the batched read (`dynamo`), size-bounded chunks (`chunking`)
and the hooks that count every call (`call_metrics`).

May import `core.catalogue` and `core.platform`.
"""
