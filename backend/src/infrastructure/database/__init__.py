"""Database plumbing: the declarative base, the engine and the `async_session` dependency."""
