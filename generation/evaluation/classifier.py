"""The tumour classifier behind evaluate_utility: a compact CNN in plain torch.

Pure torch and numpy (no Django): `train` fits a `TumourCNN` on uint8 tiles and labels under a
fixed step budget, `predict` returns tumour probabilities, `evaluate` scores them. Every arm of
a utility comparison (real, synthetic, mixed) gets the same architecture, the same number of
optimiser steps, the same batch size and the same augmentation, so only the training data
differ. Positive = tumour here (this is a tumour classifier), unlike the reader studies where
positive = synthetic.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from generation.ldm.precision import resolve_precision
from generation.presets import ClassifierConfig
from histostudy.statistics import auc_delong, proportion


class TumourCNN(nn.Module):
    """Stride-2 stem, then conv-BN-ReLU + max-pool per level, global average pool, one logit."""

    def __init__(self, channels: tuple[int, ...], dropout: float = 0.2) -> None:
        super().__init__()
        if len(channels) < 2:
            raise ValueError("channels needs a stem width and at least one level")
        layers: list[nn.Module] = [
            nn.Conv2d(3, channels[0], 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(channels[0]),
            nn.ReLU(inplace=True),
        ]
        for i, (c_in, c_out) in enumerate(itertools.pairwise(channels)):
            layers += [
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            ]
            if i < len(channels) - 2:
                layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(channels[-1], 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3))).squeeze(1)


def to_tensor(tiles: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) centred near 0."""
    x = torch.from_numpy(np.ascontiguousarray(tiles)).permute(0, 3, 1, 2).float()
    return (x - 160.0) / 64.0


def augment(x: torch.Tensor, generator: torch.Generator, jitter: float) -> torch.Tensor:
    """Dihedral transforms (tiles have no orientation) and mild colour jitter, per sample."""
    n = x.shape[0]
    flips = torch.rand(n, 2, generator=generator) < 0.5
    x = torch.where(flips[:, 0, None, None, None], x.flip(3), x)
    x = torch.where(flips[:, 1, None, None, None], x.flip(2), x)
    if torch.rand(1, generator=generator).item() < 0.5:  # rot90 a whole batch: square tiles
        x = x.transpose(2, 3)
    if jitter:
        scale = 1 + (torch.rand(n, 1, 1, 1, generator=generator) * 2 - 1) * jitter
        shift = (torch.rand(n, 1, 1, 1, generator=generator) * 2 - 1) * jitter * 2
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        grey = x.mean(dim=1, keepdim=True)
        sat = 1 + (torch.rand(n, 1, 1, 1, generator=generator) * 2 - 1) * jitter
        x = (grey + (x - grey) * sat - mean) * scale + mean + shift
    return x


@dataclass
class TrainLog:
    steps: int
    seconds: float
    final_loss: float
    stopped_early: bool
    losses: list[float]


def train(
    tiles: list[np.ndarray] | np.ndarray,
    labels: list[np.ndarray] | np.ndarray,
    config: ClassifierConfig,
    seed: int = 0,
    device: torch.device | None = None,
    shares: list[float] | None = None,
    progress: bool = True,
) -> tuple[TumourCNN, TrainLog]:
    """Fit a TumourCNN for `config.steps` steps (or `max_minutes`, whichever ends first).

    `tiles` and `labels` may be one array or several pools (real, synthetic); with several,
    each batch draws from pool i with probability shares[i], so a mixed arm has a stated
    ratio whatever the pools' sizes. Sampling is seeded; epochs are reshuffled per pool.
    """
    pools = [tiles] if isinstance(tiles, np.ndarray) else list(tiles)
    pool_labels = [labels] if isinstance(labels, np.ndarray) else list(labels)
    if not pools or any(len(p) == 0 for p in pools):
        raise ValueError("every training pool needs at least one tile")
    shares = shares or [len(p) / sum(len(q) for q in pools) for p in pools]
    if len(shares) != len(pools) or not math.isclose(sum(shares), 1.0, abs_tol=1e-6):
        raise ValueError("shares: one per pool, summing to 1")
    device = device or torch.device("cpu")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    aug = torch.Generator().manual_seed(seed)
    model = TumourCNN(config.channels, config.dropout).to(device)
    optimiser = torch.optim.AdamW(model.parameters(), config.lr, weight_decay=config.weight_decay)

    def lr_at(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        done = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, done)))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lr_at)
    sampler = _Sampler(pools, pool_labels, shares, rng)
    loss_fn = nn.BCEWithLogitsLoss()
    autocast = resolve_precision(config.mixed_precision, device.type == "cuda") == "bf16"
    losses: list[float] = []
    started = time.perf_counter()
    deadline = started + config.max_minutes * 60 if config.max_minutes else math.inf
    stopped_early = False
    model.train()
    bar = tqdm(total=config.steps, unit="step", desc="classifier", disable=not progress)
    with bar:
        for step in range(config.steps):
            if time.perf_counter() > deadline:
                stopped_early = True
                break
            x, y = sampler.batch(config.batch_size)
            x, y = augment(x, aug, config.colour_jitter).to(device), y.to(device)
            with torch.autocast(device.type, torch.bfloat16, enabled=autocast):
                loss = loss_fn(model(x).float(), y)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            losses.append(loss.detach().item())
            if step % 20 == 0:
                bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
            bar.update()
    seconds = time.perf_counter() - started
    final = float(np.mean(losses[-50:])) if losses else float("nan")
    return model, TrainLog(len(losses), seconds, final, stopped_early, losses)


