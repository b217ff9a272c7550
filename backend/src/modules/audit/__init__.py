"""The audit log: security events (sign-ins, credential and account changes, admin changes),
each written in the transaction of the change it records, readable by holders of `audit.read` at
`GET /api/v1/audit-events` and pruned after `AUDIT_RETENTION_DAYS` (docs/audit.md)."""
