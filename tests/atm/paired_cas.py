"""A kiosk CAS state folder paired with a CAS simulator that is no longer running, for
tests of a real (non-simulated) kiosk's start-up: pairing exists, the CAS is away."""

from __future__ import annotations

from pathlib import Path

from simulators.cas.harness import SimulatedOperator


async def paired_cas_state(workdir: Path, kiosk_id: str = "kiosk-1") -> Path:
    """Pair a kiosk with a fresh CAS simulator, stop the simulator; the kiosk's CAS state dir."""
    operator = SimulatedOperator(workdir / "operator-side", kiosk_id=kiosk_id)
    await operator.start()
    await operator.stop()
    return operator.state_dir
