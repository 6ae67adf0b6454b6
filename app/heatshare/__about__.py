"""Name, application id and version: the single source the package, CLI and installers read."""

__app_name__ = "Heatshare"
__app_id__ = "org.heatshare.Heatshare"
__version__ = "0.1.0"
__author__ = "Heatshare"
# The systemd unit the Linux packages install for the agent as a system service; the app's
# "Keep heating when nobody is logged in" turns it on and off by this name.
__agent_unit__ = "heatshare-agent@.service"  # a template: one instance per user
