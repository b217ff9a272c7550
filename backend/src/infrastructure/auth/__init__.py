"""Authentication plumbing with no business rules: passwords, tokens, cookies, CSRF, client IP."""
