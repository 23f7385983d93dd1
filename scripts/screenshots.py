"""Screenshots of the reviewer UI for the README: runs `bastion demo` on a small simulated platform (it serves the
UI afterwards), logs in as the demo's admin in Chromium (Playwright) and saves the queue, a case page, an entity
page and the dashboard as PNGs under docs/img/.

    python scripts/screenshots.py [--users 1500] [--days 1] [--out docs/img]

Needs Chromium at /usr/bin/chromium (apt-get install -y chromium) and the playwright package. Each PNG is reduced
to a 256-colour palette so it stays small (the script fails if one is over --max-kb).
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_password(log: Path, proc: subprocess.Popen[bytes], timeout: float) -> str:
    """The demo prints the admin's one-time password once it is about to serve."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        m = re.search(r"as admin with password\s+(\S+)", log.read_text(errors="replace"))
        if m:
            return m.group(1)
        if proc.poll() is not None:
            raise SystemExit(f"bastion demo exited with {proc.returncode}; its log:\n{log.read_text()[-3000:]}")
        time.sleep(1)
    raise SystemExit(f"no admin password from bastion demo after {timeout:.0f}s; log in {log}")


def _wait_for_http(url: str, timeout: float = 60) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 - the local http URL built above
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"{url} did not answer within {timeout:.0f}s")


def _shrink(path: Path) -> int:
    from PIL import Image

    im = Image.open(path).convert("RGB")
    im.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    return path.stat().st_size


def shoot(base: str, password: str, out: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    shots: list[Path] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1280, "height": 820})
        page.set_default_timeout(30_000)
        page.goto(f"{base}/ui/login")
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", password)
        page.click("#login")
        page.wait_for_selector("#queue")

        def snap(name: str) -> None:
            path = out / f"ui-{name}.png"
            page.screenshot(path=str(path))
            shots.append(path)

        snap("queue")
        page.keyboard.press("j")
        page.keyboard.press("Enter")
        page.wait_for_selector("#decide")
        snap("case")
        page.locator("h1 a").first.click()
        page.wait_for_load_state("networkidle")
        snap("entity")
        page.goto(f"{base}/ui/dashboard")
        page.wait_for_load_state("networkidle")
        snap("dashboard")
        browser.close()
    return shots


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=1500)
    ap.add_argument("--days", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    ap.add_argument("--max-kb", type=int, default=300)
    args = ap.parse_args()
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is missing: apt-get install -y chromium")
    port = _free_port()
    work = Path(tempfile.mkdtemp(prefix="bastion-screenshots-"))
    log = work / "demo.log"
    env = {**os.environ, "BASTION_PORT": str(port), "BASTION_HOST": "127.0.0.1"}
    cmd = [sys.executable, "-m", "bastion.cli", "demo", "--users", str(args.users), "--days", str(args.days),
           "--seed", str(args.seed), "--out", str(work / "demo")]
    print(f"running {' '.join(cmd[2:])} (log {log}) ...", file=sys.stderr)
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
    try:
        password = _wait_for_password(log, proc, timeout=1200)
        base = f"http://127.0.0.1:{port}"
        _wait_for_http(f"{base}/ui/login")
        for path in shoot(base, password, args.out):
            kb = _shrink(path) / 1024
            print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: {kb:.0f} KB")
            if kb > args.max_kb:
                raise SystemExit(f"{path} is {kb:.0f} KB, over --max-kb {args.max_kb}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    main()
