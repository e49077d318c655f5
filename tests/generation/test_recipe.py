"""The training recipe's parts, without a database: autoencoder, codec, objective, schedule."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from generation.ldm.autoencoder import TileAutoencoder
from generation.ldm.codec import LatentCodec
from generation.ldm.config import GeneratorConfig
from generation.ldm.models import build_autoencoder, build_unet, edm_scheduler
from generation.ldm.objectives import learning_rate
from generation.ldm.precision import resolve_precision
from generation.ldm.text import pooled
from generation.presets import CPU_V1, PRESETS
from tests.generation.conftest import tiny_trainer


def test_residual_autoencoder_maps_tiles_to_a_quarter_side_and_back():
    vae = TileAutoencoder(channels=(8, 16), latent_channels=4, encoder_blocks=(1, 1),
                          decoder_blocks=(1, 1))  # fmt: skip
    x = torch.rand(2, 3, 96, 96) * 2 - 1
    z = vae.encode(x)
    assert z.shape == (2, 4, 24, 24) and vae.downsampling == 4
    assert vae.decode(z).shape == (2, 3, 96, 96)
    # a crop at multiples of 4 px codes as the tile code's crop, away from the borders (where
    # zero padding differs): what lets the autoencoder train on crops
    crop = x[:, :, 8:80, 16:88]  # codes (18, 18), offset (2, 4) in the tile's
    torch.testing.assert_close(vae.encode(crop)[:, :, 6:12, 6:12], z[:, :, 8:14, 10:16])


def test_residual_blocks_start_as_the_identity():
    vae = TileAutoencoder(channels=(8, 16), latent_channels=4, encoder_blocks=(2, 2),
                          decoder_blocks=(2, 2))  # fmt: skip
    block = vae.encoder[1]
    x = torch.randn(1, 8, 12, 12)
    torch.testing.assert_close(block(x), x)


def test_autoencoder_saves_and_loads_with_diffusers(tmp_path):
    vae = build_autoencoder(PRESETS["tiny"].generator)
    vae.save_pretrained(tmp_path / "vae")
    again = TileAutoencoder.from_pretrained(tmp_path / "vae")
    x = torch.rand(1, 3, 96, 96)
    torch.testing.assert_close(again.decode(again.encode(x)), vae.decode(vae.encode(x)))


def test_codec_standardises_each_channel_and_inverts_it():
    vae = build_autoencoder(PRESETS["tiny"].generator).eval()
    codec = LatentCodec(vae)
    x = torch.rand(16, 3, 96, 96) * 2 - 1
    with torch.no_grad():
        codes, std = codec.moments(x)
        assert std is None and not codec.fitted
        codec.fit(codes)
        z = codec.normalise(codes)
        assert codec.fitted
        torch.testing.assert_close(z.mean(dim=(0, 2, 3)), torch.zeros(4), atol=1e-5, rtol=0)
        torch.testing.assert_close(z.std(dim=(0, 2, 3)), torch.ones(4), atol=1e-4, rtol=0)
        again = LatentCodec.from_meta(vae, json.loads(json.dumps(codec.state())))
        torch.testing.assert_close(again.decode(z), vae.decode(codes))


def test_configs_written_before_the_new_recipe_load_as_trained():
    old = json.loads(CPU_V1.to_json())
    for field in ("autoencoder", "objective", "pooled_text", "vae_crop", "ema_warmup"):
        del old[field]  # as a histostudy.json from before these fields existed
    config = GeneratorConfig.from_json(json.dumps(old))
    assert (config.autoencoder, config.objective, config.pooled_text) == ("kl", "ddpm", False)
    assert config.latent_size == 24 and config.vae_crop == 0


def test_bad_recipe_fields_are_refused_with_their_name():
    with pytest.raises(ValueError, match="objective 'flow'"):
        PRESETS["cpu"].generator.replace(objective="flow")
    with pytest.raises(ValueError, match="vae_crop 50"):
        PRESETS["cpu"].generator.replace(vae_crop="50")


def test_pooled_prompt_is_the_mean_over_attended_tokens():
    states = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    torch.testing.assert_close(pooled(states, mask), torch.tensor([[2.0, 3.0]]))


def test_the_denoiser_takes_the_pooled_prompt_beside_the_timestep():
    unet = build_unet(PRESETS["tiny"].generator)
    z = torch.randn(2, 4, 24, 24)
    states = torch.randn(2, 5, 384)
    a = unet(z, 3, encoder_hidden_states=states, class_labels=torch.zeros(2, 384)).sample
    b = unet(z, 3, encoder_hidden_states=states, class_labels=torch.ones(2, 384)).sample
    assert a.shape == z.shape and not torch.allclose(a, b)
    assert build_unet(CPU_V1).config.class_embed_type is None


def test_learning_rate_warms_up_then_follows_a_cosine_to_a_tenth():
    assert learning_rate(1.0, 0, 100, 10, "cosine") == pytest.approx(0.1)
    assert learning_rate(1.0, 9, 100, 10, "cosine") == pytest.approx(1.0)
    assert learning_rate(1.0, 55, 100, 10, "cosine") == pytest.approx(0.1 + 0.9 * 0.5)
    assert learning_rate(1.0, 100, 100, 10, "cosine") == pytest.approx(0.1)
    assert learning_rate(1.0, 500, 100, 0, "constant") == 1.0


def test_edm_sampler_matches_the_training_preconditioning():
    """The sampler's x0 from a network output F must be c_skip x + c_out F as in training."""
    sched = edm_scheduler(PRESETS["cpu"].generator)
    sigma = torch.tensor(2.0)
    x, out = torch.randn(1, 4, 3, 3), torch.randn(1, 4, 3, 3)
    root = math.sqrt(sigma.item() ** 2 + 1.0)
    torch.testing.assert_close(
        sched.precondition_outputs(x, out, sigma), x / root**2 + out * sigma / root
    )
    torch.testing.assert_close(sched.precondition_inputs(x, sigma), x / root)
    assert sched.precondition_noise(sigma).item() == pytest.approx(math.log(2.0) / 4)


