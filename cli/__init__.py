"""The ``fraud`` command: the top layer, which may import every other package of the project."""
