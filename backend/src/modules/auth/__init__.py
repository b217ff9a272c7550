"""Auth: login (password, OAuth), logout, server-side sessions and the dependencies that resolve
the caller."""
