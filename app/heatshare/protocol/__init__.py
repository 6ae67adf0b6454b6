"""The wire APIs the three programs share: pydantic models, a version, and the local client."""

PROTOCOL_VERSION = 1
