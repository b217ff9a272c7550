"""Security plumbing: the production validator and the response security headers."""
