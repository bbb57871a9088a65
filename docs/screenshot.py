"""Retake the README's screenshot of the Prefect UI (needs `make serve` running).

    python docs/screenshot.py --url http://127.0.0.1:4200 --out docs/prefect-ui.png

Uses Debian's headless Chromium (`apt-get install chromium`); the flags keep it off the
network (this machine has none) and give the single-page app time to render.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.cdp import OFFLINE_FLAGS  # noqa: E402 -- the browser tests' offline flags


def screenshot(url: str, out: str, width: int = 1500, height: int = 1300, budget_ms: int = 60000) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        sys.exit("no Chromium found: apt-get install chromium")
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                browser,
                *OFFLINE_FLAGS,
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                "--run-all-compositor-stages-before-draw",
                f"--virtual-time-budget={budget_ms}",
                f"--screenshot={out}",
                url,
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:4200")
    parser.add_argument("--path", default="/runs", help="UI page, e.g. /runs or /deployments")
    parser.add_argument("--out", default="docs/prefect-ui.png")
    parser.add_argument("--height", type=int, default=1300)
    args = parser.parse_args()
    screenshot(args.url.rstrip("/") + args.path, args.out, height=args.height)
    print(f"wrote {args.out}")