def test_auto_precision_is_bf16_only_where_it_is_fast(monkeypatch):
    from generation.ldm import precision

    assert resolve_precision("no", cuda=False) == "no"
    probed = []
    monkeypatch.setattr(precision, "cpu_bf16_speedup", lambda: probed.append(1) or 1.0)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert resolve_precision("auto", cuda=False) == "bf16" and not probed  # AMX: no probe
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert resolve_precision("auto", cuda=False) == "no" and probed  # probed, not faster
    # without AMX, bf16 only where the probe finds it clearly faster
    monkeypatch.setattr(precision, "cpu_bf16_speedup", lambda: precision.BF16_MIN_SPEEDUP)
    assert resolve_precision("auto", cuda=False) == "bf16"
    monkeypatch.setattr(precision, "cpu_bf16_speedup", lambda: precision.BF16_MIN_SPEEDUP - 0.01)
    assert resolve_precision("auto", cuda=False) == "no"
    assert resolve_precision("bf16", cuda=False) == "bf16"  # an explicit setting is kept


def test_the_bf16_probe_leaves_the_random_state_alone():
    from generation.ldm import precision

    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    speedup = precision.measure_bf16_speedup()  # the real probe, not the suite's stand-in
    torch.testing.assert_close(torch.rand(3), expected)
    assert speedup == 0.0 or speedup > 0.1  # 0.0: no bf16 support; else a measured ratio


def test_a_capped_step_budget_splits_the_time_by_what_each_phase_needs(tmp_path, monkeypatch):
    trainer = tiny_trainer(tmp_path, vae_steps=300, unet_steps=600, vae_time_share=0.25)
    # on a machine where a step of either phase costs the same, 300 + 600 steps give the
    # autoencoder a third of a cap, not the fixed quarter that would starve it
    monkeypatch.setattr(trainer, "_probe_speeds", lambda: (1.0, 1.0))
    assert trainer.autoencoder_share() == pytest.approx(1 / 3)
    monkeypatch.setattr(trainer, "_probe_speeds", lambda: (0.2, 0.4))  # a fast autoencoder
    assert trainer.autoencoder_share() == 0.25
    # an autoencoder short of its minimum at the end of its share may borrow what the
    # denoiser's minimum, at the probed speed and with a margin, and the encoding of the
    # tiles before it (minutes on a slow CPU) do not need
    trainer = tiny_trainer(tmp_path, vae_steps=300, unet_steps=600, min_unet_steps=500)
    monkeypatch.setattr(trainer, "_probe_speeds", lambda: (1.0, 2.0))
    monkeypatch.setattr(trainer, "_probe_encoding", lambda: 90.0)
    trainer.autoencoder_share()
    assert trainer.denoiser_reserve() == pytest.approx(1.3 * 500 * 2.0 + 90.0)
    # a budget in minutes: the preset's steps are out of reach, vae_time_share holds
    trainer = tiny_trainer(tmp_path, vae_steps=3000, unet_steps=20000, vae_time_share=0.25)
    monkeypatch.setattr(trainer, "_probe_speeds", lambda: (1.0, 1.0))
    assert trainer.autoencoder_share() == 0.25


