"""API keys (`/api/v1/api-keys`): long-lived credentials a user makes for scripts and services.

`X-API-Key: fk_<prefix>_<secret>` authenticates as the key's owner (a `Principal` with
`via="apikey"` and the key's scopes); see `service.resolve_api_key` and docs/architecture.md.
"""
