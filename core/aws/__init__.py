"""The one layer that calls AWS: the client factory (`clients`), resource names (`names`),
error classification and back-off (`errors`: what is refused, retryable or ambiguous),
DynamoDB keys, cursors and the batched read (`dynamo`), size-bounded chunks (`chunking`),
the hooks that count every call (`call_metrics`) and the lean path of the data-plane calls
(`wire`: SigV4, kept-alive connections, botocore's retries and errors, without botocore's
per-call CPU).

May import `core.catalogue` and `core.platform`.
"""
