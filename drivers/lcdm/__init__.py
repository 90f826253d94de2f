"""Puloon LCDM-2000 and LCDM-4000 cash dispensers: `frames` is the pure wire codec,
`driver` the host side over any pyserial URL."""
