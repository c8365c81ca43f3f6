"""Every AWS resource Herald needs, declared once as plain data (`declaration`): the table
with its keys, indexes and TTL, the topic and its filtered subscriptions, every queue with
its dead-letter queue and redrive, the alarm topic. `localstack/provision.py` creates them
on an emulator (or an account) and the CDK app in `deploy/` synthesizes them, so the two
cannot drift.

The top of `core`: may import every other package of it; no package of `core` imports it.
"""
