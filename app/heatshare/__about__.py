"""Name, application id and version: the single source the package, CLI and installers read."""

__app_name__ = "Heatshare"
__app_id__ = "org.heatshare.Heatshare"
__version__ = "0.1.0"
__author__ = "Heatshare"
