"""rtm_core: the Recursive Token Mapper (RTM) generator as a library.

    from rtm_core import Generator, tiny, seed_to_z, iter_steps
    g = Generator(tiny())
    for out in iter_steps(g, seed_to_z(42, g.z_dim)[None]):
        print(out.step, out.w.norm().item())

Names are imported on first use (PEP 562), so `import rtm_core.config` (dataclasses only)
does not pay for importing torch: command-line --help stays fast.
"""

import importlib

from .version import __version__

_HOME = {
    "checkpoint": ("CheckpointError", "load_checkpoint", "read_config", "read_meta", "save_checkpoint"),
    "config": ("DecoderConfig", "MapperConfig", "ModelConfig", "app_default", "rs_imle_fewshot", "tiny"),
    "generator": ("Generator",),
    "interventions": ("TokenIntervention",),
    "mapper": ("MapperState", "MLPMapper", "RecursiveMapper"),
    "sampling": ("StepOutput", "Trajectory", "batch_invariant_trajectory", "image_grid", "iter_steps", "refinement_grid", "sample", "seed_to_z",
                 "seeds_to_z", "to_pil", "to_uint8", "trajectory"),
}
_MODULE_OF = {name: module for module, names in _HOME.items() for name in names}
__all__ = sorted(_MODULE_OF) + ["__version__"]


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'rtm_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)
    globals()[name] = value  # the next access is a plain lookup
    return value


def __dir__() -> list[str]:
    return __all__
