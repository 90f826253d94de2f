"""JCM ID-003 bill validators (iVIZION, UBA, iPRO, WBA...): codec in frames.py, host driver in driver.py."""
