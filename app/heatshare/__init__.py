"""Heatshare: a home computer as a heater that earns."""

from heatshare.__about__ import __version__

__all__ = ["__version__"]
