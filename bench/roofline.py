"""What one generated tile costs, in FLOPs and bytes, and the fastest a GPU could make it.

    .venv/bin/python bench/roofline.py [--presets tiny,cpu,gpu[,sd15]] [--steps 25]
        [--sd-steps 50] [--set field=value ...] [--gpu h100|h200] [--prompt-tokens 16]
        [--calibrate]

For each preset this traces one UNet forward and one VAE decode on the CPU, op by op
(`TorchDispatchMode`), at batch 2 and 3; the difference is the cost of one more row, so
weights (read once per batch) drop out. Per op it counts FLOPs (PyTorch's own flop_counter
formulas: convolutions, matmuls, attention) and bytes (every tensor read and written, at its
own element size), twice: under bf16 autocast, as `--precision bf16` samples, and in fp32.
A tile costs `steps` x 2 UNet rows (classifier-free guidance) + 1 decode.
`sd15` is the paper's setting by architecture: Stable Diffusion 1.5's UNet and VAE at 512 px
(random weights, built from the published layout), 77 CLIP tokens, `--sd-steps` steps.

The bound is a roofline: each op takes max(FLOPs / peak, bytes / bandwidth), as if every
kernel ran at the chip's datasheet peak and nothing were fused. Real kernels do worse on
compute and better on memory (fusion), so treat it as a ceiling, and the ratio of measured to
bound as the efficiency. `--calibrate` prints the bound for the fp32 runs measured on an H100
on 2026-11-25 (docs/BENCHMARKS.md), to see how far real runs fall below it.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# datasheet peaks, dense: (bf16 tensor TFLOP/s, TF32 tensor, fp32 non-tensor, TB/s)
GPUS = {
    "h100": (989.0, 494.0, 67.0, 3.35),  # H100 SXM5 80 GB
    "h200": (989.0, 494.0, 67.0, 4.8),
}
CONV_OPS = ("convolution",)
# ops that must read and write memory even when a compiler fuses the elementwise work
# (bias, SiLU, GELU, residual adds, scaling) into them: the "fused" bound counts only these
ANCHORS = ("convolution", "mm", "bmm", "addmm", "baddbmm", "scaled_dot_product",
           "native_group_norm", "native_layer_norm", "cat", "upsample")  # fmt: skip

# H100 runs of bench/generate.py on 2026-11-25 (docs/BENCHMARKS.md): (preset, overrides,
# tiles/s). They ran in fp32 (the bf16 switch was ignored then), batch 1024, 25 steps.
MEASURED_H100_FP32 = [
    ("tiny", {}, 1360.5),
    ("cpu", {}, 654.8),
    ("gpu", {"unet_channels": "128,256,512", "unet_attention": "1,1,1"}, 59.6),  # the 100 M one
    ("gpu", {"unet_channels": "96,192,256", "unet_attention": "1,1,1",
             "unet_layers_per_block": "1"}, 229.4),
]  # fmt: skip


@dataclass
class Cost:
    flops: float = 0.0  # per row
    bytes_bf16: float = 0.0  # read + written per row under bf16 autocast
    bytes_fp32: float = 0.0  # the same in fp32
    seconds_bf16: float = 0.0  # roofline time per row on the chosen GPU
    seconds_fused: float = 0.0  # bf16, elementwise work fused into its neighbours
    seconds_fp32: float = 0.0


def trace(fn, bf16: bool) -> list[tuple[str, float, float]]:
    """(op name, FLOPs, bytes moved) for each aten op `fn` runs, under bf16 autocast or not.

    Bytes are each distinct tensor an op reads or writes, at its own element size: autocast
    keeps norms (and what follows them up to the next matmul) in fp32 and adds the casts, on
    the CPU as on CUDA. Views move nothing."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten
    from torch.utils.flop_counter import flop_registry

    ops: list[tuple[str, float, float]] = []

    class Recorder(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            packet = func._overloadpacket
            flops = 0.0
            if packet in flop_registry:
                flops = float(flop_registry[packet](*args, **kwargs, out_val=out))
            elif "scaled_dot_product" in packet.__name__:  # the CPU kernels are not registered
                (b, h, lq, d), lk = args[0].shape, args[1].shape[-2]
                flops = 4.0 * b * h * lq * lk * d  # scores and the weighted sum
            moved = 0
            if not func.is_view:
                leaves = tree_flatten((args, kwargs))[0] + tree_flatten(out)[0]
                tensors = {id(t): t for t in leaves if isinstance(t, torch.Tensor)}
                moved = sum(t.numel() * t.element_size() for t in tensors.values())
            ops.append((packet.__name__, flops, float(moved)))
            return out

    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)
    with torch.no_grad(), autocast, Recorder():  # not inference_mode: it hides decompositions
        fn()
    return ops


