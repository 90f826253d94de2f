"""Typed errors shared by drivers and the application. Messages name the port,
frame, file or key that was wrong and what was expected, so a technician can act."""


class DeviceError(Exception):
    """A device could not do what was asked."""


class PortError(DeviceError):
    """The port (a pyserial URL) did not open or went away."""


class DeviceTimeout(DeviceError):
    """The device did not answer in time."""


class ProtocolError(DeviceError):
    """Bytes on the wire were not a valid frame or message (bad CRC, length, sync, code)."""


class ConfigurationError(Exception):
    """Configuration is wrong: names the file, the key and what was expected."""
