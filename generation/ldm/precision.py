"""Which precision is fast here: one rule for the generator, the classifiers and sampling."""

from __future__ import annotations

import functools
import time

import torch

# bf16 must beat fp32 by this factor on the probe to be chosen: a marginal gain is not worth
# bf16's coarser arithmetic, and a probe disturbed by a moment's load should not flip the answer
BF16_MIN_SPEEDUP = 1.2


def flush_denormals() -> bool:
    """Treat subnormal floats (below 1.2e-38) as zero on this CPU (FTZ and DAZ). Late in
    training a few gradients and activations fall that low, and x86 cores are far slower on
    each: the cpu preset's fp32 autoencoder steps took 2.5x as long after 580 steps without
    the flag (bench/denormals.py, docs/BENCHMARKS.md). Call it before torch's first parallel
    operation: its intra-op threads copy the flag when they start and never read it again.
    False where the CPU has no such flag (torch.set_flush_denormal)."""
    return bool(torch.set_flush_denormal(True))


def resolve_precision(setting: str, cuda: bool) -> str:
    """`auto` -> bf16 where it is fast, else "no" (fp32). Fast: a GPU that has it, a CPU with
    AMX matrix units (bf16 convolutions several times faster than fp32), or another CPU with
    AVX-512 where a short probe finds bf16 at least BF16_MIN_SPEEDUP times faster
    (an AMD EPYC with AVX-512 bf16 but no AMX: 1.4-2x; an Intel one without AMX: slower,
    docs/BENCHMARKS.md)."""
    if setting != "auto":
        return setting
    if cuda:
        return "bf16" if torch.cuda.is_bf16_supported() else "no"
    if cpu_has_amx():
        return "bf16"
    return "bf16" if cpu_bf16_speedup() >= BF16_MIN_SPEEDUP else "no"


def cpu_has_amx() -> bool:
    """Whether this CPU has AMX matrix units (torch's own check; False where torch lacks it)."""
    return bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())


def measure_bf16_speedup() -> float:
    """fp32 seconds over bf16-autocast seconds for a training step (forward and backward) of a
    small convolution stack like the generator's and the classifier's, on this CPU's threads.

    About 0.2-0.3 s: rounds of both precisions interleaved, the fastest round of each kept, so
    load on a shared machine slows both alike. 0.0 where oneDNN reports no bf16 support at all
    (no AVX-512); a CPU that only emulates bf16 measures slower, so the probe itself says so.
    The global random state is left as it was."""
    mkldnn = getattr(torch.ops, "mkldnn", None)
    supported = getattr(mkldnn, "_is_mkldnn_bf16_supported", None)
    if not torch.backends.mkldnn.is_available() or supported is None or not supported():
        return 0.0
    with torch.random.fork_rng(devices=[]):  # the layers' initial weights draw from it
        net = torch.nn.Sequential(
            torch.nn.Conv2d(64, 64, 3, padding=1),
            torch.nn.GroupNorm(8, 64),
            torch.nn.SiLU(),
            torch.nn.Conv2d(64, 64, 3, padding=1),
        )
    x = torch.randn(8, 64, 32, 32, generator=torch.Generator().manual_seed(0))

    def step(bf16: bool) -> float:
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = net(x)
        out.float().square().mean().backward()
        net.zero_grad(set_to_none=True)
        return time.perf_counter() - started

    step(False), step(True)  # warm-up: oneDNN picks and caches its kernels
    best = {False: float("inf"), True: float("inf")}
    for _ in range(10):
        for bf16 in (False, True):
            best[bf16] = min(best[bf16], step(bf16))
    return best[False] / best[True]


# measured once a process: every later resolve_precision("auto") on this CPU reads it
cpu_bf16_speedup = functools.cache(measure_bf16_speedup)
