"""The shared status vocabulary, in XFS4IoT's words, so that operators and
engineers from the ATM world read our logs and service screens without a key."""

from enum import Enum


class DeviceState(str, Enum):
    """What a device can do right now."""

    ONLINE = "online"
    OFFLINE = "offline"              # not answering on its port
    HARDWARE_ERROR = "hardwareError" # jam, failure code, sensor fault
    USER_ERROR = "userError"         # something a person must fix: cashbox out, paper out
    BUSY = "busy"
    FRAUD_ATTEMPT = "fraudAttempt"
    STARTING = "starting"


class UnitStatus(str, Enum):
    """State of one storage unit: a cassette, a cashbox, a paper roll."""

    OK = "ok"
    LOW = "low"
    EMPTY = "empty"
    HIGH = "high"
    FULL = "full"
    MISSING = "missing"
    INOPERATIVE = "inoperative"
    MANIPULATED = "manipulated"


class Completion(str, Enum):
    """How a command ended: every command ends in exactly one of these."""

    SUCCESS = "success"
    TIMEOUT = "timeOut"
    HARDWARE_ERROR = "hardwareError"
    USER_ERROR = "userError"
    CANCELED = "canceled"
    FRAUD_ATTEMPT = "fraudAttempt"


class PaperState(str, Enum):
    """Receipt paper as far as the printer can tell. UNKNOWN is never taken as OK."""

    OK = "ok"
    NEAR_END = "nearEnd"
    OUT = "out"
    UNKNOWN = "unknown"
