"""Imports every procedure module so each registers itself with core.register."""

# Each module calls core.register(...) at import time.