def per_row(fn_at, gpu: str) -> Cost:
    """Cost of one more batch row: trace at batch 2 and 3, op by op, take the difference
    (batch 1 takes views where larger batches copy)."""
    bf16, tf32, fp32, tbs = GPUS[gpu]
    cost = Cost()
    for half in (True, False):
        two, three = trace(lambda: fn_at(2), half), trace(lambda: fn_at(3), half)
        if [o[0] for o in two] != [o[0] for o in three]:
            raise RuntimeError("the traced ops differ between batch sizes; cannot subtract")
        for (name, f2, m2), (_, f3, m3) in zip(two, three, strict=True):
            flops, moved = f3 - f2, m3 - m2
            if half:
                cost.flops += flops
                cost.bytes_bf16 += moved
                cost.seconds_bf16 += max(flops / (bf16 * 1e12), moved / (tbs * 1e12))
                anchor = any(name.startswith(a) for a in ANCHORS)
                cost.seconds_fused += max(flops / (bf16 * 1e12), anchor * moved / (tbs * 1e12))
            else:  # fp32 as PyTorch runs it by default: convolutions in TF32, matmuls in fp32
                peak = tf32 if name.startswith(CONV_OPS) else fp32
                cost.bytes_fp32 += moved
                cost.seconds_fp32 += max(flops / (peak * 1e12), moved / (tbs * 1e12))
    return cost


def stable_diffusion_15():
    """The paper's setting, by architecture (random weights): SD 1.5's UNet (diffusers'
    UNet2DConditionModel defaults are the SD 1.x layout) at 64x64 latents for 512 px, its
    VAE, 77 CLIP tokens of width 768."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768).eval()
    vae = AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(128, 256, 512, 512),
        layers_per_block=2,
        latent_channels=4,
        sample_size=512,
    ).eval()
    return unet, vae, 4, 64, 77, 768


def preset_cost(preset: str, overrides: dict[str, str], tokens: int, gpu: str):
    import torch

    from generation.ldm.models import build_autoencoder, build_unet
    from generation.presets import PRESETS

    torch.manual_seed(0)
    if preset == "sd15":
        unet, vae, c, s, tokens, width = stable_diffusion_15()
    else:
        config = PRESETS[preset].generator.replace(**overrides)
        unet, vae = build_unet(config).eval(), build_autoencoder(config).eval()
        c, s, width = config.latent_channels, config.latent_size, config.text_dim

    def unet_at(b: int) -> None:
        unet(torch.randn(b, c, s, s), 500, encoder_hidden_states=torch.randn(b, tokens, width))

    def vae_at(b: int) -> None:
        vae.decode(torch.randn(b, c, s, s))

    params = sum(p.numel() for p in unet.parameters()) / 1e6
    return params, per_row(unet_at, gpu), per_row(vae_at, gpu)


def tiles_per_second(unet: Cost, vae: Cost, rows: int, bound: str) -> float:
    """The bound (`seconds_bf16`, `seconds_fused` or `seconds_fp32`) for whole tiles: `rows`
    UNet rows and one decode each."""
    return 1 / (rows * getattr(unet, bound) + getattr(vae, bound))


def main() -> None:
    from generation.ldm.config import SAMPLING_STEPS

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--presets", default="tiny,cpu,gpu")
    parser.add_argument("--steps", type=int, default=SAMPLING_STEPS)
    parser.add_argument("--sd-steps", type=int, default=50, help="for sd15: the paper's 50")
    parser.add_argument("--prompt-tokens", type=int, default=16)
    parser.add_argument("--gpu", choices=sorted(GPUS), default="h100")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--calibrate", action="store_true")
    args = parser.parse_args()
    overrides = dict(item.split("=", 1) for item in args.set)
    print(
        f"cost per generated tile: {args.steps} steps x 2 UNet rows (guidance) + 1 VAE decode, "
        f"{args.prompt_tokens} prompt tokens; roofline on one {args.gpu.upper()} "
        f"(datasheet peaks; fused: elementwise work fused into its neighbours)"
    )
    header = (
        f"{'preset':10} {'unet M':>7} {'UNet GF':>8} {'VAE GF':>7} {'tile GF':>8} "
        f"{'GB bf16':>8} {'bf16':>8} {'fused':>8} {'fp32':>8}"
    )
    print("tiles/s bound:".rjust(len(header) - 26), "-" * 26)
    print(header)
    for preset in [p for p in args.presets.split(",") if p]:
        params, unet, vae = preset_cost(preset, overrides, args.prompt_tokens, args.gpu)
        rows = 2 * (args.sd_steps if preset == "sd15" else args.steps)
        flops = rows * unet.flops + vae.flops
        gbytes = (rows * unet.bytes_bf16 + vae.bytes_bf16) / 1e9
        print(
            f"{preset:10} {params:7.1f} {unet.flops / 1e9:8.2f} {vae.flops / 1e9:7.2f} "
            f"{flops / 1e9:8.1f} {gbytes:8.2f} "
            + " ".join(
                f"{tiles_per_second(unet, vae, rows, bound):8.0f}"
                for bound in ("seconds_bf16", "seconds_fused", "seconds_fp32")
            )
        )
    if args.calibrate:
        print(f"\nH100, fp32, 2026-11-25: measured against the fp32 bound, {args.steps} steps")
        print(f"{'preset':10} {'overrides':70} {'measured':>9} {'bound':>7} {'share':>6}")
        for preset, extra, measured in MEASURED_H100_FP32:
            _, unet, vae = preset_cost(preset, extra, 64, "h100")  # then padded to 64
            bound = tiles_per_second(unet, vae, 2 * args.steps, "seconds_fp32")
            shown = " ".join(f"{k}={v}" for k, v in extra.items()) or "-"
            print(f"{preset:10} {shown:70} {measured:9.1f} {bound:7.0f} {measured / bound:6.0%}")


if __name__ == "__main__":
    main()
