"""Who gets what: users and their profiles (`users`, `profiles`), their topic subscriptions
(`subscriptions`) and where both sit in the table (`keys`), channel preferences and
quiet hours (`preferences`), push devices (`devices`), topics' subscriber counts
(`topic_counts`), the per-tenant listing of users and topics (`listing`), and re-addressing a
dead letter to a user's current contact (`readdress`).

May import `core.catalogue`, `core.platform`, `core.aws` and `core.security`.
"""
