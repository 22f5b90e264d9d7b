"""Model configuration: frozen dataclasses that are saved next to the weights.

A checkpoint's `config.json` is `ModelConfig.to_dict()`; loading it back with
`ModelConfig.from_dict()` rebuilds exactly the same network, so no flag ever has to
be repeated at load time. Every field is validated when the object is built, and
each error names the field and says what would be accepted.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

# Bump when a change to the fields means an older rtm_core cannot read the file.
CONFIG_VERSION = 4
# Fields a file of an older version lacks, with the value that reproduces the network it was
# written for. Version 1 had no mapper.mlp_gain / mlp_layer (its MLP was equalized, no gain);
# version 2 had no mapper.injection / mlp_init (RTM's embedding and the MLP's layers had
# torch's and He's initialisation); version 3 had no mapper.rtm_layer (RTM's layers were torch Linear).
_ADDED_IN_VERSION = {
    2: {"mapper": {"mlp_gain": 1.0, "mlp_layer": "equalized"}},
    3: {"mapper": {"injection": "torch", "mlp_init": "he"}},
    4: {"mapper": {"rtm_layer": "linear"}},
}

MAPPER_KINDS = ("rtm", "mlp")
DECODER_KINDS = ("stylegan2", "imle")
STATE_INITS = ("fixed", "input")
MLP_LAYERS = ("linear", "equalized")
MLP_INITS = ("he", "torch")
INJECTIONS = ("unit", "torch")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


# Upper bounds far above any sensible model, so that a damaged or hostile config.json is refused
# before it asks for terabytes ("tried to allocate 2048000000000000 bytes").
LIMITS = {"z_dim": 8192, "w_dim": 8192, "num_tokens": 1024, "token_dim": 8192, "block_layers": 64,
          "num_steps": 4096, "num_cycles": 256, "grad_steps": 4096, "mlp_layers": 64, "mlp_width": 16384,
          "img_channels": 4, "channel_base": 1 << 20, "channel_max": 4096, "expansion": 64}


def _positive_int(obj: Any, name: str) -> None:
    value, high = getattr(obj, name), LIMITS.get(name)
    _require(
        isinstance(value, int) and not isinstance(value, bool) and value >= 1 and (high is None or value <= high),
        f"{type(obj).__name__}.{name} must be an integer in [1, {high}], got {value!r}" if high else
        f"{type(obj).__name__}.{name} must be an integer >= 1, got {value!r}",
    )


def _is_pow2(n: int) -> bool:
    return isinstance(n, int) and n >= 1 and (n & (n - 1)) == 0


@dataclass(frozen=True)
class MapperConfig:
    """The mapping network z -> w: the recursive token mapper or the one-pass MLP."""

    kind: str = "rtm"            # "rtm" (recursive token mapper) | "mlp" (one-pass baseline)
    z_dim: int = 512             # input noise dimensionality
    w_dim: int = 512             # style dimensionality handed to the decoder
    # --- RTM -----------------------------------------------------------------------
    num_tokens: int = 16         # T: latent tokens the noise is split into
    token_dim: int = 128         # d: width of each token (128 keeps RTM's cost per sample near the decoder's)
    block_layers: int = 1        # mixer layers inside the one shared block f
    expansion: float = 4.0       # SwiGLU hidden width / input width (token and channel mixing)
    num_steps: int = 8           # H: outer refinement steps at training (inference may differ)
    num_cycles: int = 2          # L: inner z_L updates per outer step
    state_init: str = "fixed"    # "fixed": fixed (not learned) buffers shared by all seeds (TRM); "input": z_H starts at x
    grad_steps: int = 1          # last outer steps that carry gradient; >= num_steps means full backprop
    rtm_layer: str = "linear"    # RTM's dense layers (embed, the block's SwiGLUs, readout): "linear": torch Linear |
                                 # "equalized": StyleGAN's equalized lr with lr_multiplier, so that under the
                                 # adversarial objective RTM and StyleGAN2's mapping can run at one multiplier
    injection: str = "unit"      # the input injection x = embed(z): "unit": weights N(0, 1/z_dim), zero bias, so x
                                 # starts at unit RMS like the states it is added to (TRM scales its embedding so) |
                                 # "torch": torch's Linear init, RMS ~0.58 (checkpoints of config version <= 2)
    # --- MLP baseline ----------------------------------------------------------------
    # Defaults are RS-IMLE's mapper (8 x torch Linear + leaky ReLU, full learning rate), the
    # baseline for IMLE training. StyleGAN2's mapping network (the adversarial baseline) is
    # equalized layers, gain sqrt(2), lr_multiplier 0.01: see stylegan2_mapping().
    mlp_layers: int = 8          # fully connected layers (RS-IMLE and StyleGAN2: 8)
    mlp_width: int = 512         # hidden width of those layers
    mlp_layer: str = "linear"    # "linear": torch Linear, PyTorch init (RS-IMLE; Adam steps act on the
                                 # weights as RTM's own Linear layers do) | "equalized": StyleGAN's equalized lr
    mlp_gain: float = 1.0        # factor after each leaky ReLU: 1 (RS-IMLE) | sqrt(2) (StyleGAN2, keeps the scale)
    mlp_init: str = "he"         # "linear" layers' weights: "he" (He init for leaky ReLU 0.2, keeps the scale) |
                                 # "torch" (torch's default, as RS-IMLE's code; shrinks the signal per layer). Bias 0
    lr_multiplier: float = 1.0   # equalized-lr multiplier of the MLP (1 RS-IMLE, 0.01 StyleGAN2), or of RTM's layers
                                 # with rtm_layer "equalized"

    def __post_init__(self) -> None:
        _require(self.kind in MAPPER_KINDS, f"MapperConfig.kind must be one of {MAPPER_KINDS}, got {self.kind!r}")
        for name in ("z_dim", "w_dim", "num_tokens", "token_dim", "block_layers", "num_steps",
                     "num_cycles", "grad_steps", "mlp_layers", "mlp_width"):
            _positive_int(self, name)
        _require(self.state_init in STATE_INITS,
                 f"MapperConfig.state_init must be one of {STATE_INITS}, got {self.state_init!r}")
        _require(isinstance(self.expansion, (int, float)) and 0 < self.expansion <= LIMITS["expansion"],
                 f"MapperConfig.expansion must be in (0, {LIMITS['expansion']}], got {self.expansion!r}")
        _require(self.mlp_layer in MLP_LAYERS,
                 f"MapperConfig.mlp_layer must be one of {MLP_LAYERS}, got {self.mlp_layer!r}")
        _require(self.mlp_init in MLP_INITS, f"MapperConfig.mlp_init must be one of {MLP_INITS}, got {self.mlp_init!r}")
        _require(self.injection in INJECTIONS,
                 f"MapperConfig.injection must be one of {INJECTIONS}, got {self.injection!r}")
        _require(self.rtm_layer in MLP_LAYERS,
                 f"MapperConfig.rtm_layer must be one of {MLP_LAYERS}, got {self.rtm_layer!r}")
        equalized = self.mlp_layer == "equalized" if self.kind == "mlp" else self.rtm_layer == "equalized"
        _require(equalized or self.lr_multiplier == 1,
                 f"MapperConfig.lr_multiplier {self.lr_multiplier} needs {'mlp' if self.kind == 'mlp' else 'rtm'}"
                 f"_layer='equalized' (a torch Linear layer has no learning-rate multiplier)")
        for name in ("lr_multiplier", "mlp_gain"):
            value = getattr(self, name)
            _require(isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= 100,
                     f"MapperConfig.{name} must be a number in (0, 100], got {value!r}")

    @property
    def trained_steps(self) -> int:
        """Outer steps the mapper runs by default (H for RTM, one pass for the MLP)."""
        return self.num_steps if self.kind == "rtm" else 1


@dataclass(frozen=True)
class DecoderConfig:
    """The synthesis network w -> image."""

    kind: str = "stylegan2"      # "stylegan2" (modulated convs) | "imle" (RS-IMLE's AdaIN residual blocks)
    img_resolution: int = 64     # output height = width, a power of two
    img_channels: int = 3        # 3 for RGB, 1 for greyscale
    channel_base: int = 2048     # stylegan2: channels at resolution r = min(channel_base // r, channel_max)
    channel_max: int = 128       # stylegan2: cap on channels at any resolution; imle: the channels at every
                                 # resolution (RS-IMLE's one --width: its blocks add across upsampling)
    noise: bool = False          # per-pixel noise (StyleGAN2): fresh in training, one fixed map per layer in eval mode (a
                                 # seed stays one image); on in the adversarial presets, off in the IMLE ones
    block_spec: str = "1x2,4m1,4x2,8m4,8x2,16m8,16x2,32m16,32x2,64m32,64x2"  # imle only, as RS-IMLE's
                                 # --dec_blocks: "RxN" = N blocks at resolution R, "RmS" = one block that first
                                 # upsamples (nearest) from S to R; every block is AdaIN(w) + a residual bottleneck

    def __post_init__(self) -> None:
        _require(self.kind in DECODER_KINDS, f"DecoderConfig.kind must be one of {DECODER_KINDS}, got {self.kind!r}")
        for name in ("img_resolution", "img_channels", "channel_base", "channel_max"):
            _positive_int(self, name)
        _require(_is_pow2(self.img_resolution) and 4 <= self.img_resolution <= 1024,
                 f"DecoderConfig.img_resolution must be a power of two in [4, 1024], got {self.img_resolution}")
        _require(isinstance(self.noise, bool), f"DecoderConfig.noise must be a bool, got {self.noise!r}")
        if self.kind == "imle":
            blocks = parse_block_spec(self.block_spec)  # raises with a clear message
            _require(blocks[-1][0] == self.img_resolution,
                     f"DecoderConfig.block_spec ends at resolution {blocks[-1][0]} but img_resolution is "
                     f"{self.img_resolution}; make its last entry '{self.img_resolution}xN'")

    def channels_at(self, resolution: int) -> int:
        if self.kind == "imle":
            return self.channel_max
        return max(1, min(self.channel_base // resolution, self.channel_max))

    def at_resolution(self, resolution: int, channels: int) -> "DecoderConfig":
        """This decoder for images of another size. The IMLE block spec is cut at `resolution`
        (RS-IMLE's few-shot spec goes to 256 px) or, if it ends below, extended with as many
        blocks per resolution as its last entry has."""
        return dataclasses.replace(self, img_resolution=resolution, img_channels=channels,
                                   block_spec=imle_block_spec_at(self.block_spec, resolution))


def imle_block_spec_at(spec: str, resolution: int) -> str:
    """'1x4,4m1,4x4,8m4,8x2' at 4 -> '1x4,4m1,4x4'; at 16 -> '1x4,4m1,4x4,8m4,8x2,16m8,16x2'."""
    entries = [(res, op, arg) for res, op, arg in parse_block_spec(spec) if res <= resolution]
    res, blocks = entries[-1][0], [arg for _, op, arg in entries if op == "x"][-1]
    if res < 4 and resolution >= 4:
        entries += [(4, "m", res), (4, "x", blocks)]
        res = 4
    while res < resolution:
        entries += [(res * 2, "m", res), (res * 2, "x", blocks)]
        res *= 2
    return ",".join(f"{r}{op}{a}" for r, op, a in entries)


def imle_num_blocks(spec: str) -> int:
    """Blocks of an IMLE block spec: N for each 'RxN', one for each 'RmS' (RS-IMLE's DecBlocks)."""
    return sum(arg if op == "x" else 1 for _, op, arg in parse_block_spec(spec))


def parse_block_spec(spec: str) -> list[tuple[int, str, int]]:
    """'1x2,4m1,4x2' -> [(1, 'x', 2), (4, 'm', 1), (4, 'x', 2)].

    Each entry is (resolution, op, arg): op 'x' = arg residual blocks at that resolution,
    op 'm' = upsample from resolution arg. Resolutions must never shrink.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError("DecoderConfig.block_spec must be a non-empty string such as '1x2,4m1,4x2'")
    blocks: list[tuple[int, str, int]] = []
    current = None
    for entry in spec.split(","):
        entry = entry.strip()
        op = "x" if "x" in entry else "m" if "m" in entry else None
        parts = entry.split(op) if op else []
        if op is None or len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise ValueError(f"DecoderConfig.block_spec entry {entry!r} is not 'RxN' or 'RmS' (e.g. '8x2', '8m4')")
        res, arg = int(parts[0]), int(parts[1])
        if not _is_pow2(res):
            raise ValueError(f"DecoderConfig.block_spec entry {entry!r}: resolution {res} is not a power of two")
        if op == "x":
            if current is not None and res != current:
                raise ValueError(f"DecoderConfig.block_spec entry {entry!r} is at resolution {res} but the "
                                 f"previous entry left the features at {current}; add '{res}m{current}' first")
            if arg < 1:
                raise ValueError(f"DecoderConfig.block_spec entry {entry!r} must have at least one block")
        else:
            if current is None or arg != current or res <= arg:
                raise ValueError(f"DecoderConfig.block_spec entry {entry!r} must upsample from the current "
                                 f"resolution ({current}) to a larger one")
        current = res
        blocks.append((res, op, arg))
    if blocks[0][1] != "x":
        raise ValueError("DecoderConfig.block_spec must start with 'RxN' (the learned constant's resolution)")
    return blocks


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a Generator: its mapper and its decoder."""

    mapper: MapperConfig = field(default_factory=MapperConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)

    def __post_init__(self) -> None:
        _require(isinstance(self.mapper, MapperConfig), "ModelConfig.mapper must be a MapperConfig")
        _require(isinstance(self.decoder, DecoderConfig), "ModelConfig.decoder must be a DecoderConfig")

    @property
    def num_ws(self) -> int:
        """How many style inputs the decoder has (StyleGAN vocabulary); w is broadcast to all."""
        log2 = int(math.log2(self.decoder.img_resolution))
        if self.decoder.kind == "stylegan2":
            return 2 * log2 - 2  # one conv at 4x4, two per later resolution, +1 for the last ToRGB
        return imle_num_blocks(self.decoder.block_spec)

    def replace(self, **changes: Any) -> "ModelConfig":
        """Copy with some fields of mapper/decoder changed: replace(mapper={'kind': 'mlp'})."""
        mapper = dataclasses.replace(self.mapper, **changes.pop("mapper", {}))
        decoder = dataclasses.replace(self.decoder, **changes.pop("decoder", {}))
        if changes:
            raise ValueError(f"ModelConfig.replace: unknown sections {sorted(changes)}; use 'mapper' or 'decoder'")
        return ModelConfig(mapper=mapper, decoder=decoder)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": CONFIG_VERSION,
            "mapper": dataclasses.asdict(self.mapper),
            "decoder": dataclasses.asdict(self.decoder),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        if not isinstance(data, dict):
            raise ValueError(f"model config must be a JSON object, got {type(data).__name__}")
        version = data.get("version")
        if not isinstance(version, int):
            raise ValueError("model config has no integer 'version' field; was it written by rtm_core?")
        if version > CONFIG_VERSION:
            raise ValueError(f"model config version {version} is newer than this rtm_core understands "
                             f"({CONFIG_VERSION}); upgrade rtm_core to load it")
        _check_keys(data, {"version", "mapper", "decoder"}, "model config")
        sections = {name: data[name] for name in ("mapper", "decoder")}
        for added_in, fields in _ADDED_IN_VERSION.items():
            if version < added_in:
                sections = {name: {**fields.get(name, {}), **value} if isinstance(value, dict) else value
                            for name, value in sections.items()}
        if version < 3 and isinstance(sections["decoder"], dict) and sections["decoder"].get("kind") == "imle":
            raise ValueError(f"model config version {version} has the IMLE decoder of rtm_core < 0.3, which was not "
                             f"RS-IMLE's (a different network): its weights cannot be loaded here. Retrain it")
        return cls(mapper=_section(MapperConfig, sections["mapper"], "mapper"),
                   decoder=_section(DecoderConfig, sections["decoder"], "decoder"))


def _check_keys(data: dict, expected: set[str], where: str) -> None:
    unknown, missing = set(data) - expected, expected - set(data)
    if unknown:
        raise ValueError(f"{where} has unknown keys {sorted(unknown)} (expected {sorted(expected)})")
    if missing:
        raise ValueError(f"{where} is missing keys {sorted(missing)}")


def _section(cls: type, data: Any, name: str) -> Any:
    if not isinstance(data, dict):
        raise ValueError(f"model config section '{name}' must be an object, got {type(data).__name__}")
    _check_keys(data, {f.name for f in dataclasses.fields(cls)}, f"model config section '{name}'")
    return cls(**data)


# --- presets ------------------------------------------------------------------------

def tiny(mapper: str = "rtm", decoder: str = "stylegan2") -> ModelConfig:
    """A few-thousand-parameter model for tests: 16x16 RGB, H=3, L=2. Runs in milliseconds."""
    return ModelConfig(
        mapper=MapperConfig(kind=mapper, z_dim=16, w_dim=16, num_tokens=4, token_dim=8, num_steps=3,
                            num_cycles=2, mlp_layers=2, mlp_width=16),
        decoder=DecoderConfig(kind=decoder, img_resolution=16, channel_base=128, channel_max=16,
                              block_spec="1x1,4m1,4x1,8m4,8x1,16m8,16x1"),
    )


def stylegan2_mapping() -> dict[str, Any]:
    """MapperConfig fields of StyleGAN2's mapping network (for adversarial training): equalized
    layers, sqrt(2) gain after each leaky ReLU and a 0.01 learning-rate multiplier. Under IMLE
    its weights barely move (0.17 % in 8,000 steps, measured), so IMLE's baseline is RS-IMLE's."""
    return {"kind": "mlp", "mlp_layer": "equalized", "mlp_gain": math.sqrt(2), "lr_multiplier": 0.01}


def rs_imle_fewshot(mapper: str = "mlp", decoder: str = "imle") -> ModelConfig:
    """RS-IMLE's few-shot generator, as its code builds it (SerChirag/rs-imle, hps.py "fewshot"):
    1,024-d latent, its mapping network (PixelNorm, 8 x torch Linear with torch's init and zero
    bias + leaky ReLU 0.2), its decoder at width 384 with the few-shot block spec (to 256 px;
    train.config cuts it at the data's resolution). 8.4 M + 21.0 M parameters at 32x32."""
    return ModelConfig(
        mapper=MapperConfig(kind=mapper, z_dim=1024, w_dim=1024, mlp_layers=8, mlp_width=1024, mlp_layer="linear",
                            mlp_init="torch", mlp_gain=1.0),
        decoder=DecoderConfig(kind=decoder, img_resolution=256, channel_max=384,
                              block_spec="1x4,4m1,4x4,8m4,8x4,16m8,16x3,32m16,32x2,64m32,64x2,128m64,128x2,256m128"),
    )


def app_default(mapper: str = "rtm", decoder: str = "stylegan2") -> ModelConfig:
    """The app's model family: H=8, L=2, 64x64 RGB by default. The shipped checkpoints are this
    model at 32x32 with channel_base 1024 (train.config's cpu preset: the resolution comes from
    the data); the gpu preset trains it at 64x64 as it is.

    Why 64x64 with at most 128 channels: emoji stay recognisable at 64 px, and one seed's
    whole trajectory (9 frames) decodes on a 2-core CPU well inside the app's latency
    budget (see docs/BENCHMARKS.md). z_dim = w_dim = 512 as in StyleGAN2 and the paper.
    """
    return ModelConfig(mapper=MapperConfig(kind=mapper), decoder=DecoderConfig(kind=decoder))
