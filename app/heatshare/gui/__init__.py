"""The desktop app (Qt only). It knows the agent only through ``heatshare.protocol``."""
