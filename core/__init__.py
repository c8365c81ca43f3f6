"""Herald's shared core, one package per idea; every other room imports from here and this
package imports none of them.

From the bottom up (a package imports only those below it):

- `catalogue`: the event types, the shapes of events and notifications, the templates.
- `platform`: what every process runs on: settings, logs with masked addresses, metrics,
  tracing, the delivery error taxonomy.
- `aws`: the one layer that calls AWS: clients, resource names, error classification and
  back-off, DynamoDB keys and batched reads, size-bounded chunks.
- `security`: tenants, API keys, rate limits and the chat webhook host rules.
- `directory`: who gets what: users, their profiles, preferences and devices, topics.
- `ledger`: what happened to each event and notification: the event items, their listing
  and tally, the notification records' state machine, outcomes, receipts, settlement.
- `digests`: events of one type for one recipient gathered into one notification: the
  digest items, absorbing events into them and closing them, with conditional writes.
- `timing`: work that waits for its time (deferred notifications, delayed events) in
  sharded minute buckets, and the event's waiting states (SCHEDULED, CANCELLED).
- `operations`: what operators read and replay: dead letters and the numbers of GET /stats.
- `resources`: every AWS resource as data, read by provisioning and by the CDK app
  (`deploy/`).
"""
