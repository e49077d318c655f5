"""The autoencoder's loss, the noised codes its decoder learns from, and the learning-rate
schedule of both phases."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from generation.ldm.autoencoder import TileAutoencoder
from generation.ldm.config import GeneratorConfig


class AutoencoderLoss(torch.nn.Module):
    """The autoencoder's training loss as one forward pass: under several processes the
    gradients are averaged by DistributedDataParallel, which only sees a wrapped forward()."""

    def __init__(
        self,
        vae: torch.nn.Module,
        kl_weight: float,
        latent_noise: float = 0.0,
        fft_weight: float = 0.0,
        scale_weight: float = 0.0,
        amplitude_weight: float = 0.0,
        code_weight: float = 0.0,
    ) -> None:
        super().__init__()
        self.vae = vae
        self.kl_weight = kl_weight
        self.latent_noise = latent_noise
        self.fft_weight = fft_weight
        self.scale_weight = scale_weight
        self.amplitude_weight = amplitude_weight
        self.code_weight = code_weight

    @classmethod
    def of(cls, vae: torch.nn.Module, config: GeneratorConfig) -> AutoencoderLoss:
        """The loss with the weights a generator's config sets."""
        return cls(
            vae,
            config.vae_kl_weight,
            config.vae_latent_noise,
            config.vae_fft_weight,
            config.vae_scale_weight,
            config.vae_amplitude_weight,
            config.vae_code_weight,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, 3, S, S) in [-1, 1]
        return self.with_reconstruction(x)[0]

    def with_reconstruction(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the loss, the reconstruction it scored in float32): for a bench that adds terms
        of its own on the reconstruction (bench/adversarial.py's discriminator)."""
        if isinstance(self.vae, TileAutoencoder):  # deterministic codes; L1 keeps edges
            code = self.vae.encode(x)
            z = code
            if self.latent_noise:  # the decoder learns to map near-miss codes to clean tiles
                z = z + noised_codes(z, self.latent_noise)
            recon = self.vae.decode(z).float()
            loss = F.l1_loss(recon, x)
            if self.fft_weight:
                loss = loss + self.fft_weight * fourier_l1(recon, x.float())
            if self.amplitude_weight:
                loss = loss + self.amplitude_weight * local_amplitude_l1(recon, x.float())
            if self.scale_weight:
                factor = equivariance_factor(code.shape[-1])
                loss = loss + self.scale_weight * scale_equivariance_l1(self.vae, code, x, factor)
            if self.code_weight:
                loss = loss + self.code_weight * code_penalty(code)
            return loss, recon
        posterior = self.vae.encode(x).latent_dist
        recon = self.vae.decode(posterior.sample()).sample.float()
        return F.l1_loss(recon, x) + self.kl_weight * posterior.kl().mean(), recon


def fourier_l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of the orthonormal 2-D Fourier coefficients (real and
    imaginary parts) of two (B, C, H, W) batches: every frequency counts alike, so the fine
    detail that pixel L1 trades for a blur weighs as much as the coarse layout."""
    fa = torch.fft.rfft2(a, norm="ortho")
    fb = torch.fft.rfft2(b, norm="ortho")
    return (torch.view_as_real(fa) - torch.view_as_real(fb)).abs().mean()


AMPLITUDE_WINDOW = 16  # pixels: a few nuclei, so the term compares texture, not layout


def local_amplitude_l1(
    a: torch.Tensor, b: torch.Tensor, size: int = AMPLITUDE_WINDOW
) -> torch.Tensor:
    """Mean absolute difference of the local amplitude spectra of two (B, C, H, W) batches:
    the orthonormal 2-D Fourier magnitudes of Hann-windowed `size` x `size` windows at half a
    window's stride. Without the phase, the term asks for the right amount of detail at each
    frequency, not for it in the right place: where pixel L1 cannot tell where a nucleus edge
    lies, its optimum is a blur, while this one's is an edge somewhere (the amplitude losses of
    super-resolution; Fuoli et al. 2021, "Fourier Space Losses for Efficient Perceptual Image
    Super-Resolution"; Jiang et al. 2021, "Focal Frequency Loss"). Local, so a tile's fat
    cannot take the detail that its nuclei lack."""
    if a.shape[-1] < size or a.shape[-2] < size:
        raise ValueError(
            f"local_amplitude_l1: tiles {tuple(a.shape[-2:])} under the {size} px window"
        )
    stride = size // 2
    window = torch.hann_window(size, periodic=False, dtype=a.dtype, device=a.device)
    window = window[:, None] * window[None, :]

    def spectra(t: torch.Tensor) -> torch.Tensor:
        patches = t.unfold(2, size, stride).unfold(3, size, stride)  # B, C, nh, nw, size, size
        return torch.fft.rfft2(patches * window, norm="ortho").abs()

    return (spectra(a) - spectra(b)).abs().mean()


def equivariance_factor(side: int) -> int:
    """The downsampling of this step's scale-equivariance term: 2 or 4 at random (4 only where
    the code's side divides by 4 and leaves at least 2 cells), drawn from the global stream."""
    if side % 4 or side < 8:
        return 2
    return 2 if float(torch.rand(())) < 0.5 else 4


def scale_equivariance_l1(
    vae: TileAutoencoder, code: torch.Tensor, x: torch.Tensor, factor: int
) -> torch.Tensor:
    """Scale equivariance (Skorokhodov et al. 2025, "Improving the Diffusability of
    Autoencoders"): the code averaged down by `factor` must decode to the tile averaged down by
    the same factor. A decoder held to it cannot hide tile content in the code's highest
    spatial frequencies, which the coarse-to-fine sampling of a denoiser gets wrong first and
    which a large bottleneck (16 channels here) otherwise fills."""
    small = vae.decode(F.avg_pool2d(code, factor)).float()
    return F.l1_loss(small, F.avg_pool2d(x.float(), factor))


def code_penalty(code: torch.Tensor) -> torch.Tensor:
    """The mean squared code (Ghosh et al. 2020, "From Variational to Deterministic
    Autoencoders": the L2 code penalty of their regularised autoencoders; the mean term of a KL
    autoencoder's KL loss). The pixel loss cannot see the codes' scale: the decoder's first
    convolution undoes any factor, and the decoder's noise is relative to the codes' std. So
    nothing but the optimiser sets it, and under Adam without weight decay it grows without
    bound (the cpu preset's codes: std 1 at step 100, 53 at step 500), which multiplies the
    step that a learning rate makes in the decoder's input layer. A small weight holds it."""
    return code.float().pow(2).mean()


def noised_codes(z: torch.Tensor, scale: float) -> torch.Tensor:
    """Noise for decoder training (noise-augmented decoding, Zheng et al. 2025, "Diffusion
    Transformers with Representation Autoencoders"): per tile, Gaussian noise of a standard
    deviation drawn uniformly in [0, scale] times the codes' own standard deviation, so the
    decoder sees the near-miss codes a sampler ends on. The noise level carries no gradient."""
    sigma = torch.rand(len(z), 1, 1, 1, device=z.device) * scale * z.detach().float().std()
    return (sigma * torch.randn_like(z, dtype=torch.float32)).to(z.dtype)


def learning_rate(base: float, step: int, planned: int, warmup: int, schedule: str) -> float:
    """Linear warm-up over `warmup` steps, then constant or cosine down to 10% at `planned`."""
    factor = min(1.0, (step + 1) / warmup) if warmup else 1.0
    if schedule == "cosine" and planned > warmup:
        done = min(1.0, max(0.0, (step - warmup) / (planned - warmup)))
        factor *= 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * done))
    return base * factor
