"""A residual space-to-channel autoencoder for tiles, built to train in minutes on a CPU.

Each level halves the side with a pixel-unshuffle (space to channels) followed by a
convolution, plus a parameter-free shortcut that averages the unshuffled channels down to the
level's width; the decoder mirrors it with channel-to-space shortcuts. The shortcuts make
each level start close to an identity map, which is what lets deep compression autoencoders
(Chen et al., "Deep Compression Autoencoder", 2024) train fast; all convolutions then run at
48x48 and 24x24 with wide channels, which is where CPU matrix units are efficient. Residual
blocks have no normalisation (their last convolution starts at zero, so each block starts as
the identity), which saves the group norms that cost a fifth of a step on a CPU.

The encoder is deterministic: the latent is the tile's code, and the decoder is trained to be
robust to small latent noise instead of sampling a KL posterior, whose unit noise at the start
swamps the code and slows training by an order of magnitude.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn


class _Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.silu(self.conv1(F.silu(x))))


class _Down(nn.Module):
    """(B, C_in, H, W) -> (B, C_out, H/2, W/2): unshuffle, convolve, plus a channel-mean skip."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4 * c_in, c_out, 3, padding=1)
        self.group = 4 * c_in // c_out if (4 * c_in) % c_out == 0 else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.pixel_unshuffle(x, 2)  # (B, 4 C_in, H/2, W/2)
        out = self.conv(y)
        if self.group:
            b, c, h, w = y.shape
            out = out + y.view(b, c // self.group, self.group, h, w).mean(2)
        return out


class _Up(nn.Module):
    """(B, C_in, H, W) -> (B, C_out, 2H, 2W): convolve, plus a channel-repeat skip, shuffle."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, 4 * c_out, 3, padding=1)
        self.repeat = 4 * c_out // c_in if (4 * c_out) % c_in == 0 else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if self.repeat:
            y = y + x.repeat_interleave(self.repeat, dim=1)
        return F.pixel_shuffle(y, 2)


class TileAutoencoder(ModelMixin, ConfigMixin):
    """Tiles (B, 3, S, S) in [-1, 1] <-> latents (B, latent_channels, S / 2^L, S / 2^L)."""

    @register_to_config
    def __init__(
        self,
        channels: tuple[int, ...] = (64, 128),
        latent_channels: int = 8,
        encoder_blocks: tuple[int, ...] = (1, 2),
        decoder_blocks: tuple[int, ...] = (2, 3),
    ) -> None:
        super().__init__()
        if not (len(channels) == len(encoder_blocks) == len(decoder_blocks)):
            raise ValueError("channels, encoder_blocks and decoder_blocks need one entry a level")
        widths = (3, *channels)
        encoder: list[nn.Module] = []
        for level, blocks in enumerate(encoder_blocks):
            encoder.append(_Down(widths[level], widths[level + 1]))
            encoder += [_Residual(widths[level + 1]) for _ in range(blocks)]
        encoder += [nn.SiLU(), nn.Conv2d(channels[-1], latent_channels, 3, padding=1)]
        decoder: list[nn.Module] = [nn.Conv2d(latent_channels, channels[-1], 3, padding=1)]
        for level in reversed(range(len(channels))):
            decoder += [_Residual(widths[level + 1]) for _ in range(decoder_blocks[level])]
            if level == 0:
                decoder.append(nn.SiLU())
            decoder.append(_Up(widths[level + 1], widths[level]))
        self.encoder = nn.Sequential(*encoder)
        self.decoder = nn.Sequential(*decoder)

    @property
    def downsampling(self) -> int:
        return 2 ** len(self.config.channels)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)  # (B, 3, 96, 96) -> (B, 8, 24, 24)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)  # (B, 8, 24, 24) -> (B, 3, 96, 96), ~[-1, 1]
