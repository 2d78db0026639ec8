"""Fit the signal critic's natural-scene reference on the pristine photographs here.

    .venv/bin/python -m tools.signal_quality.fit            # rewrites natural_scene.json
    .venv/bin/python -m tools.signal_quality.fit --check    # exit 1 if it would change

Every pristine picture (``pristine/*.png``: grey, sharp, uncompressed natural
photographs; sources and licences in README.md) is measured with the very
functions the critic runs on video frames (:mod:`lift.services.critic.backends.signal.quality`),
and the median over pictures of each absolute measure becomes its zero point
(evidence 0 = as good as a pristine photograph). Deterministic: same pictures,
same code -> same bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
from pathlib import Path

import cv2
import numpy as np

from lift.services.critic.backends.signal import quality
from lift.services.critic.backends.signal.fidelity import NATURAL_SCENE

PRISTINE = Path(__file__).resolve().parent / "pristine"
NOISE_SIDES = (96, 128, 192, 256, 384, 512)
"""Long sides (px) the pristine noise floor is also read at: a smaller picture packs its
texture into fewer pixels, so even its flattest pixels hold texture that reads as noise."""


def measure(gray: np.ndarray) -> dict[str, float]:
    """The absolute measures of one grey picture, as the critic reads a frame."""
    fine = quality.fine_frame(gray)
    detail = quality.curvature(fine)
    steps = quality.slope(fine)
    return {
        "edge_width": quality.edge_width(fine, steps),
        "smear": quality.smear(fine, detail),
        "noise_sigma": quality.noise_sigma(detail, steps),
    }


def fit(paths: list[Path]) -> dict[str, object]:
    """The reference document for ``paths`` (sorted by name)."""
    per: dict[str, dict[str, float]] = {}
    digest = hashlib.sha256()
    for p in sorted(paths, key=lambda q: q.name):
        data = p.read_bytes()
        digest.update(p.name.encode() + b"\0" + data)
        gray = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
        if gray is None:
            raise ValueError(f"{p} is not an image")
        per[p.stem] = {k: round(v, 6) for k, v in measure(gray).items()}
    if not per:
        raise ValueError("no pristine pictures to fit on")
    floors = {}
    for side in NOISE_SIDES:
        vals = []
        for p in sorted(paths, key=lambda q: q.name):
            gray = cv2.imdecode(np.frombuffer(p.read_bytes(), np.uint8), cv2.IMREAD_GRAYSCALE)
            if gray is None:
                raise ValueError(f"{p} is not an image")
            k = side / max(gray.shape)
            if k < 1:
                gray = cv2.resize(gray, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
            vals.append(measure(gray)["noise_sigma"])
        floors[str(side)] = round(statistics.median(vals), 6)
    keys = next(iter(per.values())).keys()
    return {
        "about": "Pristine reference of the signal critic's absolute picture measures; "
        "written by python -m tools.signal_quality.fit (see tools/signal_quality/README.md).",
        "inputs_sha256": digest.hexdigest(),
        "pristine": {k: round(statistics.median(v[k] for v in per.values()), 6) for k in keys},
        "per_picture": per,
        "noise_floor_by_side": floors,
    }


def render(doc: dict[str, object]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare with the file")
    parser.add_argument("--out", type=Path, default=NATURAL_SCENE)
    args = parser.parse_args()
    text = render(fit(sorted(PRISTINE.glob("*.png"))))
    if args.check:
        same = args.out.exists() and args.out.read_text() == text
        print(f"{args.out}: {'up to date' if same else 'OUT OF DATE'}")
        sys.exit(0 if same else 1)
    args.out.write_text(text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
