"""Start the musegen web demo (the same as `musegen demo`).

python demo/app.py [--host 127.0.0.1] [--port 7860]
"""

from __future__ import annotations

import sys

from musegen.cli import main

if __name__ == "__main__":
    sys.exit(main(["demo", *sys.argv[1:]]))
