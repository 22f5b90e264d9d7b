import pytest
import torch

from rtm_core import DecoderConfig, Generator, tiny
from rtm_core.decoder import IMLEDecoder, StyleGAN2Decoder, build_decoder
from rtm_core.layers import ModulatedConv2d, set_modconv_impl


@pytest.mark.parametrize("resolution", [16, 32, 64, 128, 256])
@pytest.mark.parametrize("kind", ["stylegan2", "imle"])
def test_decoder_output_shapes(kind, resolution):
    spec = ",".join(["4x1"] + [f"{2 ** i}m{2 ** (i - 1)},{2 ** i}x1" for i in range(3, resolution.bit_length())])
    config = DecoderConfig(kind=kind, img_resolution=resolution, channel_base=64, channel_max=8, block_spec=spec)
    decoder = build_decoder(config, w_dim=12)
    with torch.no_grad():
        img = decoder(torch.randn(2, 12))
    assert img.shape == (2, 3, resolution, resolution)
    assert torch.isfinite(img).all()


def test_greyscale_and_per_layer_ws():
    config = DecoderConfig(img_resolution=16, img_channels=1, channel_base=64, channel_max=8)
    decoder = StyleGAN2Decoder(config, w_dim=12)
    assert decoder.num_ws == 6
    w = torch.randn(2, 12)
    broadcast = decoder(w)
    assert broadcast.shape == (2, 1, 16, 16)
    torch.testing.assert_close(decoder(w[:, None].expand(-1, 6, -1)), broadcast)
    # Different styles per layer give a different image: every layer really reads its own w.
    ws = w[:, None].repeat(1, 6, 1)
    ws[:, -1] += 1
    assert not torch.allclose(decoder(ws), broadcast)


@pytest.mark.parametrize("shape", [(2, 11), (2, 5, 12), (12,)])
def test_bad_w_shape_is_a_value_error(shape):
    decoder = IMLEDecoder(tiny(decoder="imle").decoder, w_dim=12)
    with pytest.raises(ValueError, match="w must have shape"):
        decoder(torch.randn(*shape))


def test_imle_decoder_follows_its_block_spec():
    config = DecoderConfig(kind="imle", img_resolution=8, channel_base=64, channel_max=16,
                           block_spec="1x3,4m1,4x2,8m4,8x1")
    decoder = IMLEDecoder(config, w_dim=4)
    # RS-IMLE's DecBlocks: one per "RmS" entry (upsampling first), N per "RxN"
    assert [(b.resolution, b.upsample) for b in decoder.blocks] == [(1, False)] * 3 + [(4, True)] + [(4, False)] * 2 \
        + [(8, True), (8, False)]
    assert decoder.num_ws == 8 and decoder.const.shape == (16, 1, 1)
    # 3x3 convs only where the map is wider than 2 px; one width everywhere, bottleneck width / 4
    assert decoder.blocks[0].c2.kernel_size == (1, 1) and decoder.blocks[3].c2.kernel_size == (3, 3)
    assert {b.c1.out_channels for b in decoder.blocks} == {4}


def test_rs_imle_fewshot_generator_has_the_reference_parameter_count():
    """Counted by hand from SerChirag/rs-imle (models.py, mapping_network.py) for its few-shot
    settings (width 384, latent 1,024, bottleneck 0.25, 8 mapping layers) cut at 32x32:
    dec_blocks '1x4,4m1,4x4,8m4,8x4,16m8,16x3,32m16,32x2' = 21 DecBlocks.
      AdaIN style Linear 1024 -> 2 x 384:            1024 * 768 + 768 = 787,200
      c1 1x1 384 -> 96: 36,960 | c4 1x1 96 -> 384: 37,248
      c2, c3 3x3 96 -> 96: 83,040 each (1x1 on the 1x1 map: 9,312 each)
      block at 1x1: 880,032 (x 4); wider: 1,027,488 (x 17)
      constant 384 x 1 x 1 + out 1x1 conv 384 -> 3 (1,155) + gain 3 + bias 3
    decoder = 3,520,128 + 17,467,296 + 384 + 1,155 + 6 = 20,988,969
    mapper  = 8 x (1024 * 1024 + 1024) = 8,396,800"""
    from train.config import TrainConfig

    config = TrainConfig(model="rs-imle").model_config(32, 3)
    assert config.decoder.block_spec == "1x4,4m1,4x4,8m4,8x4,16m8,16x3,32m16,32x2"
    g = Generator(config)
    assert g.parameter_counts() == {"mapping": 8_396_800, "synthesis": 20_988_969, "total": 29_385_769}
    shapes = {n: tuple(p.shape) for n, p in g.synthesis.named_parameters()}
    assert shapes["const"] == (384, 1, 1) and shapes["blocks.0.adain.style.weight"] == (768, 1024)
    assert shapes["blocks.0.c2.weight"] == (96, 96, 1, 1) and shapes["blocks.4.c2.weight"] == (96, 96, 3, 3)
    assert shapes["to_rgb.weight"] == (3, 384, 1, 1) and shapes["gain"] == shapes["bias"] == (3, 1, 1)
    with torch.no_grad():
        assert g(torch.randn(2, 1024)).shape == (2, 3, 32, 32)


