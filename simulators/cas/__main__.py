"""`python -m simulators.cas`: run the CAS simulator on 127.0.0.1 for manual testing,
with an operator key, a paired kiosk state dir and bundle version 1, until Ctrl-C.

Try `atm cas check` against it (the printed config file), optionally with --hostile.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from simulators.cas.harness import SimulatedOperator
from simulators.cas.server import HOSTILE_MODES


async def serve(workdir: Path, kiosk_id: str, hostile: list[str]) -> None:
    async with SimulatedOperator(workdir, kiosk_id=kiosk_id) as op:
        config = workdir / "kiosk.toml"
        config.write_text(f'[cas]\nstate_dir = "{op.state_dir}"\n', "utf-8")
        op.cas.set_hostile(*hostile)
        print(f"CAS simulator at {op.cas.url}  pin {op.cas.pin}")
        print(f"operator key:     {op.operator_key_path}")
        print(f"paired kiosk:     {op.state_dir} (kiosk id {kiosk_id})")
        print(f"check it with:    atm cas check --config {config}")
        print(f"hostile modes:    {', '.join(hostile) or 'none'}  (Ctrl-C to stop)", flush=True)
        await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m simulators.cas", description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, help="where keys and state go (default: a new temporary dir)")
    parser.add_argument("--kiosk-id", default="kiosk-1")
    parser.add_argument("--hostile", action="append", default=[], choices=HOSTILE_MODES)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="cas-sim-"))
    try:
        asyncio.run(serve(workdir, args.kiosk_id, args.hostile))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
