"""``python -m bench.fleet``: see bench/fleet/run.py and docs/fleet.md."""

import sys

from bench.fleet.run import main

if __name__ == "__main__":
    sys.exit(main())
