"""``python -m heatshare.agent``: how the app starts an agent (detached)."""

from heatshare.agent.cli import main

raise SystemExit(main())
