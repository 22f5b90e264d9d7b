"""rtm_core: the Recursive Token Mapper (RTM) generator as a library.

    from rtm_core import Generator, tiny, seed_to_z, iter_steps
    g = Generator(tiny())
    for out in iter_steps(g, seed_to_z(42, g.z_dim)[None]):
        print(out.step, out.w.norm().item())
"""

__version__ = "0.1.0"  # defined before the imports below: checkpoint.py records it

from .checkpoint import CheckpointError, load_checkpoint, read_config, read_meta, save_checkpoint
from .config import DecoderConfig, MapperConfig, ModelConfig, app_default, tiny
from .generator import Generator
from .mapper import MapperState, MLPMapper, RecursiveMapper
from .sampling import (StepOutput, Trajectory, image_grid, iter_steps, refinement_grid, sample, seed_to_z,
                       seeds_to_z, to_pil, to_uint8, trajectory)

__all__ = [
    "CheckpointError", "DecoderConfig", "Generator", "MapperConfig", "MapperState", "MLPMapper",
    "ModelConfig", "RecursiveMapper", "StepOutput", "Trajectory", "app_default", "iter_steps",
    "load_checkpoint", "read_config", "read_meta", "sample", "save_checkpoint", "seed_to_z",
    "seeds_to_z", "tiny", "to_uint8", "trajectory", "image_grid", "refinement_grid", "to_pil",
]