def test_the_speed_probe_changes_no_weight_or_random_stream(tmp_path):
    trainer = tiny_trainer(tmp_path)
    before = {k: v.clone() for k, v in trainer.vae.state_dict().items()}
    before |= {f"unet.{k}": v.clone() for k, v in trainer.unet.state_dict().items()}
    rng, global_rng = trainer.generator.get_state(), torch.get_rng_state()
    vae_seconds, unet_seconds = trainer._probe_speeds()
    assert vae_seconds > 0 and unet_seconds > 0
    assert trainer._probe_encoding() > 0  # the encoding pass between the phases, timed alike
    after = dict(trainer.vae.state_dict())
    after |= {f"unet.{k}": v for k, v in trainer.unet.state_dict().items()}
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in [*trainer.vae.parameters(), *trainer.unet.parameters()])
    assert torch.equal(trainer.generator.get_state(), rng)
    assert torch.equal(torch.get_rng_state(), global_rng)


def test_work_after_training_is_kept_out_of_a_capped_budget(tmp_path, monkeypatch):
    from generation.ldm.budget import AFTER_TRAINING_MARGIN, TimeBudgetError
    from generation.ldm.config import AfterTraining

    trainer = tiny_trainer(tmp_path, min_vae_steps=5, min_unet_steps=5)
    weights = {k: v.clone() for k, v in trainer.unet.state_dict().items()}
    rng, global_rng = trainer.generator.get_state(), torch.get_rng_state()
    # sampling is timed on the untrained networks and added to the caller's own seconds
    sampled = trainer.after_training_seconds(AfterTraining(tiles=8, steps=2, seconds=5.0))
    assert sampled > 5.0 * AFTER_TRAINING_MARGIN
    nothing_to_sample = trainer.after_training_seconds(AfterTraining(seconds=5.0))
    assert nothing_to_sample == pytest.approx(5.0 * AFTER_TRAINING_MARGIN)
    assert all(torch.equal(weights[k], v) for k, v in trainer.unet.state_dict().items())
    assert all(p.grad is None for p in trainer.unet.parameters())
    assert torch.equal(trainer.generator.get_state(), rng)
    assert torch.equal(torch.get_rng_state(), global_rng)
    # `within` a minute trains, but not with a minute of work kept after it
    monkeypatch.setattr(trainer, "_probe_speeds", lambda steps=4: (0.01, 0.01))
    with pytest.raises(TimeBudgetError, match="this time budget leaves"):
        trainer.run(within=1.0, after=AfterTraining(seconds=60.0))
    assert trainer.vae_step == 0 and trainer.unet_step == 0
    result = tiny_trainer(tmp_path / "b", min_vae_steps=5, min_unet_steps=5).run(
        within=1.0, after=AfterTraining(seconds=20.0)
    )
    assert (result.vae_steps, result.unet_steps) == (10, 10)


def test_the_budget_ends_at_the_cap_on_training_or_the_deadline_less_the_work_after(tmp_path):
    from generation.ldm.budget import AFTER_TRAINING_MARGIN
    from generation.ldm.config import AfterTraining

    trainer = tiny_trainer(tmp_path)
    now, after = 1000.0, AfterTraining(seconds=10.0)
    kept = 10.0 * AFTER_TRAINING_MARGIN
    assert trainer.budget_end(now, None, None, None) == math.inf
    assert trainer.budget_end(now, 2.0, None, after) == now + 120  # no deadline: nothing kept
    assert trainer.budget_end(now, None, 1.0, after) == pytest.approx(now + 60 - kept)
    assert trainer.budget_end(now, 2.0, 1.0, after) == pytest.approx(now + 60 - kept)
    assert trainer.budget_end(now, 0.5, 1.0, after) == now + 30  # the cap on training binds
    assert trainer.kept_seconds == pytest.approx(kept)  # what a refusal adds to its advice


