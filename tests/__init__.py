"""The test suite: helpers are imported as ``tests.<module>`` (``tests/reference.py`` holds the oracles)."""
