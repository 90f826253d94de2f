"""QR decoders side by side on a generated corpus of camera-like frames, and
the capture loop's frame rate: the measurement behind drivers/camera's
DEFAULT_ORDER. Run: .venv/bin/python bench/decoders.py [--frames N] [--seed S]

Corpus: frames rendered by simulators.camera at several sizes with blur,
noise, rotation, perspective, glare, dim light, long payloads (Lightning
invoices) and empty frames. Frames are run through every decoder and chain in
turn (frame outer, decoder inner) so load on a shared machine hits all alike.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drivers.camera.decoders import DEFAULT_ORDER, DECODERS, build_chain  # noqa: E402
from drivers.camera.driver import CameraScanner  # noqa: E402
from simulators.camera import CameraSimulator, Scene, render_empty, render_frame  # noqa: E402

PAYLOADS = [
    "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
    "BC1P0XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQZK5JJ0",
    "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2",
    "bitcoin:bc1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3qccfmv3?amount=0.00125&label=Coffee%20Shop",
    "bitcoin:3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy?amount=0.5&message=Invoice%20123",
    "lnbc2500u1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5xysxxatsyp3k7enxv4jsxqzpuaztrnwngzn"
    "3kdzw5hydlzf03qdgm2hdq27cqv3agm2awhz5se903vruatfhq77w3ls4evs3ch9zw97j25emudupq63nyw24cg27h2rspfj9srp",
    "lnbc9678785340p1pwmna7lpp5gc3xfm08u9qy06djf8dfflhugl6p7lgza6dsjxq454gxhj9t7a0sd8dgfkx7cmtwd68yetpd5s9xar0wfjn5g"
    "pc8qhrsdfq24f5ggrxdaezqsnvda3kkum5wfjkzmfqf3jkgem9wgsyuctwdus9xgrcyqcjcgpzgfskx6eqf9hzqnteypzxz7fzypfhg6trddjhy"
    "grcyqezcgpzfysywmm5ypxxjemgw3hxjmn8yptk7untd9hxwg3q2d6xjcmtv4ezq7pqxgsxzmnyyqcjqmt0wfjjq6t5v4khxxqyjw5qcqp2rzjq"
    "0gxwkzc8w6323m55m4jyxcjwmy7stt9hwkwe2qxmy8zpsgg7jcuwz87fcqqeuqqqyqqqqlgqqqqn3qq9qn07ytgrxxzad9hc4xt3mawjjt8znfv"
    "8xzscs7007v9gh9j569lencxa8xeujzkxs0uamak9aln6ez02uunw6rd2ht2sqe4hz8thcdagpleym0j",
    "atmpair:eyJ1cmwiOiJodHRwczovL2Nhcy5leGFtcGxlOjg0NDMiLCJwaW4iOiI0ZjNhYjEyYzlkOGU3ZjZhNWI0YzNkMmUxZjBhOWI4YyIs"
    "InRva2VuIjoiN2Y2ZTVkNGMzYjJhMTkwOCIsIm9wZXJhdG9yIjoiMTIzNDU2Nzg5MGFiY2RlZiJ9",
]
SIZES = [(640, 480)] * 6 + [(1280, 720), (320, 240)]


@dataclass
class Frame:
    image: np.ndarray
    expected: str | None
    label: str


@dataclass
class Tally:
    name: str
    ok: int = 0
    wrong: int = 0
    ms: list[float] = field(default_factory=list)

    def row(self, total: int, expected: int) -> str:
        median = statistics.median(self.ms)
        p90 = sorted(self.ms)[int(0.9 * (len(self.ms) - 1))]
        return (f"| {self.name:<34} | {self.ok:>3}/{expected:<3} | {100 * self.ok / expected:5.1f}% | "
                f"{self.wrong:>5} | {median:7.2f} | {p90:7.2f} | {statistics.fmean(self.ms):7.2f} |")


def make_corpus(count: int, seed: int) -> list[Frame]:
    rng = np.random.default_rng(seed)
    frames: list[Frame] = []
    empties = max(1, count // 10)
    for index in range(count - empties):
        payload = PAYLOADS[index % len(PAYLOADS)]
        width, height = SIZES[int(rng.integers(len(SIZES)))]
        # Each frame draws a few distortions at random strengths, like customers in front of a kiosk.
        scene = Scene(
            code_fraction=float(rng.uniform(0.3, 0.8)),
            center=(float(rng.uniform(0.35, 0.65)), float(rng.uniform(0.4, 0.6))),
            rotation_deg=float(rng.choice([0.0, rng.uniform(-45, 45), rng.uniform(-180, 180)], p=[0.4, 0.4, 0.2])),
            perspective=float(rng.choice([0.0, rng.uniform(0.03, 0.16)])),
            blur_sigma=float(rng.choice([0.0, rng.uniform(0.6, 2.2)], p=[0.5, 0.5])),
            noise_sigma=float(rng.choice([0.0, rng.uniform(4, 26)])),
            glare=float(rng.choice([0.0, rng.uniform(60, 180)], p=[0.7, 0.3])),
            brightness=float(rng.choice([1.0, rng.uniform(0.35, 0.8)], p=[0.7, 0.3])),
            contrast=float(rng.choice([1.0, rng.uniform(0.5, 0.9)], p=[0.6, 0.4])),
            error=str(rng.choice(["l", "m", "q"])),
            seed=int(rng.integers(1 << 30)),
        )
        try:
            image = render_frame(payload, scene, width=width, height=height)
        except ValueError:
            continue
        frames.append(Frame(image, payload, f"{width}x{height} {len(payload)}ch"))
    for index in range(empties):
        width, height = SIZES[index % len(SIZES)]
        frames.append(Frame(render_empty(width=width, height=height, seed=seed + index), None, "empty"))
    return frames


def measure(frames: list[Frame], contenders: dict[str, list[str]]) -> dict[str, Tally]:
    chains = {name: build_chain(order) for name, order in contenders.items()}
    tallies = {name: Tally(name) for name in contenders}
    for frame in frames:
        for name, chain in chains.items():
            started = time.perf_counter()
            result = chain.decode(frame.image)
            tallies[name].ms.append((time.perf_counter() - started) * 1000)
            if result is None:
                continue
            if result.text == frame.expected:
                tallies[name].ok += 1
            else:
                tallies[name].wrong += 1
    return tallies


def loop_rate(order: list[str], seconds: float, fps: float) -> dict[str, float]:
    """Frames per second the capture+decode loop processes at 640x480 while a
    customer shows codes on and off (half the time a code, half an empty view)."""
    with CameraSimulator(name=f"bench-{os.getpid()}-{fps:g}", width=640, height=480) as sim:
        scanner = CameraScanner(sim.source_url, name="bench", fps=fps, decoders=order, dedupe_seconds=0.5)
        codes: list[object] = []
        scanner.open(codes.append)
        scanner.start_scanning()
        stop = threading.Event()
        shows = itertools.cycle([(PAYLOADS[3], "perspective"), (None, None), (PAYLOADS[5], "noise"), (None, None),
                                 (PAYLOADS[0], "blur"), (None, None)])
        started = time.perf_counter()
        before = scanner.stats()
        while time.perf_counter() - started < seconds:
            payload, distortion = next(shows)
            if payload is None:
                sim.clear()
            else:
                sim.present(payload, distortion)
            stop.wait(0.5)
        elapsed = time.perf_counter() - started
        after = scanner.stats()
        scanner.close()
    frames = after["frames"] - before["frames"]
    busy_s = (after["decode_us"] - before["decode_us"]) / 1_000_000
    return {"fps": frames / elapsed, "frames": frames, "busy_share": busy_s / elapsed,
            "decode_ms_per_frame": 1000 * busy_s / max(1, frames),
            "fallback_share": (after["fallback_frames"] - before["fallback_frames"]) / max(1, frames),
            "codes": after["codes"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=160, help="corpus size (default 160, at least 100)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--loop-seconds", type=float, default=6.0)
    args = parser.parse_args(argv)
    if args.frames < 100:
        parser.error("the corpus must have at least 100 frames")

    frames = make_corpus(args.frames, args.seed)
    expected = sum(1 for f in frames if f.expected is not None)
    singles = {name: [name] for name in DECODERS}
    main3 = ["zxing", "pyzbar", "opencv"]
    chains = {"chain " + ",".join(p): list(p) for p in itertools.permutations(main3)}
    chains["chain zxing,pyzbar"] = ["zxing", "pyzbar"]
    chains["chain zxing,pyzbar,opencv_aruco"] = ["zxing", "pyzbar", "opencv_aruco"]
    tallies = measure(frames, {**singles, **chains})

    command = "$ .venv/bin/python bench/decoders.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(command.rstrip())
    print(f"corpus: {len(frames)} frames ({expected} with a code, {len(frames) - expected} empty), seed {args.seed}; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print()
    print("| decoder / chain                    | decoded | rate  | wrong | median ms | p90 ms | mean ms |")
    print("|------------------------------------|---------|-------|-------|-----------|--------|---------|")
    for tally in tallies.values():
        print(tally.row(len(frames), expected))

    best = max((tallies[n] for n in singles), key=lambda t: (t.ok, -statistics.median(t.ms)))
    best_median = statistics.median(best.ms)
    qualifying = [t for n, t in tallies.items() if n in chains and t.ok >= best.ok
                  and statistics.median(t.ms) <= 1.5 * best_median]
    print()
    print(f"best single decoder: {best.name} ({best.ok} decoded, median {best_median:.2f} ms)")
    recommended = max(qualifying, key=lambda t: (t.ok, -statistics.median(t.ms)), default=None)
    if recommended is None:
        print("no chain decodes as many frames as the best decoder within 1.5x its median time: FAIL")
    else:
        print(f"recommended default: {recommended.name} ({recommended.ok} decoded, "
              f"median {statistics.median(recommended.ms):.2f} ms = "
              f"{statistics.median(recommended.ms) / best_median:.2f}x the best single decoder)")
    default = tallies["chain " + ",".join(DEFAULT_ORDER)]
    ratio = statistics.median(default.ms) / best_median
    verdict = "PASS" if default.ok >= best.ok and ratio <= 1.5 else "FAIL"
    print(f"configured DEFAULT_ORDER {','.join(DEFAULT_ORDER)}: {default.ok} decoded vs {best.ok}, "
          f"median {ratio:.2f}x: {verdict}")

    print()
    rate = loop_rate(list(DEFAULT_ORDER), args.loop_seconds, fps=30)
    print(f"capture loop at 640x480, 30 fps requested, codes shown half the time: {rate['fps']:.1f} frames/s "
          f"processed ({rate['frames']} frames in {args.loop_seconds:g} s): "
          f"{'PASS' if rate['fps'] >= 29.0 else 'FAIL'}")
    print(f"  decoding took {rate['decode_ms_per_frame']:.1f} ms per frame on average, the capture thread was busy "
          f"{100 * rate['busy_share']:.0f}% of the time; fallback decoders ran on "
          f"{100 * rate['fallback_share']:.0f}% of frames; {rate['codes']} code reads")
    return 0


if __name__ == "__main__":
    sys.exit(main())
