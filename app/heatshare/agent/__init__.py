"""The heater-server service: its composition root, its loops and its local API.

Nothing here imports Qt; the app knows the agent only through ``heatshare.protocol``.
"""
