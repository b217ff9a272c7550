"""Schemas shared by slices: the pagination envelope and its query parameters."""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel

from src.infrastructure.config import settings

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """The envelope of every list endpoint."""

    data: list[T]
    total_count: int
    has_more: bool
    page: int
    items_per_page: int


class PageParams(BaseModel):
    page: int
    items_per_page: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.items_per_page


async def _page_params(
    page: Annotated[int, Query(ge=1, le=1_000_000, description="1-based page number")] = 1,
    items_per_page: Annotated[
        int, Query(ge=1, le=settings.MAX_PAGE_SIZE, description="Page size (capped)")
    ] = settings.DEFAULT_PAGE_SIZE,
) -> PageParams:
    return PageParams(page=page, items_per_page=items_per_page)


# Dependencies are `async def`: FastAPI runs a plain `def` dependency in a worker thread, a
# thread hop on every request that uses it (seen in the list route's profile).
Pagination = Annotated[PageParams, Depends(_page_params)]


def build_page(rows: list[Any], total_count: int, params: PageParams) -> dict[str, Any]:
    """The `Page` envelope as a dict; the route's `response_model` validates and serialises it."""
    return {
        "data": rows,
        "total_count": total_count,
        "has_more": params.offset + len(rows) < total_count,
        "page": params.page,
        "items_per_page": params.items_per_page,
    }
