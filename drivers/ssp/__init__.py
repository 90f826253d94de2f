"""ITL SSP / eSSP note validators (NV9, NV10, NV200, SMART Payout note side).

`frames` is the pure wire codec, `crypto` the eSSP layer, `driver` the host side that
implements hal.BillValidator; simulators.ssp reuses the first two for the device side.
"""
