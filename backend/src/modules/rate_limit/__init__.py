"""Rate limits: per tier and route rules (managed with `ratelimit.manage`), defaults from settings,
enforcement on every API route, and login throttling."""
