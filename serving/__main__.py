"""``python -m serving``: the model server's one entry point (the image and the InferenceService run it)."""

import sys

from serving.main import main

if __name__ == "__main__":
    sys.exit(main())
