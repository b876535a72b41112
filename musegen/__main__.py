"""`python -m musegen` (also what `torchrun -m musegen train ...` runs)."""

import sys

from musegen.cli import main

sys.exit(main())
