"""A lean path for the data-plane calls Herald makes on every notification.

botocore spends about a millisecond of CPU on each call (its event chain, endpoint rules,
generic serializer and parser, urllib3's pool and the email parser behind http.client's
headers), four times what the call needs: Herald already holds its parameters as the wire
JSON of DynamoDB's and SQS's JSON protocols. For the operations in `operations.py` the
clients built in `core.aws.clients` send that JSON themselves: signed with SigV4
(`signing.py`), over kept-alive connections (`connections.py`), answered and retried as
botocore's standard retry mode would (`json_client.py`, which reuses botocore's own retry
conditions, backoff and quota), raising botocore's exceptions with botocore's error
shapes. Every other operation, and every call when `HERALD_AWS_WIRE=botocore`, goes through
botocore unchanged (`facade.py`).
"""
