"""Domain exceptions. Services raise these; one handler turns each into its JSON status.

Services never import FastAPI: a `ResourceNotFoundError` means the same thing in a route, a
task or the CLI. The HTTP mapping lives in `src.interfaces.errors`.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base class; `status_code` is the HTTP status a route answers with."""

    status_code = 400
    default_detail = "Bad request"

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail or self.default_detail
        super().__init__(self.detail)


class ResourceNotFoundError(DomainError):
    status_code = 404
    default_detail = "Resource not found"


class ConflictError(DomainError):
    status_code = 409
    default_detail = "The request conflicts with the current state of the resource"


class DuplicateValueError(ConflictError):
    default_detail = "A resource with this value already exists"


class NotAuthenticatedError(DomainError):
    status_code = 401
    default_detail = "Not authenticated"


class ForbiddenError(DomainError):
    status_code = 403
    default_detail = "You do not have permission to do this"


class CSRFError(ForbiddenError):
    default_detail = (
        "CSRF token missing or invalid: send the csrf_token cookie value in X-CSRF-Token"
    )


class BadRequestError(DomainError):
    status_code = 400


class InvalidValueError(DomainError):
    """422: a value breaks a rule that the request's schema could not check on its own, because
    it needs stored state (a new password against the stored username, say). With `field`, it
    is answered in the shape of a validation error of that field, so a client reads one 422
    shape whichever layer refused the value; `error_type` is that error's `type`."""

    status_code = 422
    default_detail = "A value in the request is invalid"

    def __init__(
        self,
        detail: str | None = None,
        *,
        field: str | None = None,
        error_type: str = "value_error",
    ) -> None:
        super().__init__(detail)
        self.field = field
        self.error_type = error_type


class RetryLaterError(DomainError):
    """An answer that carries `Retry-After`: the same request may succeed later."""

    def __init__(self, detail: str | None = None, *, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class RateLimitedError(RetryLaterError):
    status_code = 429
    default_detail = "Too many requests"


class ServiceUnavailableError(RetryLaterError):
    """A dependency this action cannot do without is down: 503 + `Retry-After`."""

    status_code = 503
    default_detail = "Service temporarily unavailable, try again shortly"
