"""Settings: `from src.infrastructure.config import settings`."""

from src.infrastructure.config.settings import Environment, Settings, settings

__all__ = ["Environment", "Settings", "settings"]
