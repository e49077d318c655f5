"""The sd-finetune backbone on a tiny Stable Diffusion folder of random weights (the layout
StableDiffusionPipeline.save_pretrained writes), at 32 px instead of 512: fine-tune, register,
generate a cohort, and refuse a bad or changed base folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from django.core.management import call_command
from django.core.management.base import CommandError

from generation.cohorts import Runtime
from generation.generators import GeneratorError, load_pipeline, train_generator
from generation.ldm.sd import ClipPromptEncoder, base_checksum
from generation.models import Cohort, Generator
from tests.generation.conftest import fixture_cohort, tiny_trainer

pytestmark = pytest.mark.django_db
SD_SET = {"sd_resolution": "32", "batch_size": "4", "checkpoint_every": "2"}


def write_clip_tokenizer(folder: Path) -> None:
    """A CLIP BPE tokenizer with single characters only: enough to tokenise any prompt."""
    from tokenizers import pre_tokenizers
    from transformers import CLIPTokenizer

    chars = sorted(pre_tokenizers.ByteLevel.alphabet())  # the 256 byte-level characters
    vocab = {c: i for i, c in enumerate(chars)}
    vocab |= {c + "</w>": i + len(chars) for i, c in enumerate(chars)}
    vocab |= {"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1}
    CLIPTokenizer(vocab=vocab, merges=[], model_max_length=16).save_pretrained(folder)


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory) -> Path:
    return write_tiny_sd(tmp_path_factory.mktemp("sd") / "tiny-sd")


def write_tiny_sd(root: Path) -> Path:
    """Stable Diffusion's folder layout and classes, tiny and random: a 2x VAE, 32-d CLIP."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    UNet2DConditionModel(
        sample_size=16,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,
        norm_num_groups=32,
    ).save_pretrained(root / "unet")
    AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(32, 64),
        latent_channels=4,
        norm_num_groups=32,
        sample_size=32,
    ).save_pretrained(root / "vae")
    text = CLIPTextConfig(
        hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
        vocab_size=600, max_position_embeddings=16, bos_token_id=512, eos_token_id=513,
        pad_token_id=513,
    )  # fmt: skip
    CLIPTextModel(text).save_pretrained(root / "text_encoder")
    write_clip_tokenizer(root / "tokenizer")
    DDPMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", prediction_type="epsilon"
    ).save_pretrained(root / "scheduler")
    (root / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    return root


@pytest.fixture
def sd_generator(annotated, tiny_sd) -> Generator:
    train_generator(
        dataset=annotated, scheme="morphology", preset="tiny", name="sd-tiny", base_model=tiny_sd,
        overrides=SD_SET, max_steps=4, progress=False, preview_steps=2,
    )  # fmt: skip
    return Generator.objects.get(name="sd-tiny")


def test_fine_tunes_the_unet_and_registers_it(sd_generator, tiny_sd):
    g = sd_generator
    assert g.backbone == "sd-finetune" and (g.vae_steps, g.unet_steps) == (0, 4)
    assert g.config["base_model"] == str(tiny_sd.resolve())
    assert g.config["unet_lr"] == 1e-5  # the paper's rate unless overridden
    folder = Path(g.path)
    assert (folder / "unet").is_dir() and not (folder / "vae").exists()  # VAE stays in the base
    meta = json.loads((folder / "histostudy.json").read_text())
    assert meta["base_sha256"] == base_checksum(tiny_sd)
    assert meta["scaling_factor"] == pytest.approx(0.18215)
    tuned = load_pipeline(g, "cpu").unet.state_dict()
    from diffusers import UNet2DConditionModel

    base = UNet2DConditionModel.from_pretrained(tiny_sd / "unet").state_dict()
    assert any(not torch.equal(tuned[k], base[k]) for k in base)  # it did train
    assert (folder / "samples.png").is_file()


def test_generates_96px_tiles_and_a_cohort_reproducibly(sd_generator, annotated):
    pipeline = load_pipeline(sd_generator, "cpu")
    assert pipeline.latent_shape == (4, 16)  # 32 px through a 2x VAE
    prompts = ["Histology image of cancer tissue, morphology type one"] * 2
    first = pipeline.generate(prompts, [3, 4], steps=2)
    assert first.shape == (2, 96, 96, 3) and first.dtype == np.uint8
    assert np.array_equal(first[:1], pipeline.generate(prompts[:1], [3], steps=2))
    summary = fixture_cohort(
        "sd-cohort", 4, generator="sd-tiny", dataset=annotated, runtime=Runtime(device="cpu")
    )
    assert (summary.real, summary.synthetic) == (4, 4)
    assert Cohort.objects.get(name="sd-cohort").completed_at is not None


def test_clip_prompts_are_padded_to_the_tokenizer_length(tiny_sd):
    states, mask = ClipPromptEncoder(tiny_sd).encode(["a", "Histology image of healthy tissue"])
    assert states.shape == (2, 16, 32) and bool(mask.all())


def test_resume_after_a_kill_continues_the_fine_tuning(annotated, tiny_sd, monkeypatch):
    from generation.ldm import train

    calls = []
    original = train.Trainer.save_checkpoint

    def die_after_the_second_checkpoint(self):
        original(self)
        calls.append(self.unet_step)
        if self.unet_step == 2:
            raise KeyboardInterrupt  # as a kill: nothing after this checkpoint

    monkeypatch.setattr(train.Trainer, "save_checkpoint", die_after_the_second_checkpoint)
    args = dict(
        dataset=annotated, scheme="label", preset="tiny", name="sd-resumed", base_model=tiny_sd,
        overrides=SD_SET, max_steps=4, progress=False, previews=False,
    )  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        train_generator(**args)
    monkeypatch.setattr(train.Trainer, "save_checkpoint", original)
    summary = train_generator(**args, resume=True)
    assert summary.unet_steps == 4 and Generator.objects.filter(name="sd-resumed").exists()


def test_bad_or_changed_base_folders_are_clear_errors(annotated, tiny_sd, tmp_path, sd_generator):
    with pytest.raises(CommandError, match="no such folder"):
        call_command(
            "train_generator", "--dataset", annotated, "--scheme", "label", "--name", "x",
            "--base-model", str(tmp_path / "nowhere"),
        )  # fmt: skip
    (tmp_path / "half" / "unet").mkdir(parents=True)
    with pytest.raises(CommandError, match=r"vae, text_encoder, tokenizer, scheduler/ missing"):
        call_command(
            "train_generator", "--dataset", annotated, "--scheme", "label", "--name", "x",
            "--base-model", str(tmp_path / "half"),
        )  # fmt: skip
    assert not Generator.objects.filter(name="x").exists()
    # the base folder changed after fine-tuning: refused, not silently used
    config = tiny_sd / "vae" / "config.json"
    original = config.read_text()
    try:
        config.write_text(original.replace("0.18215", "0.2"))
        with pytest.raises(GeneratorError, match="differs from the one this generator was"):
            load_pipeline(sd_generator, "cpu")
    finally:
        config.write_text(original)


def test_fine_tuning_rotates_the_tiles_before_encoding_them_not_their_codes(tiny_sd, tmp_path):
    # the codes the UNet learns are the frozen VAE's codes of rotated or flipped tiles; a
    # rotated code is not the code of any tile (no encoder is equivariant)
    from generation.ldm import sd
    from generation.ldm.codec import to_unit

    trainer = tiny_trainer(
        tmp_path, backbone="sd-finetune", base_model=str(tiny_sd), sd_resolution=32
    )
    encoded, encode = [], trainer.vae.encode
    trainer.vae.encode = lambda x: encoded.append(x) or encode(x)
    unit = to_unit(trainer.data.tiles[:2])
    views = [torch.rot90(unit, k, dims=(2, 3)) for k in range(4)]
    views = [sd.upsample(v, 32) for v in views + [v.flip(3) for v in views]]
    drawn = set()
    for draw in range(16):
        torch.manual_seed(draw)  # the posterior's sample: the same noise for the check below
        latents = trainer._latents(torch.arange(2), None)
        assert len(encoded) == draw + 1  # one encoding a batch
        matches = [i for i, view in enumerate(views) if torch.equal(encoded[-1], view)]
        assert len(matches) == 1  # the VAE saw one of the 8 views of the tiles at 32 px
        drawn.add(matches[0])
        torch.manual_seed(draw)  # and its code is learned as encoded, not rotated again
        with torch.no_grad():
            code = trainer.codec.normalise(encode(encoded[-1]).latent_dist.sample())
        assert latents.shape == (2, 4, 16, 16) and torch.equal(latents, code)
    assert len(drawn) > 1  # and not always the same one (all 16 alike: 8^-15)
