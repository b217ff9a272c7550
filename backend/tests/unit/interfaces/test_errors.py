"""Domain errors become `{"detail": ...}` JSON; a 422 about one field looks like a validation
error of that field."""

import json

import pytest
from starlette.requests import Request

from src.interfaces.errors import domain_error_handler
from src.modules.common.exceptions import InvalidValueError


async def _answer(exc: Exception) -> tuple[int, object]:
    response = await domain_error_handler(Request({"type": "http", "headers": []}), exc)
    return response.status_code, json.loads(bytes(response.body))


@pytest.mark.unit
async def test_an_invalid_value_of_a_field_is_answered_like_a_validation_error():
    error = InvalidValueError(
        "password: too common", field="password", error_type="password_policy"
    )

    assert await _answer(error) == (
        422,
        {
            "detail": [
                {
                    "loc": ["body", "password"],
                    "msg": "password: too common",
                    "type": "password_policy",
                }
            ]
        },
    )


@pytest.mark.unit
async def test_an_invalid_value_of_no_field_is_a_plain_detail():
    assert await _answer(InvalidValueError()) == (
        422,
        {"detail": "A value in the request is invalid"},
    )
