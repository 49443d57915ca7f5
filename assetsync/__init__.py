"""``assetsync``: the one command of the project (``python -m assetsync`` too)."""