SUBNORMALS = """
import torch
from generation.ldm.precision import flush_denormals
supported = flush_denormals() if FLUSH else True
torch.set_num_threads(2)
x = torch.full((1 << 20,), 1e-39)  # subnormal; a product with 3 stays subnormal
print(supported, int((x * 3).ne(0).sum()))
"""


@pytest.mark.parametrize("flush", [False, True])
def test_subnormal_floats_are_flushed_on_every_thread_of_a_process_that_asks_first(flush):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    code = f"FLUSH = {flush}\n{SUBNORMALS}"
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                         text=True, check=True).stdout.split()  # fmt: skip
    if out[0] != "True":
        pytest.skip("this CPU has no flush-to-zero flag")
    # asked before torch started its threads, the worker that takes half of the product
    # flushes too; not asked, every product stays a (slow) subnormal
    assert int(out[1]) == (0 if flush else 1 << 20)


def test_steps_that_run_networks_flush_subnormals_before_they_start(monkeypatch):
    from generation.ldm import precision
    from generation.management.base import StepCommand
    from generation.management.commands.import_tiles import Command as ImportTiles

    calls = []
    monkeypatch.setattr(precision, "flush_denormals", lambda: calls.append(1) or True)

    class Step(StepCommand):
        def run(self, options, progress):
            calls.append("run")
            return None

        def lines(self, result):
            return []

    Step().handle(json=False)
    assert calls == [1, "run"]
    assert StepCommand.torch_work and not ImportTiles.torch_work  # importing runs no network


def test_the_fourier_loss_is_the_mean_absolute_coefficient_difference():
    from generation.ldm.objectives import fourier_l1

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 3, 8, 8)), rng.normal(size=(2, 3, 8, 8))
    diff = np.fft.rfft2(a, norm="ortho") - np.fft.rfft2(b, norm="ortho")
    expected = np.abs(np.stack([diff.real, diff.imag], -1)).mean()
    got = fourier_l1(torch.tensor(a), torch.tensor(b))
    assert float(got) == pytest.approx(expected, rel=1e-10)
    assert float(fourier_l1(torch.tensor(a), torch.tensor(a))) == 0.0


