"""``python -m streaming``: the stream scorer (``fraud stream`` runs the same code)."""

import sys

from streaming.main import main

if __name__ == "__main__":
    sys.exit(main())
