"""OAuth sign-in with Google and GitHub: `providers.py` (the registry), `service.py` (the flow
and the account-linking rules), `routes.py` (`/auth/oauth/...`), `models.py` (linked
identities and used states)."""
