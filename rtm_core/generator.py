"""Generator = mapping network (z -> w) + synthesis network (w -> image)."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .config import ModelConfig
from .decoder import build_decoder
from .mapper import build_mapper


class Generator(nn.Module):
    """Composes a mapper and a decoder; the only difference between RTM and the
    baseline is `config.mapper.kind`."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        if not isinstance(config, ModelConfig):
            raise ValueError(f"config must be a ModelConfig, got {type(config).__name__}")
        self.config = config
        self.mapping = build_mapper(config.mapper)
        self.synthesis = build_decoder(config.decoder, w_dim=config.mapper.w_dim)

    @property
    def z_dim(self) -> int:
        return self.config.mapper.z_dim

    @property
    def w_dim(self) -> int:
        return self.config.mapper.w_dim

    @property
    def img_resolution(self) -> int:
        return self.config.decoder.img_resolution

    @property
    def num_steps(self) -> int:
        """Outer steps the mapper was built to run (H for RTM, 1 for the MLP)."""
        return self.mapping.num_steps

    def map(self, z: torch.Tensor, num_steps: Optional[int] = None) -> torch.Tensor:
        """z (B, z_dim) -> w (B, w_dim), with the mapper's short-gradient rule."""
        return self.mapping(z, num_steps)

    def synthesize(self, w: torch.Tensor) -> torch.Tensor:
        """w (B, w_dim) -> images (B, C, R, R), roughly in [-1, 1]."""
        return self.synthesis(w)

    def forward(self, z: torch.Tensor, num_steps: Optional[int] = None) -> torch.Tensor:
        return self.synthesize(self.map(z, num_steps))

    def parameter_counts(self) -> dict[str, int]:
        return {"mapping": self.mapping.num_parameters(), "synthesis": self.synthesis.num_parameters(),
                "total": sum(p.numel() for p in self.parameters())}
