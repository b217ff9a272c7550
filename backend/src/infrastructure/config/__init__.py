"""Settings: `from src.infrastructure.config import settings`."""

from src.infrastructure.config.settings import Environment, Settings, mask_url, settings

__all__ = ["Environment", "Settings", "mask_url", "settings"]
