"""The bundle's one executable: it runs the program it is named as.

The bundle holds ``heatshare`` and, beside it, ``heatshare-agent`` and
``heatshare-coordinator`` as links to it; one interpreter and one copy of the libraries
serve all three.
"""

import sys
from pathlib import Path


def main() -> int:
    name = Path(sys.argv[0]).name.removesuffix(".exe")
    if name == "heatshare-agent":
        from heatshare.agent.cli import main as program
    elif name == "heatshare-coordinator":
        from heatshare.coordinator.cli import main as program
    else:
        from heatshare.gui.main import main as program
    return program()


if __name__ == "__main__":
    raise SystemExit(main())
