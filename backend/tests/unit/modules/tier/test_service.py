from unittest.mock import AsyncMock

import pytest

from src.infrastructure.config import settings
from src.modules.audit.context import SYSTEM
from src.modules.common.exceptions import (
    ConflictError,
    DuplicateValueError,
    ResourceNotFoundError,
)
from src.modules.common.schemas import PageParams
from src.modules.tier.schemas import TierCreate
from src.modules.tier.service import TierService


@pytest.mark.unit
async def test_get_by_name_raises_when_missing(mocker):
    mock_crud = mocker.patch("src.modules.tier.service.crud_tiers")
    mock_crud.get = AsyncMock(return_value=None)
    with pytest.raises(ResourceNotFoundError):
        await TierService().get_by_name(name="gold", db=AsyncMock())


@pytest.mark.unit
async def test_create_refuses_duplicate_names(mocker):
    mock_crud = mocker.patch("src.modules.tier.service.crud_tiers")
    mock_crud.exists = AsyncMock(return_value=True)
    with pytest.raises(DuplicateValueError):
        await TierService().create(payload=TierCreate(name="pro"), db=AsyncMock(), audit=SYSTEM)
    mock_crud.create.assert_not_called()


@pytest.mark.unit
async def test_default_tier_cannot_be_deleted(mocker):
    mock_crud = mocker.patch("src.modules.tier.service.crud_tiers")
    mock_crud.get = AsyncMock(return_value={"id": 1, "name": settings.DEFAULT_TIER_NAME})
    with pytest.raises(ConflictError):
        await TierService().delete(name=settings.DEFAULT_TIER_NAME, db=AsyncMock(), audit=SYSTEM)
    mock_crud.db_delete.assert_not_called()


@pytest.mark.unit
async def test_ensure_default_reuses_an_existing_tier(mocker):
    mock_crud = mocker.patch("src.modules.tier.service.crud_tiers")
    mock_crud.get = AsyncMock(return_value={"id": 5, "name": settings.DEFAULT_TIER_NAME})
    assert await TierService().ensure_default(db=AsyncMock()) == 5
    mock_crud.create.assert_not_called()


@pytest.mark.unit
@pytest.mark.parametrize(
    ("page", "size", "total", "rows", "has_more"),
    [(1, 2, 5, 2, True), (3, 2, 5, 1, False), (1, 10, 0, 0, False), (2, 2, 4, 2, False)],
)
async def test_list_builds_the_pagination_envelope(mocker, page, size, total, rows, has_more):
    mock_crud = mocker.patch("src.modules.tier.service.crud_tiers")
    data = [{"id": i, "name": f"t{i}"} for i in range(rows)]
    mock_crud.get_multi = AsyncMock(return_value={"data": data, "total_count": total})

    result = await TierService().list(
        params=PageParams(page=page, items_per_page=size), db=AsyncMock()
    )

    assert result == {
        "data": data,
        "total_count": total,
        "has_more": has_more,
        "page": page,
        "items_per_page": size,
    }
    assert mock_crud.get_multi.await_args.kwargs["offset"] == (page - 1) * size
