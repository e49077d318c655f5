"""What subnormal floats cost a trained autoencoder's training steps, with and without the flag.

    .venv/bin/python bench/denormals.py MEDIA/generators/NAME/checkpoint/state.pt [--steps 3]

Each case runs in a fresh process, because torch's intra-op threads copy the flush-to-zero
flag when they start (generation.ldm.precision.flush_denormals): `off` never sets it, `late`
sets it after a first parallel operation (the worker threads keep subnormals), `early` sets it
before torch starts its threads, as the commands do. Each process loads the checkpoint's
autoencoder and optimiser, takes one batch of 64 crops of 48 px from the PCam train tiles, and
times --steps training steps (forward, backward, AdamW) in fp32. The table gives the seconds a
step and the weight gradients that were subnormal after the last one.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CASE = """
import sys, time
import numpy as np, torch
from pathlib import Path
from PIL import Image
sys.path.insert(0, {root!r})
from generation.ldm.config import GeneratorConfig
from generation.ldm.models import build_autoencoder
from generation.ldm.objectives import AutoencoderLoss
from generation.ldm.precision import flush_denormals
torch.set_num_threads({threads})
if {case!r} == "early":
    flush_denormals()
torch.ones(1 << 20).mul(2).sum()  # torch starts its threads here
if {case!r} == "late":
    flush_denormals()
state = torch.load({state!r}, map_location="cpu", weights_only=False)
config = GeneratorConfig.from_json(state["config"])
vae = build_autoencoder(config)
vae.load_state_dict(state["vae"])
opt = torch.optim.AdamW(vae.parameters(), lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0)
opt.load_state_dict(state["vae_opt"])
files = sorted(Path({pcam!r}).glob("*/*.jpg"))[:64]
tiles = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
x = torch.tensor(tiles).permute(0, 3, 1, 2).float()[..., :48, :48].contiguous() / 127.5 - 1
loss = AutoencoderLoss.of(vae, config)
seconds = []
for _ in range({steps}):
    started = time.perf_counter()
    opt.zero_grad()
    loss(x).backward()
    opt.step()
    seconds.append(time.perf_counter() - started)
tiny = torch.finfo(torch.float32).tiny
grads = [p.grad for p in vae.parameters()]
sub = sum(int(((g != 0) & (g.abs() < tiny)).sum()) for g in grads)
print(min(seconds), sub, sum(g.numel() for g in grads), state["vae_step"])
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("state", type=Path, help="a generator's checkpoint/state.pt")
    parser.add_argument("--pcam", type=Path, default=ROOT.parent / "shared" / "pcam" / "train")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if not args.state.is_file():
        raise SystemExit(f"{args.state}: no such checkpoint")
    rows = []
    for case in ("off", "late", "early"):
        code = CASE.format(root=str(ROOT), case=case, threads=args.threads, state=str(args.state),
                           pcam=str(args.pcam), steps=args.steps)  # fmt: skip
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if out.returncode:
            raise SystemExit(f"case {case}: {out.stderr.strip().splitlines()[-1]}")
        seconds, sub, total, step = out.stdout.split()
        rows.append((case, float(seconds), int(sub), int(total), int(step)))
    print(f"{platform.node()}, {args.threads} threads, {datetime.now(UTC):%Y-%m-%d}, "
          f"checkpoint after {rows[0][4]} autoencoder steps")  # fmt: skip
    print(f"{'flush':<8} {'s/step':>7} {'subnormal grads':>16} {'x early':>8}")
    early = rows[-1][1]
    for case, seconds, sub, total, _ in rows:
        print(f"{case:<8} {seconds:7.2f} {sub:>7} of {total:<7} {seconds / early:6.2f}")


if __name__ == "__main__":
    main()
