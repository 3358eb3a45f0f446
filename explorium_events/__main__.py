"""``python -m explorium_events``: the same command line as ``explorium-events``."""

import sys

from explorium_events.cli import main

if __name__ == "__main__":
    sys.exit(main())