def test_imle_decoder_initialises_as_rs_imle_does():
    decoder = IMLEDecoder(DecoderConfig(kind="imle", img_resolution=8, channel_max=16, block_spec="1x2,4m1,4x1,8m4"),
                          w_dim=6)
    for block in decoder.blocks:
        assert all(float(c.bias.abs().max()) == 0 for c in (block.c1, block.c2, block.c3, block.c4))
        style = block.adain.style.bias
        assert torch.equal(style[:16], torch.ones(16)) and torch.equal(style[16:], torch.zeros(16))  # gamma 1, beta 0
    assert torch.equal(decoder.gain, torch.ones(3, 1, 1)) and torch.equal(decoder.bias, torch.zeros(3, 1, 1))


def test_the_learned_constant_gets_a_gradient():
    """Instance norm of a 1x1 map is 0: RS-IMLE skips it there, so the constant is learned."""
    decoder = IMLEDecoder(DecoderConfig(kind="imle", img_resolution=8, channel_max=8, block_spec="1x2,4m1,4x1,8m4"),
                          w_dim=6)
    decoder(torch.randn(3, 6)).square().mean().backward()
    assert float(decoder.const.grad.abs().max()) > 0


def test_noise_is_fresh_in_training_and_one_fixed_map_in_eval():
    """Off by default; when on (the adversarial presets), StyleGAN2's noise_mode: random while
    training, "const" in eval mode, so that a seed is still one image in the app."""
    g = Generator(tiny()).eval()
    z = torch.randn(2, 16)
    assert torch.equal(g(z), g(z))
    noisy = Generator(tiny().replace(decoder={"noise": True}))
    for p in noisy.parameters():  # the learned noise strength starts at 0; turn it up
        if p.ndim == 0:
            p.data.fill_(0.5)
    with torch.no_grad():
        assert not torch.equal(noisy.train()(z), noisy(z))
        fixed = noisy.eval()(z)
        assert torch.equal(fixed, noisy(z))
        torch.testing.assert_close(noisy(z[:1]), fixed[:1], rtol=1e-4, atol=1e-4)   # whatever else is in the batch
        for p in noisy.parameters():
            if p.ndim == 0:
                p.data.fill_(0.0)
        assert not torch.allclose(noisy(z), fixed)   # the fixed maps do reach the image


@pytest.mark.parametrize("demodulate", [True, False])
@pytest.mark.parametrize("channels,kernel", [(8, 3), (64, 3), (16, 1)])
def test_modulated_conv_paths_agree(channels, kernel, demodulate):
    conv = ModulatedConv2d(channels, channels * 2, kernel, w_dim=10, demodulate=demodulate)
    with torch.no_grad():
        conv.affine.bias.normal_()  # styles far from 1, to exercise the modulation
    x, w = torch.randn(3, channels, 9, 9), torch.randn(3, 10)
    outs = {}
    for impl in ("scaled", "grouped"):
        conv.impl = impl
        outs[impl] = conv(x, w)
    torch.testing.assert_close(outs["scaled"], outs["grouped"], rtol=1e-4, atol=1e-5)


def test_modulated_conv_paths_agree_on_gradients():
    conv = ModulatedConv2d(8, 8, 3, w_dim=6)
    x, w = torch.randn(2, 8, 6, 6), torch.randn(2, 6)
    grads = {}
    for impl in ("scaled", "grouped"):
        conv.zero_grad()
        conv.impl = impl
        conv(x, w).square().sum().backward()
        grads[impl] = [p.grad.clone() for p in conv.parameters()]
    for a, b in zip(grads["scaled"], grads["grouped"]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_whole_generator_agrees_across_modconv_paths_and_auto_picks_scaled_on_cpu():
    g = Generator(tiny()).eval()
    z = torch.randn(3, 16)
    auto = g(z)
    set_modconv_impl(g, "grouped")
    torch.testing.assert_close(g(z), auto, rtol=1e-4, atol=1e-5)
    conv = next(m for m in g.modules() if isinstance(m, ModulatedConv2d))
    conv.impl = "auto"
    for training in (True, False):  # "auto" on a CPU tensor is "scaled" in both modes
        assert conv.train(training).resolve_impl(z) == "scaled"
    cuda_like = type("CudaTensor", (), {"device": torch.device("cuda")})()   # what resolve_impl reads of x
    assert conv.eval().resolve_impl(cuda_like) == "grouped" and conv.train().resolve_impl(cuda_like) == "scaled"
    with pytest.raises(ValueError, match="impl must be one of"):
        set_modconv_impl(g, "fast")
    conv.impl = "fast"
    with pytest.raises(ValueError, match="impl must be one of"):
        g(z)
