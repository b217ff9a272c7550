"""Users: sign-up, profiles, soft delete, superuser administration."""
