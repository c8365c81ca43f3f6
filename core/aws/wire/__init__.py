"""A lean path for the data-plane calls Herald makes on every event and notification.

botocore spends over a millisecond of CPU on each call (its event chain, endpoint rules,
generic serializer and parser, urllib3's pool and the email parser behind http.client's
headers), several times what the call needs. For the operations in `facade.py`'s
`LEAN_OPERATIONS` the clients built in `core.aws.clients` make the call themselves: the
protocol's request and answer (`json_codec.py` for DynamoDB and SQS, from the wire JSON
Herald already holds; `query_codec.py` for SNS, through botocore's own serializer and
parser), signed with SigV4 (`signing.py`), over kept-alive connections (`connections.py`,
`http1.py`), retried as botocore's standard retry mode would and raising botocore's
exceptions with botocore's error shapes (`calls.py`). Every other operation, and every
call when `HERALD_AWS_WIRE=botocore`, goes through botocore unchanged.
"""
