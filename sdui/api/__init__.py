"""The AUTOMATIC1111-compatible REST API (/sdapi/v1): an adapter from JSON to the job queue and back."""

from sdui.api.auth import warn_if_exposed
from sdui.api.routes import mount_api

__all__ = ["mount_api", "warn_if_exposed"]
