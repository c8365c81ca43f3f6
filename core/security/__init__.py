"""Who may do what: tenants and how ids are scoped to them (`tenants`), API keys
(`api_keys`), token-bucket rate limits (`rate_limit`) and which chat webhook hosts a user may
name (`chat_hosts`).

May import `core.catalogue`, `core.platform` and `core.aws`.
"""
