"""``python -m heatshare.gui``: the desktop app, as the ``heatshare`` script starts it."""

from heatshare.gui.main import main

raise SystemExit(main())
