"""Tiles <-> the normalised latents a denoiser learns, whatever the autoencoder.

Three autoencoders reach the denoiser: the residual TileAutoencoder (deterministic codes,
standardised per channel), the compact AutoencoderKL of generators trained before it, and a
frozen Stable Diffusion VAE (both KL: a posterior sample times one scaling factor). The
codec hides which, so training, sampling and reconstruction share one code path.
"""

from __future__ import annotations

import numpy as np
import torch

from generation.ldm.autoencoder import TileAutoencoder


class LatentCodec:
    def __init__(
        self,
        vae: torch.nn.Module,
        scaling_factor: float = 1.0,
        shift: list[float] | None = None,
        scale: list[float] | None = None,
    ) -> None:
        self.vae = vae
        self.deterministic = isinstance(vae, TileAutoencoder)
        self.scaling_factor = float(scaling_factor)
        self.shift = None if shift is None else torch.tensor(shift).view(1, -1, 1, 1)
        self.scale = None if scale is None else torch.tensor(scale).view(1, -1, 1, 1)

    @property
    def fitted(self) -> bool:
        """Whether the normalisation is set (a KL factor of exactly 1 is the unfitted default)."""
        return self.shift is not None if self.deterministic else self.scaling_factor != 1.0

    # --- raw codes ---------------------------------------------------------------------------

    def moments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Unnormalised code of tiles (B, 3, H, W) in [-1, 1]: (mean, std), std None when the
        autoencoder is deterministic."""
        if self.deterministic:
            return self.vae.encode(x), None
        dist = self.vae.encode(x).latent_dist
        return dist.mean, dist.std

    def fit(self, codes: torch.Tensor) -> None:
        """Set the normalisation from the codes of the training tiles (N, C, h, w): per
        channel mean and std for the residual autoencoder; one factor 1 / std for a KL one
        trained here (a frozen Stable Diffusion VAE keeps its own factor)."""
        if self.deterministic:
            self.shift = codes.mean(dim=(0, 2, 3), keepdim=True)
            self.scale = codes.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
        else:
            self.scaling_factor = float(1.0 / codes.std().clamp_min(1e-6))

    # --- normalised latents --------------------------------------------------------------------

    def normalise(self, codes: torch.Tensor) -> torch.Tensor:
        if self.deterministic:
            return (codes - self.shift.to(codes)) / self.scale.to(codes)
        return codes * self.scaling_factor

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Tiles -> normalised latents (the posterior mean for a KL autoencoder)."""
        return self.normalise(self.moments(x)[0])

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Normalised latents -> tiles, about [-1, 1]."""
        if self.deterministic:
            return self.vae.decode(z * self.scale.to(z) + self.shift.to(z))
        return self.vae.decode(z / self.scaling_factor).sample

    def state(self) -> dict:
        """What histostudy.json records to rebuild the normalisation."""
        if self.deterministic:
            if self.shift is None:  # not fitted yet (a checkpoint during the first phase)
                return {}
            return {
                "latent_shift": self.shift.flatten().tolist(),
                "latent_scale": self.scale.flatten().tolist(),
            }
        return {"scaling_factor": self.scaling_factor}

    @classmethod
    def from_meta(cls, vae: torch.nn.Module, meta: dict) -> LatentCodec:
        return cls(
            vae,
            meta.get("scaling_factor", 1.0),
            meta.get("latent_shift"),
            meta.get("latent_scale"),
        )


def to_unit(tiles: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float in [-1, 1], the autoencoder's input range."""
    return torch.from_numpy(np.ascontiguousarray(tiles)).permute(0, 3, 1, 2).float() / 127.5 - 1
