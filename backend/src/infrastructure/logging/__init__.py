"""Logging: the request id that ties a request's log lines (and its tasks) together."""