class _Sampler:
    """Batches drawn from several pools at fixed shares; each pool reshuffled per epoch."""

    def __init__(self, pools: list, labels: list, shares: list[float], rng) -> None:
        self.pools, self.labels, self.shares, self.rng = pools, labels, shares, rng
        self.orders = [rng.permutation(len(p)) for p in pools]
        self.cursors = [0] * len(pools)

    def _draw(self, pool: int, k: int) -> np.ndarray:
        out = []
        while k:
            if self.cursors[pool] == len(self.orders[pool]):
                self.orders[pool] = self.rng.permutation(len(self.pools[pool]))
                self.cursors[pool] = 0
            take = self.orders[pool][self.cursors[pool] : self.cursors[pool] + k]
            self.cursors[pool] += len(take)
            k -= len(take)
            out.append(take)
        return np.concatenate(out)

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        for i, k in enumerate(self.rng.multinomial(size, self.shares)):
            if k:
                idx = self._draw(i, int(k))
                xs.append(to_tensor(self.pools[i][idx]))
                ys.append(torch.as_tensor(self.labels[i][idx], dtype=torch.float32))
        return torch.cat(xs), torch.cat(ys)


@torch.inference_mode()
def predict(
    model: TumourCNN, tiles: np.ndarray, device: torch.device | None = None, batch: int = 256
) -> np.ndarray:
    """Tumour probability per tile, with test-time averaging over the four flips."""
    device = device or torch.device("cpu")
    model.eval()
    out = []
    for start in range(0, len(tiles), batch):
        x = to_tensor(tiles[start : start + batch]).to(device)
        logits = sum(model(v) for v in (x, x.flip(3), x.flip(2), x.flip(2).flip(3))) / 4
        out.append(torch.sigmoid(logits.float()).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


@dataclass
class Scores:
    n: int
    n_tumour: int
    auc: float
    auc_se: float
    auc_low: float
    auc_high: float
    accuracy: float
    accuracy_low: float
    accuracy_high: float
    sensitivity: float
    sensitivity_low: float
    sensitivity_high: float
    specificity: float
    specificity_low: float
    specificity_high: float


def evaluate(labels: np.ndarray, probabilities: np.ndarray, threshold: float = 0.5) -> Scores:
    """ROC AUC with a DeLong 95% interval; accuracy, sensitivity, specificity at `threshold`
    with Wilson 95% intervals. Positive = tumour."""
    labels = np.asarray(labels).astype(bool)
    p = np.asarray(probabilities, float)
    if len(labels) != len(p):
        raise ValueError("one probability per label")
    auc = auc_delong(p[labels], p[~labels])
    called = p >= threshold
    correct = int(np.sum(called == labels))
    tp = int(np.sum(called & labels))
    tn = int(np.sum(~called & ~labels))
    acc, sens, spec = (
        proportion(correct, len(labels)),
        proportion(tp, int(labels.sum())),
        proportion(tn, int((~labels).sum())),
    )
    return Scores(
        len(labels), int(labels.sum()), auc.value, auc.se, auc.low, auc.high,
        acc.value, acc.low, acc.high, sens.value, sens.low, sens.high,
        spec.value, spec.low, spec.high,
    )  # fmt: skip
