"""``python -m benchmarks``: run every benchmark (see benchmarks/run.py and README.md)."""

import sys

from benchmarks.run import main

sys.exit(main())