def test_scale_equivariance_holds_the_halved_code_to_the_halved_tile():
    import torch.nn.functional as F

    from generation.ldm.objectives import (
        AutoencoderLoss,
        equivariance_factor,
        scale_equivariance_l1,
    )

    torch.manual_seed(0)
    vae = TileAutoencoder(channels=(8, 16), latent_channels=4, encoder_blocks=(1, 1),
                          decoder_blocks=(1, 1))  # fmt: skip
    x = torch.rand(2, 3, 48, 48) * 2 - 1
    code = vae.encode(x)  # (2, 4, 12, 12)
    for factor in (2, 4):
        small = vae.decode(F.avg_pool2d(code, factor))
        assert small.shape == (2, 3, 48 // factor, 48 // factor)
        expected = (small - F.avg_pool2d(x, factor)).abs().mean()
        assert float(scale_equivariance_l1(vae, code, x, factor)) == pytest.approx(float(expected))
    # 4x only where the code's side allows it and leaves two cells
    assert {equivariance_factor(12) for _ in range(64)} == {2, 4}
    assert {equivariance_factor(s) for s in (6, 4, 10) for _ in range(16)} == {2}
    # the loss adds weight x the term to the pixel loss, and sends gradients to the encoder
    plain, scaled = AutoencoderLoss(vae, 0.0), AutoencoderLoss(vae, 0.0, scale_weight=0.5)
    torch.manual_seed(1)
    factor = equivariance_factor(12)
    torch.manual_seed(1)
    loss = scaled(x)
    term = scale_equivariance_l1(vae, code, x, factor)
    assert float(loss) == pytest.approx(float(plain(x) + 0.5 * term), rel=1e-5)
    loss.backward()
    # (a residual block's first convolution gets none at the start: its second starts at zero)
    assert vae.encoder[0].conv.weight.grad.abs().sum() > 0
    assert vae.encoder[-1].weight.grad.abs().sum() > 0


def test_the_denoiser_learns_the_codes_of_tiles_never_rotated_codes(tmp_path):
    # no encoder is equivariant: the rotated code of a tile is not the code of the rotated
    # tile (a trained cpu autoencoder: rms difference about the codes' own std), so a denoiser
    # taught rotated codes learns codes no tile has, which decode to grain
    from generation.ldm.codec import to_unit

    trainer = tiny_trainer(tmp_path)
    tile = to_unit(trainer.data.tiles[:1])
    with torch.no_grad():
        code = trainer.vae.encode(tile)
        rotated = trainer.vae.encode(torch.rot90(tile, 1, dims=(2, 3)))
    assert not torch.allclose(torch.rot90(code, 1, dims=(2, 3)), rotated, atol=1e-3)
    latents = trainer.encode_latents()
    idx = torch.arange(4)
    for _ in range(8):  # a random rotation would show in one of 8 draws but for 8^-8
        torch.testing.assert_close(
            trainer._latents(idx, latents), trainer.codec.normalise(latents[0][idx])
        )


def test_the_amplitude_loss_compares_windowed_local_spectra_without_their_phase():
    from generation.ldm.objectives import AutoencoderLoss, local_amplitude_l1

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 3, 16, 16)), rng.normal(size=(2, 3, 16, 16))
    hann = np.hanning(8)[:, None] * np.hanning(8)[None, :]

    def spectra(t):  # 8 px windows at stride 4: 3 x 3 of them on 16 px
        return np.stack([
            np.abs(np.fft.rfft2(t[..., i:i + 8, j:j + 8] * hann, norm="ortho"))
            for i in (0, 4, 8) for j in (0, 4, 8)
        ])  # fmt: skip

    expected = np.abs(spectra(a) - spectra(b)).mean()
    got = local_amplitude_l1(torch.tensor(a), torch.tensor(b), size=8)
    assert float(got) == pytest.approx(expected, rel=1e-10)
    assert float(local_amplitude_l1(torch.tensor(a), torch.tensor(a), size=8)) == 0.0
    # phase-blind within a window: a sign flip keeps every amplitude
    assert float(local_amplitude_l1(torch.tensor(a), torch.tensor(-a), size=8)) == pytest.approx(0)
    with pytest.raises(ValueError, match="under the 16 px window"):
        local_amplitude_l1(torch.zeros(1, 3, 12, 12), torch.zeros(1, 3, 12, 12))
    # the autoencoder's loss adds weight x the term, and its gradient reaches the encoder
    torch.manual_seed(0)
    vae = TileAutoencoder(channels=(8, 16), latent_channels=4, encoder_blocks=(1, 1),
                          decoder_blocks=(1, 1))  # fmt: skip
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    plain = AutoencoderLoss(vae, 0.0)
    sharp = AutoencoderLoss.of(vae, GeneratorConfig(vae_kl_weight=0.0, vae_amplitude_weight=2.0))
    assert (sharp.amplitude_weight, sharp.fft_weight, sharp.latent_noise) == (2.0, 0.0, 0.0)
    term = local_amplitude_l1(vae.decode(vae.encode(x)), x)
    loss = sharp(x)
    assert float(loss) == pytest.approx(float(plain(x) + 2.0 * term), rel=1e-5)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in vae.parameters())


def test_the_code_penalty_adds_the_weighted_mean_squared_code_and_old_configs_load_without():
    from generation.ldm.objectives import AutoencoderLoss, code_penalty

    torch.manual_seed(0)
    vae = TileAutoencoder(channels=(8, 16), latent_channels=4, encoder_blocks=(1, 1),
                          decoder_blocks=(1, 1))  # fmt: skip
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    code = vae.encode(x)
    assert float(code_penalty(code)) == pytest.approx(float((code.double() ** 2).mean()))
    plain = AutoencoderLoss(vae, 0.0)
    held = AutoencoderLoss.of(vae, GeneratorConfig(vae_kl_weight=0.0, vae_code_weight=0.5))
    assert held.code_weight == 0.5
    assert float(held(x)) == pytest.approx(float(plain(x) + 0.5 * code_penalty(code)), rel=1e-5)
    # its gradient pulls the codes towards zero: a step on the penalty alone shrinks them
    vae.zero_grad()
    code_penalty(vae.encode(x)).backward()
    with torch.no_grad():
        for p in vae.encoder.parameters():
            p -= 0.01 * p.grad
    assert float(code_penalty(vae.encode(x))) < float(code_penalty(code))
    # a generator trained before the field existed trained without the penalty
    legacy = json.loads(GeneratorConfig().to_json())
    del legacy["vae_code_weight"]
    assert GeneratorConfig.from_json(json.dumps(legacy)).vae_code_weight == 0.0
