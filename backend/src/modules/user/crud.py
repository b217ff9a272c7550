from __future__ import annotations

from typing import Any

from fastcrud import FastCRUD

from src.modules.user.models import User

crud_users: FastCRUD[User, Any, Any, Any, Any, Any] = FastCRUD(User)
