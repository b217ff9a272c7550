import pytest
from pydantic import ValidationError

from src.modules.user.schemas import UserCreate, UserRead, UserUpdate

VALID = {
    "name": "Alice",
    "username": "alice",
    "email": "alice@example.com",
    "password": "Quill-Harbor-Velvet-42",
}


def _error_fields(exc: ValidationError) -> set[str]:
    return {str(error["loc"][0]) for error in exc.errors()}


@pytest.mark.unit
def test_email_and_username_are_normalised_to_lower_case():
    user = UserCreate(**{**VALID, "username": "Alice_B", "email": "Alice@Example.COM"})
    assert user.username == "alice_b"
    assert user.email == "alice@example.com"


@pytest.mark.unit
@pytest.mark.parametrize(
    "username",
    ["ab", "a" * 31, "has space", "semi;colon", "_leading", "trailing.", "me", "ADMIN"],
)
def test_bad_usernames_are_refused(username):
    with pytest.raises(ValidationError) as caught:
        UserCreate(**{**VALID, "username": username})
    assert _error_fields(caught.value) == {"username"}


@pytest.mark.unit
@pytest.mark.parametrize(
    "password",
    ["short1!", "allletters", "12345678901", " Pass1234 ", "P@ssw0rd", "x-Alice-9q!Zr"],
)
def test_weak_passwords_are_refused(password):
    with pytest.raises(ValidationError) as caught:
        UserCreate(**{**VALID, "password": password})
    assert _error_fields(caught.value) == {"password"}
    assert {error["type"] for error in caught.value.errors()} == {"password_policy"}


@pytest.mark.unit
@pytest.mark.parametrize(
    ("model", "field", "password", "rule"),
    [
        (UserCreate, "username", "Zq7-Kestrel-Kt9!x", "must not contain the username"),
        (UserCreate, "email", "Zq7-Finch-Kt9!xw", "must not contain the email address"),
        (UserCreate, "name", "Marigold2019!", "too easy to guess (it is built on your name"),
        # An update carries no email (it changes through the confirmed flow).
        (UserUpdate, "username", "Zq7-Kestrel-Kt9!x", "must not contain the username"),
        (UserUpdate, "name", "Marigold2019!", "too easy to guess (it is built on your name"),
    ],
)
def test_the_password_is_checked_against_the_other_fields(model, field, password, rule):
    """The policy sees the username, email and name of the same payload: `password` is
    declared after them (pydantic validates in declaration order)."""
    account = {"username": "kestrel", "email": "finch@example.com", "name": "Marigold Jones"}
    assert UserCreate(**{**VALID, "password": password})  # strong for someone else
    payload = {**VALID, **account, "password": password}
    if model is UserUpdate:
        del payload["email"]
    with pytest.raises(ValidationError) as caught:
        model(**payload)
    [error] = caught.value.errors()
    assert error["loc"] == ("password",)
    assert error["msg"].startswith(f"password: {rule}")
    assert password not in error["msg"]


@pytest.mark.unit
def test_update_without_a_password_runs_no_policy():
    assert UserUpdate(password=None, name="Bob").password is None


@pytest.mark.unit
def test_sign_up_cannot_set_privileged_fields():
    with pytest.raises(ValidationError) as caught:
        UserCreate(**VALID, is_superuser=True)
    assert _error_fields(caught.value) == {"is_superuser"}


@pytest.mark.unit
def test_update_is_partial():
    assert UserUpdate(name="Bob").model_dump(exclude_unset=True) == {"name": "Bob"}


@pytest.mark.unit
def test_read_schema_has_no_password_field():
    assert not {"password", "hashed_password"} & set(UserRead.model_fields)
