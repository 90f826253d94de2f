"""Camera QR scanner: OpenCV capture in its own thread, a configurable decoder
chain (zxing-cpp, pyzbar, OpenCV), region of interest and de-duplication.
Sources are camera indexes, files, stream URLs, or `sim://NAME` frame sources
that simulators register through `register_sim_source`."""

from drivers.camera.capture import (
    FrameSource,
    open_source,
    register_sim_source,
    registered_sim_sources,
    unregister_sim_source,
)
from drivers.camera.decoders import DEFAULT_ORDER, DECODERS, Decoded, DecoderChain, build_chain
from drivers.camera.driver import CameraScanner

__all__ = [
    "CameraScanner",
    "DECODERS",
    "DEFAULT_ORDER",
    "Decoded",
    "DecoderChain",
    "FrameSource",
    "build_chain",
    "open_source",
    "register_sim_source",
    "registered_sim_sources",
    "unregister_sim_source",
]
