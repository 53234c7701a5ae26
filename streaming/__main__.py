"""``python -m streaming``: the stream scorer (``fraud stream`` runs the same code)."""

import sys

from streaming.main import main

sys.exit(main())
