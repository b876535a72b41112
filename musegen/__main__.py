"""`python -m musegen` (also what `torchrun -m musegen train ...` runs)."""

import sys

from musegen.cli import main

if __name__ == "__main__":  # not in a worker process that imports this module again
    sys.exit(main())
