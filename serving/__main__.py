"""``python -m serving``: the model server's one entry point (``fraud serve`` and the image run this)."""

import sys

from serving.server import main

if __name__ == "__main__":
    sys.exit(main())
