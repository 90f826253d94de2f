"""The customer screen (and, in simulate mode, the device control panel): a local
web page served on loopback, fed over a WebSocket by the kiosk state machine."""
