import dataclasses
import json

import pytest

from rtm_core.config import (CONFIG_VERSION, DecoderConfig, MapperConfig, ModelConfig, app_default,
                             imle_block_spec_at, parse_block_spec, stylegan2_mapping, tiny)


@pytest.mark.parametrize("config", [tiny(), tiny("mlp", "imle"), app_default(), app_default("mlp", "imle"),
                                    app_default().replace(mapper=stylegan2_mapping())])
def test_round_trip_through_json(config):
    data = json.loads(json.dumps(config.to_dict()))
    assert data["version"] == CONFIG_VERSION
    assert ModelConfig.from_dict(data) == config


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        tiny().mapper.num_steps = 4


def test_unknown_and_missing_keys_are_named():
    data = tiny().to_dict()
    data["mapper"]["num_stepz"] = 3
    with pytest.raises(ValueError, match=r"unknown keys \['num_stepz'\]"):
        ModelConfig.from_dict(data)
    data = tiny().to_dict()
    del data["decoder"]["img_resolution"]
    with pytest.raises(ValueError, match=r"missing keys \['img_resolution'\]"):
        ModelConfig.from_dict(data)
    data = tiny().to_dict()
    data["optimizer"] = {}
    with pytest.raises(ValueError, match="unknown keys"):
        ModelConfig.from_dict(data)


def test_a_version_1_file_reads_as_the_mlp_it_described():
    # Version 1 had neither mlp_gain nor mlp_layer: its MLP was equalized with no gain.
    data = app_default("mlp").to_dict()
    data["version"] = 1
    for key in ("mlp_gain", "mlp_layer", "injection", "mlp_init"):
        del data["mapper"][key]
    data["mapper"]["lr_multiplier"] = 0.01
    mapper = ModelConfig.from_dict(data).mapper
    assert (mapper.mlp_layer, mapper.mlp_gain, mapper.lr_multiplier) == ("equalized", 1.0, 0.01)


def test_a_version_2_file_reads_as_the_network_it_described():
    # Version 2 had no injection / mlp_init: torch's init for RTM's embedding, He's for the MLP.
    data = app_default().to_dict()
    data["version"] = 2
    for key in ("injection", "mlp_init"):
        del data["mapper"][key]
    mapper = ModelConfig.from_dict(data).mapper
    assert (mapper.injection, mapper.mlp_init) == ("torch", "he")
    assert (MapperConfig().injection, MapperConfig().mlp_init) == ("unit", "he")   # what new models get
    # Its IMLE decoder was another network: refused with the reason, not loaded into the wrong shapes.
    data["decoder"] = {**data["decoder"], "kind": "imle"}
    with pytest.raises(ValueError, match="IMLE decoder of rtm_core < 0.3.*Retrain"):
        ModelConfig.from_dict(data)


def test_imle_block_spec_follows_the_resolution():
    assert imle_block_spec_at("1x4,4m1,4x4,8m4,8x4,16m8,16x3,32m16,32x2,64m32,64x2", 16) == "1x4,4m1,4x4,8m4,8x4,16m8,16x3"
    assert imle_block_spec_at("1x2,4m1,4x2,8m4,8x1", 32) == "1x2,4m1,4x2,8m4,8x1,16m8,16x1,32m16,32x1"
    assert imle_block_spec_at("1x2", 8) == "1x2,4m1,4x2,8m4,8x2"
    assert imle_block_spec_at("1x1,4m1,4x1,8m4,8x1,16m8,16x1", 16) == "1x1,4m1,4x1,8m4,8x1,16m8,16x1"


def test_baseline_defaults_are_rs_imle_and_stylegan2_is_one_call_away():
    mapper = MapperConfig(kind="mlp")
    assert (mapper.mlp_layer, mapper.mlp_gain, mapper.lr_multiplier) == ("linear", 1.0, 1.0)
    sg2 = MapperConfig(**stylegan2_mapping())
    assert (sg2.mlp_layer, round(sg2.mlp_gain ** 2, 6), sg2.lr_multiplier) == ("equalized", 2.0, 0.01)
    with pytest.raises(ValueError, match="needs mlp_layer='equalized'"):
        MapperConfig(kind="mlp", lr_multiplier=0.01)


def test_newer_version_is_refused():
    data = tiny().to_dict()
    data["version"] = CONFIG_VERSION + 1
    with pytest.raises(ValueError, match="newer than this rtm_core"):
        ModelConfig.from_dict(data)
    del data["version"]
    with pytest.raises(ValueError, match="version"):
        ModelConfig.from_dict(data)


@pytest.mark.parametrize("field,value", [("num_steps", 0), ("num_cycles", 0), ("num_steps", 2.5),
                                         ("z_dim", -1), ("kind", "transformer"), ("state_init", "zeros"),
                                         ("grad_steps", 0), ("num_steps", True), ("mlp_gain", 0),
                                         ("mlp_layer", "conv"), ("lr_multiplier", -1.0)])
def test_bad_mapper_fields_name_the_field(field, value):
    with pytest.raises(ValueError, match=f"MapperConfig.{field}"):
        MapperConfig(**{field: value})


@pytest.mark.parametrize("field,value", [("img_resolution", 48), ("img_resolution", 2), ("kind", "vae"),
                                         ("img_channels", 0)])
def test_bad_decoder_fields_name_the_field(field, value):
    with pytest.raises(ValueError, match=f"DecoderConfig.{field}"):
        DecoderConfig(**{field: value})


def test_block_spec_parsing():
    assert parse_block_spec("1x4,4m1,4x4,8m4,8x2") == [(1, "x", 4), (4, "m", 1), (4, "x", 4), (8, "m", 4), (8, "x", 2)]
    for bad in ["", "4x", "1x2,4x2", "1x2,4m2", "3x2", "4m1", "1x2,2m1,2y1"]:
        with pytest.raises(ValueError, match="block_spec"):
            parse_block_spec(bad)
    with pytest.raises(ValueError, match="ends at resolution 8"):
        DecoderConfig(kind="imle", img_resolution=16, block_spec="1x1,4m1,4x1,8m4,8x1")


def test_replace_and_num_ws():
    config = tiny().replace(mapper={"kind": "mlp"}, decoder={"img_resolution": 32, "block_spec": "1x1,32m1,32x1"})
    assert config.mapper.kind == "mlp" and config.decoder.img_resolution == 32
    assert config.num_ws == 8  # StyleGAN2 at 32x32: 2 * log2(32) - 2
    assert config.replace(decoder={"kind": "imle"}).num_ws == 3   # one block for "1x1", one for "32m1", one for "32x1"
    with pytest.raises(ValueError, match="unknown sections"):
        tiny().replace(optimizer={})
