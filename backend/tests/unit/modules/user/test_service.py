from unittest.mock import AsyncMock

import pytest

from src.modules.audit.context import SYSTEM
from src.modules.common.exceptions import DuplicateValueError, ResourceNotFoundError
from src.modules.user.service import UserService
from tests.helpers.factories import make_principal


@pytest.mark.unit
async def test_get_by_id_returns_user(mocker):
    mock_crud = mocker.patch("src.modules.user.service.crud_users")
    mock_crud.get = AsyncMock(return_value={"id": 1, "username": "alice"})

    user = await UserService().get_by_id(user_id=1, db=AsyncMock())

    assert user["username"] == "alice"
    mock_crud.get.assert_awaited_once()


@pytest.mark.unit
async def test_get_by_id_raises_when_missing(mocker):
    mock_crud = mocker.patch("src.modules.user.service.crud_users")
    mock_crud.get = AsyncMock(return_value=None)

    with pytest.raises(ResourceNotFoundError):
        await UserService().get_by_id(user_id=999, db=AsyncMock())


PAYLOAD = {
    "name": "Alice",
    "username": "Alice",
    "email": "Alice@Example.com",
    "password": "Quiet-Lantern-Orbit-42",
}


@pytest.mark.unit
async def test_create_refuses_a_taken_email_before_hashing(mocker):
    mock_crud = mocker.patch("src.modules.user.service.crud_users")
    mock_crud.exists = AsyncMock(side_effect=[True])
    hasher = mocker.patch("src.modules.user.service.hash_password")

    with pytest.raises(DuplicateValueError, match="email"):
        await UserService().create(payload=PAYLOAD, db=AsyncMock())

    mock_crud.exists.assert_awaited_once()
    assert mock_crud.exists.await_args.kwargs["email"] == "alice@example.com"
    hasher.assert_not_called()
    mock_crud.create.assert_not_called()


@pytest.mark.unit
async def test_create_refuses_a_taken_username(mocker):
    mock_crud = mocker.patch("src.modules.user.service.crud_users")
    mock_crud.exists = AsyncMock(side_effect=[False, True])

    with pytest.raises(DuplicateValueError, match="username"):
        await UserService().create(payload=PAYLOAD, db=AsyncMock())


@pytest.mark.unit
async def test_create_stores_a_hash_never_the_password(mocker):
    mock_crud = mocker.patch("src.modules.user.service.crud_users")
    mock_crud.exists = AsyncMock(return_value=False)
    stored = {
        "id": 7,
        "name": "Alice",
        "username": "alice",
        "email": "alice@example.com",
        "is_superuser": False,
        "tier_id": 3,
        "is_verified": False,
        "created_at": "2026-01-01T00:00:00Z",
        "hashed_password": "$argon2id$...",
    }
    mock_crud.create = AsyncMock(return_value=stored)
    mocker.patch("src.modules.user.service.TierService.ensure_default", AsyncMock(return_value=3))
    db = AsyncMock()

    user = await UserService().create(payload=PAYLOAD, db=db)

    assert user["id"] == 7
    assert "hashed_password" not in user  # only what UserRead shows
    row = mock_crud.create.await_args.args[1]
    assert row.username == "alice"
    assert row.email == "alice@example.com"
    assert row.tier_id == 3
    assert row.hashed_password.startswith("$argon2id$")
    assert "Quiet-Lantern-Orbit-42" not in row.model_dump_json()
    db.commit.assert_awaited_once()


@pytest.mark.unit
async def test_update_of_someone_else_needs_a_superuser(mocker):
    from src.modules.common.exceptions import ForbiddenError
    from src.modules.user.schemas import UserUpdate

    mock_crud = mocker.patch("src.modules.user.service.crud_users")
    mock_crud.get = AsyncMock(return_value={"id": 2, "username": "bob", "email": "b@x.io"})
    actor = make_principal(id=1, is_superuser=False)

    with pytest.raises(ForbiddenError):
        await UserService().update(
            username="bob",
            payload=UserUpdate(name="Eve"),
            actor=actor,
            db=AsyncMock(),
            audit=SYSTEM,
        )
    mock_crud.update.assert_not_called()
