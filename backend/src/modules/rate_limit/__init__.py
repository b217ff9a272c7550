"""Rate limits: per tier and route rules (managed by superusers), defaults from settings,
enforcement on every API route, and login throttling."""
