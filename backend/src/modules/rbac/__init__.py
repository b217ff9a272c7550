"""Roles and permissions: the permission registry, roles (named sets of permissions), their
assignment to users, and the delegation rules (a caller hands on only what it holds)."""
