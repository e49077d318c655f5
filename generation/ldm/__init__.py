"""Latent diffusion for 96x96 tiles: pure torch + diffusers, no Django (DESIGN.md, `ldm/`)."""
