"""CashCode ccNet bill validators: codec (frames.py) and host driver (driver.py)."""
