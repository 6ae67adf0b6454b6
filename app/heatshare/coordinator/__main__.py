"""``python -m heatshare.coordinator``: how the agent starts the demo network."""

from heatshare.coordinator.cli import main

raise SystemExit(main())
