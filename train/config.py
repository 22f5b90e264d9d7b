"""Training configuration: one frozen dataclass, presets, and CLI flags made from its fields.

The model itself is described by rtm_core's dataclasses and nowhere else: `--mapper.FIELD`
and `--decoder.FIELD` flags are generated from MapperConfig and DecoderConfig, and change
that field of the `--model` preset (e.g. `--mapper.kind mlp`, `--mapper.num-steps 1`).
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

from rtm_core.config import DecoderConfig, MapperConfig, ModelConfig, app_default, rs_imle_fewshot, tiny

from .cli import program_name
from .protocol import NUM_SAMPLES

MODEL_PRESETS = {"app": app_default, "tiny": tiny, "rs-imle": rs_imle_fewshot}
REJECTIONS = ("any", "knn")             # train/imle.py:select_nearest
OBJECTIVES = ("imle", "adversarial")
LR_SCHEDULES = ("constant", "cosine")   # train/trainer.py:lr_factor
AUGMENT_POLICIES = ("color,translation,cutout", "translation,cutout", "none")   # train/augment.py
# Schedules that can be given in images, and the step-counted field each one sets.
IMAGE_COUNTS = {"warmup_images": "warmup_steps", "max_images": "max_steps", "ema_half_life_images": "ema_decay"}
# The dataset decides these; setting them by flag would only contradict it.
FROM_DATA = ("img_resolution", "img_channels")


@dataclass(frozen=True)
class TrainConfig:
    # --- what to train on, where to write ---------------------------------------------
    data: str = ""                  # prepared dataset folder (python -m train.data ...)
    out: str = "runs/rtm"           # run folder: checkpoint/, samples/, metrics.jsonl
    resume: bool = False            # continue from out/checkpoint/ exactly where it stopped
    overwrite: bool = False         # a new run into an --out folder that is not empty: move what it holds aside to
                                    # OUT-previous-N first (nothing is deleted); without it such a run is refused
    init_from: str = ""             # start from this checkpoint folder's model and weights (and their EMA), with a
                                    # fresh optimizer, warmup and step count: a stage of a long run, or fine-tuning
                                    # a shipped model on your images (train/init_from.py); with --resume, the run's
                                    # own checkpoint is continued and this only keeps the lineage; "shipped" = the
                                    # app's default model where it fits the data, else random; "" or "none" = random
    seed: int = 0                   # seeds the model init, the IMLE pools and the data order
    objective: str = "imle"         # "imle" (RS-IMLE) | "adversarial" (StyleGAN2's): train/objectives/
    # --- the model: a preset of rtm_core plus field overrides ----------------------------
    model: str = "app"              # "app" (rtm_core.app_default) | "rs-imle" (RS-IMLE's few-shot generator) | "tiny"
    mapper: dict = field(default_factory=dict)   # MapperConfig fields to change, e.g. {"kind": "mlp"}
    decoder: dict = field(default_factory=dict)  # DecoderConfig fields to change (resolution comes from the data)
    # --- loss: a perceptual distance (RS-IMLE's kind) + weighted pixel L2 ---------------
    loss_perceptual: float = 0.0    # weight of the LPIPS-style EfficientNet-Lite1 distance; 0 = off
    loss_pixel: float = 1.0         # weight of the pixel mean squared error
    perceptual_size: int = 64       # images are resized to this side for the perceptual distance; 0 = from the data (train/recipe.py)
    perceptual_weights: str = "imagenet"  # the perceptual network's weights: "imagenet" (the distance itself) | "random":
                                    # the same network untrained, same cost, for timing where the weights cannot be
                                    # had (bench/gpu_check.sh); a model trained so has not learned the distance
    # --- optimisation --------------------------------------------------------------------
    batch_size: int = 32            # images per optimizer step, summed over all ranks; 0 = from the data and device (train/recipe.py)
    lr: float = 2e-4                # AdamW learning rate after warmup; 0 = scaled from the batch size (train/recipe.py)
    synthesis_lr_scale: float = 1.0 # the decoder's rate = lr x this. Its layers are equalized (weights stored
                                    # at unit scale), so an Adam step moves them ~sqrt(fan_in) less than the
                                    # mapper's torch Linear layers; StyleGAN2 trains them at 2.5e-3
    mapping_lr_scale: float = 1.0   # the mapper's rate = lr x this
    weight_decay: float = 0.0       # AdamW weight decay
    adam_beta1: float = 0.9         # AdamW betas of the IMLE objective (RS-IMLE: 0.9, 0.9; the adversarial one keeps StyleGAN2's)
    adam_beta2: float = 0.99
    warmup_steps: int = 200         # linear LR warmup; then lr_schedule
    warmup_images: int = 0          # the warmup counted in images (> 0: sets warmup_steps = this / batch_size)
    lr_schedule: str = "constant"   # after warmup: "constant" | "cosine": down to lr_final_scale x lr at max_steps;
                                    # for the last stage of a long run, with a max_steps it will reach
    lr_final_scale: float = 0.1     # "cosine": the rate at max_steps, as a fraction of lr
    grad_clip: float = 1.0          # max global gradient norm; 0 = no clipping
    ema_decay: float = 0.999        # EMA of weights used for samples and the checkpoint
    ema_half_life_images: int = 0   # the EMA's half-life counted in images (> 0: sets ema_decay = 0.5 ** (batch_size / this))
    ema_rampup: float = 0.0         # StyleGAN2-ADA's EMA ramp-up (0.05 there): the EMA's half-life in images is at most
                                    # this x the images seen so far, so it does not keep the random init for thousands
                                    # of steps; 0 = off (a fixed decay). An --init-from stage counts its parents' images
    max_steps: int = 10_000         # optimizer steps in total (a resumed run counts from 0)
    max_images: int = 0             # the budget counted in images (> 0: sets max_steps = this / batch_size, rounded up)
    max_minutes: float = 0.0        # also stop after this much wall time; 0 = no limit
    # --- RS-IMLE -------------------------------------------------------------------------
    force_factor: int = 20          # pool size = force_factor x dataset size; 0 = from the data size (train/recipe.py)
    resample_every: int = 30        # epochs between re-selections of the latents, counted in images (N images = one epoch)
    resample_min_steps: int = 0     # ... but at least this many optimizer steps between them (large batches on few images)
    eps: float = 0.12               # rejection radius in the search space (absolute); see eps_nn_fraction
    eps_nn_fraction: float = 0.0    # if > 0: eps = this x the median distance from a training image to its
                                    # nearest other training image (the data's own scale), replacing eps
    search_dim: int = 800           # dimension of the random projection used for matching
    latent_noise: float = 0.001     # std of the noise added to each matched latent
    rejection: str = "any"          # "any": drop every pool sample within eps of any image | "knn": RS-IMLE's code,
                                    # each image drops only its knn_ignore nearest samples within eps per 1,024 samples
    knn_ignore: int = 5             # "knn" rejection: samples each image drops per block of 1,024 (RS-IMLE: 5)
    pool_multiple: int = 1          # the pool (force_factor x images) is rounded up to a multiple of this (RS-IMLE: 1024)
    pool_batch: int = 256           # images generated per batch while building the pool
    # --- adversarial (objective "adversarial") ---------------------------------------------
    d_lr_scale: float = 1.0         # the discriminator's rate = lr x this (x r1_every / (r1_every + 1), lazy R1)
    r1_gamma: float = -1.0          # weight of the R1 penalty on real images: gamma / 2 x ||grad_x D(x)||^2;
                                    # -1 = StyleGAN2-ADA's heuristic 0.0002 x resolution^2 / batch (0.0128 at 32 px, batch 16)
    r1_every: int = 16              # lazy R1: applied every this many steps, weighted by it (StyleGAN2: 16)
    style_mixing: float = 0.9       # probability that an image mixes the styles of two latents (StyleGAN2: 0.9)
    pl_weight: float = 0.0          # path-length regularisation of G (StyleGAN2: 2, the adversarial cpu/gpu presets); 0 = off
    pl_every: int = 4               # lazy: every this many steps, weighted by it; G's Adam adjusted as D's for R1
    pl_decay: float = 0.01          # the running mean of path lengths follows each batch by this much
    pl_batch_shrink: int = 2        # the path-length batch is the batch / this
    augment: str = "color,translation,cutout"   # DiffAugment policy for everything D sees; "none" = off
    d_channel_base: int = 1024      # discriminator channels at resolution r = min(d_channel_base // r, d_channel_max)
    d_channel_max: int = 128        # cap on the discriminator's channels
    # --- hardware ------------------------------------------------------------------------
    device: str = "auto"            # "auto" | "cpu" | "cuda"
    threads: int = 0                # CPU threads: 0 = one per core that other programs leave free, checked every
                                    # few seconds (train/cpu_threads.py: a thread on a busy core stalls every step);
                                    # N = always N (the numbers of a run then do not depend on the machine's load)
    amp: bool = True                # bf16 autocast on CUDA (ignored on CPU)
    compile: bool = False           # torch.compile the train step and pool generation (minutes of compiling first)
    cuda_graph: bool = False        # CUDA, RS-IMLE, one GPU: capture the whole step (forward, backward, AdamW, EMA)
                                    # once as a CUDA graph and replay it (train/graphed.py); ignored on a CPU
    sync_debug: bool = False        # CUDA: raise at any host sync in the steps and selection rounds (outside log
                                    # steps, saves and evaluations, where the host must read); finds a stall's line
    # --- logging -------------------------------------------------------------------------
    log_every: int = 25             # steps between metrics.jsonl lines
    sample_every: int = 500         # steps between refinement grids in samples/; 0 = only at the end
    checkpoint_every: int = 500     # steps between checkpoints; the last step is always saved
    checkpoint_minutes: float = 0.0 # also save when this many minutes have passed since the last save (checked at
                                    # log steps); 0 = by steps only. A run that may be killed keeps its last minute
    eval_every: int = 0             # steps between evaluations of the EMA model at its trained H against the training
                                    # set ({"event": "eval"} lines in metrics.jsonl: precision, recall, coverage,
                                    # seed diversity, memorisation); also at the last step; 0 = never
    eval_samples: int = NUM_SAMPLES # samples per evaluation, in the protocol's draws (mean and sd), seeds
                                    # 0..eval_samples-1 (train/protocol.py)
    probe_every: int = 0            # steps between seed-diversity probes of the raw model and its EMA (100 seeds:
                                    # distinct nearest training images, w spread); 0 = at every log step
    preview_seeds: int = 8          # rows of the refinement grid (fixed seeds 0..n-1)
    progress: bool = True           # tqdm progress bar on rank 0, when stderr is a terminal (not in a log file)

    def __post_init__(self) -> None:
        for images, steps in IMAGE_COUNTS.items():
            if getattr(self, images) < 0:
                raise ValueError(f"invalid training settings: {images}={getattr(self, images)!r} (0 = use {steps})")
        if self.batch_size >= 1:
            self._count_in_images()
        checks = {
            "model": self.model in MODEL_PRESETS, "device": self.device in ("auto", "cpu", "cuda"),
            "batch_size": self.batch_size >= 0, "lr": self.lr >= 0, "synthesis_lr_scale": self.synthesis_lr_scale > 0, "max_steps": self.max_steps >= 1,
            "force_factor": self.force_factor >= 0, "resample_every": self.resample_every >= 1,
            "eps": self.eps >= 0, "eps_nn_fraction": self.eps_nn_fraction >= 0, "search_dim": self.search_dim >= 1,
            "ema_decay": 0 <= self.ema_decay < 1, "ema_rampup": self.ema_rampup >= 0, "warmup_steps": self.warmup_steps >= 0,
            "log_every": self.log_every >= 1, "checkpoint_every": self.checkpoint_every >= 1,
            "sample_every": self.sample_every >= 0, "grad_clip": self.grad_clip >= 0, "pool_batch": self.pool_batch >= 1,
            "loss_perceptual": self.loss_perceptual >= 0, "loss_pixel": self.loss_pixel >= 0,
            "perceptual_size": self.perceptual_size == 0 or self.perceptual_size >= 32, "objective": self.objective in OBJECTIVES,
            "mapping_lr_scale": self.mapping_lr_scale > 0, "d_lr_scale": self.d_lr_scale > 0,
            "r1_gamma": self.r1_gamma >= 0 or self.r1_gamma == -1, "r1_every": self.r1_every >= 1, "style_mixing": 0 <= self.style_mixing <= 1,
            "pl_weight": self.pl_weight >= 0, "pl_every": self.pl_every >= 1, "pl_decay": 0 < self.pl_decay <= 1,
            "pl_batch_shrink": self.pl_batch_shrink >= 1,
            "augment": self.augment in AUGMENT_POLICIES, "d_channel_base": self.d_channel_base >= 1,
            "d_channel_max": self.d_channel_max >= 1, "eval_every": self.eval_every >= 0,
            "eval_samples": self.eval_samples >= 100, "lr_schedule": self.lr_schedule in LR_SCHEDULES,
            "lr_final_scale": 0 <= self.lr_final_scale <= 1, "adam_beta1": 0 <= self.adam_beta1 < 1,
            "adam_beta2": 0 <= self.adam_beta2 < 1, "rejection": self.rejection in REJECTIONS,
            "knn_ignore": self.knn_ignore >= 1, "probe_every": self.probe_every >= 0,
            "checkpoint_minutes": self.checkpoint_minutes >= 0,
            "perceptual_weights": self.perceptual_weights in ("imagenet", "random"), "pool_multiple": self.pool_multiple >= 1, "threads": self.threads >= 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError("invalid training settings: " + ", ".join(f"{n}={getattr(self, n)!r}" for n in bad))
        if self.loss_perceptual == 0 and self.loss_pixel == 0:
            raise ValueError("loss_perceptual and loss_pixel are both 0: nothing to train on; set one of them > 0")
        if self.cuda_graph and self.objective != "imle":
            raise ValueError("--cuda-graph replays RS-IMLE's step only: the adversarial objective draws each step's "
                             "augmentations from a stream seeded by the step, which a replayed graph would repeat; "
                             "leave --cuda-graph off with --objective adversarial")
        for section, cls in (("mapper", MapperConfig), ("decoder", DecoderConfig)):
            overrides = getattr(self, section)
            if not isinstance(overrides, dict):
                raise ValueError(f"TrainConfig.{section} must be a dict of {cls.__name__} fields such as "
                                 f"{{'num_steps': 1}}, got {overrides!r}")
            known = {f.name for f in dataclasses.fields(cls)} - set(FROM_DATA)
            unknown = sorted(set(overrides) - known)
            if unknown:
                raise ValueError(f"unknown {section} field(s) {unknown}; known: {sorted(known)}"
                                 + (" (resolution and channels come from the data)" if set(unknown) & set(FROM_DATA) else ""))
        self.model_config(16, 3)  # every override is checked by rtm_core's own validation now, not mid-run

    def _count_in_images(self) -> None:
        # A schedule given in images decides its step form, so that it means the same at any
        # batch size (counted in steps, a larger batch would see more images per warmup and EMA).
        # The frozen dataclass keeps both: train_config.json says what was asked and what it gave.
        derived = {}
        if self.warmup_images:
            derived["warmup_steps"] = math.ceil(self.warmup_images / self.batch_size)
        if self.max_images:
            derived["max_steps"] = math.ceil(self.max_images / self.batch_size)
        if self.ema_half_life_images:
            derived["ema_decay"] = 0.5 ** (self.batch_size / self.ema_half_life_images)
        for name, value in derived.items():
            object.__setattr__(self, name, value)

    def model_config(self, resolution: int, channels: int) -> ModelConfig:
        """The --model preset with the flags' field changes, at the data's resolution and channels."""
        base = MODEL_PRESETS[self.model]()
        decoder = base.decoder.at_resolution(resolution, channels)   # an IMLE block spec follows the resolution
        return base.replace(mapper=dict(self.mapper), decoder={**dataclasses.asdict(decoder), **self.decoder})


# Presets set only what differs from the defaults; flags given on the command line win
# (for mapper/decoder, field by field).
PRESETS: dict[str, dict[str, Any]] = {
    # Seconds on a CPU: for tests and smoke runs.
    "tiny": dict(model="tiny", batch_size=16, max_steps=30, warmup_steps=5, force_factor=2, resample_every=2,
                 search_dim=64, log_every=5, sample_every=0, checkpoint_every=10, preview_seeds=4,
                 pool_batch=128, ema_decay=0.9),
    # Your images to the app in ten minutes on a 2-core CPU (docs/TRAINING.md, bench_newcomer): the cpu
    # preset's model in ~6 minutes of training. Batch 8 gives twice the updates for the same images, a
    # higher rate cosine-annealed to the last step lands in that short budget, and a fast EMA (with
    # ramp-up) does not keep thousands of steps of the random init. Rough but recognisable.
    "quick": dict(decoder={"channel_base": 1024}, batch_size=8, lr=1e-3, synthesis_lr_scale=4.0, max_images=7_200,
                  max_minutes=8, warmup_images=400, lr_schedule="cosine", lr_final_scale=0.05, loss_perceptual=1.0,
                  loss_pixel=1.0, perceptual_size=32, force_factor=10, resample_every=20, eps_nn_fraction=0.5,
                  log_every=100, sample_every=0, checkpoint_every=300, ema_half_life_images=550, ema_rampup=0.05, pool_batch=16,
                  init_from="shipped"),   # fine-tune the app's default where it fits the data (--init-from none: scratch)
    # A 2-core CPU, one thread, stopped at about 62 minutes: ~100-image few-shot sets at 32x32 with a slimmer
    # decoder and RS-IMLE's loss (docs/TRAINING.md and docs/EXPERIMENTS.md say why).
    # Schedules in images: warmup 3,200, EMA half-life 2,200 (0.995 per step at batch 16), 24,000 images.
    "cpu": dict(decoder={"channel_base": 1024}, batch_size=16, lr=5e-4, synthesis_lr_scale=4.0, max_images=24_000,
                max_minutes=62, warmup_images=3_200, loss_perceptual=1.0, loss_pixel=1.0, perceptual_size=32,
                force_factor=10, resample_every=20, eps_nn_fraction=0.5, log_every=50, sample_every=500,
                checkpoint_every=250, ema_half_life_images=2_200, pool_batch=16),  # small batches: cache-friendly on a CPU (bench_train)
    # One GPU (or several): the cpu preset's recipe, counted in images, with batch, learning rate,
    # pool and perceptual size decided from the data and device (0 = train/recipe.py's rule: on
    # the 103 faces, batch 64 at lr 2e-3). 3.2 M images: a few minutes of an H200 on 32x32 faces.
    "gpu": dict(batch_size=0, lr=0, force_factor=0, perceptual_size=0, synthesis_lr_scale=4.0, max_images=3_200_000,
                warmup_images=3_200, ema_half_life_images=2_200, resample_every=20, resample_min_steps=25,
                loss_perceptual=1.0, loss_pixel=1.0, eps_nn_fraction=0.5, log_every=100,
                sample_every=2000, checkpoint_every=2000, compile=True, pool_batch=512),
    # RS-IMLE's official few-shot recipe (SerChirag/rs-imle, hps.py "fewshot" with --use_rsimle): its
    # generator (rtm_core.rs_imle_fewshot), AdamW lr 2e-4 for everything, betas (0.9, 0.9), weight decay
    # 0.01, 10 warmup steps then constant (its StepLR is only stepped during warmup), no clipping, EMA
    # 0.9999, batch 4; pool 10 x images rounded up to 1,024; the knn rejection (5 per 1,024) at eps 0.1
    # in a random projection of the pixels (800 dims, L2-normalised), as its "l2" search; perturbation
    # 0.001; loss 1 x perceptual + 0.1 x pixel MSE. Ours differs in: the perceptual distance (an offline
    # EfficientNet-Lite1 one stands in for LPIPS-VGG) and re-selection (every image every 30 epochs; its
    # code also re-selects an image early once its distance fell 4 % below its last, AdaIMLE's rule).
    "rs-imle": dict(model="rs-imle", batch_size=4, lr=2e-4, synthesis_lr_scale=1.0, mapping_lr_scale=1.0,
                    weight_decay=0.01, adam_beta1=0.9, adam_beta2=0.9, warmup_steps=10, grad_clip=0.0,
                    ema_decay=0.9999, force_factor=10, pool_multiple=1024, rejection="knn", knn_ignore=5,
                    resample_every=30, eps=0.1, eps_nn_fraction=0.0, search_dim=800, latent_noise=0.001,
                    loss_perceptual=1.0, loss_pixel=0.1, pool_batch=16, log_every=50, sample_every=500,
                    checkpoint_every=250),
}


# The adversarial objective's presets: StyleGAN2's Adam (lr 2.5e-3, betas 0 / 0.99, no warmup,
# no clipping), lazy R1, style mixing 0.9, DiffAugment, and StyleGAN2-ADA's EMA ramp-up (0.05: at
# decay 0.999 a fixed EMA still holds 22 % of the random initialisation after 1,500 steps, and
# an RTM mapper iterates that blend 8 times). The mapper's rate is x 0.2 by default:
# RTM's layers are torch Linear layers, whose Adam steps move them ~sqrt(fan_in) more than the
# equalized decoder's. StyleGAN2's own mapping network brings its 0.01 multiplier inside its
# layers and is run with --mapping-lr-scale 1 (docs/EXPERIMENTS.md has the commands).
ADVERSARIAL_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(objective="adversarial", model="tiny", batch_size=8, max_steps=24, lr=2e-3, mapping_lr_scale=0.2,
                 warmup_steps=0, grad_clip=0.0, r1_every=4, log_every=4, sample_every=0, checkpoint_every=12,
                 probe_every=12, preview_seeds=4, ema_decay=0.9, d_channel_base=128, d_channel_max=16),
    "cpu": dict(objective="adversarial", decoder={"channel_base": 1024, "noise": True}, batch_size=16, lr=2.5e-3, mapping_lr_scale=0.2,
                warmup_steps=0, grad_clip=0.0, max_steps=100_000, max_minutes=40, r1_every=16, pl_weight=2.0,
                log_every=50, sample_every=500, checkpoint_every=250, probe_every=250, ema_decay=0.999, ema_rampup=0.05,
                d_channel_base=1024),
    "gpu": dict(objective="adversarial", decoder={"noise": True}, batch_size=64, lr=2.5e-3, mapping_lr_scale=0.2, warmup_steps=0, grad_clip=0.0,
                max_steps=200_000, r1_every=16, pl_weight=2.0, sample_every=2000, checkpoint_every=2000, probe_every=2000, compile=True,
                ema_decay=0.999, ema_rampup=0.05, d_channel_base=2048),
}
PRESETS_BY_OBJECTIVE = {"imle": PRESETS, "adversarial": ADVERSARIAL_PRESETS}


def _flag_type(annotation: Any):
    name = getattr(annotation, "__name__", str(annotation))
    if name == "bool":
        return None
    return {"int": int, "float": float, "str": str}.get(name, str)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def field_comments(cls: type) -> dict[str, str]:
    """{field: the comment beside it} from the class's source (`name: type = value  # comment`):
    the comments that document a config field are also its flag's help."""
    comments: dict[str, str] = {}
    name = None
    for line in inspect.getsource(cls).splitlines():
        field_line = re.match(r"\s+(\w+):[^#]*#\s*(.+)$", line)
        more = re.match(r"\s+#\s*(.+)$", line)
        if field_line:
            name = field_line.group(1)
            comments[name] = field_line.group(2).strip()
        elif more and name:   # a comment continued on the lines below its field
            comments[name] += " " + more.group(1).strip()
        else:
            name = None
    return comments


def field_sections(cls: type) -> dict[str, str]:
    """{field: its section} from the `# --- section ---` lines of the class's source: the sections
    that group the fields there also group the flags in --help."""
    sections, current = {}, "settings"
    for line in inspect.getsource(cls).splitlines():
        header = re.match(r"\s+# --- (.+?) -*$", line)
        field_line = re.match(r"\s+(\w+):", line)
        if header:
            current = header.group(1).strip()
        elif field_line:
            sections[field_line.group(1)] = current
    return sections


def describe_presets(objective: str) -> str:
    """Every preset of the objective, one setting per line (what --list-presets prints)."""
    lines = []
    for name, settings in PRESETS_BY_OBJECTIVE[objective].items():
        lines.append(f"{name}:")
        for key, value in settings.items():
            items = value.items() if isinstance(value, dict) else [(None, value)]
            for k, v in items:
                flag = _flag(f"{key}.{k}" if k else key)
                lines.append(f"  {flag if v else flag.replace('--', '--no-', 1)}" if isinstance(v, bool) else f"  {flag} {v}")
    return "\n".join(lines)


def parse_args(argv: Optional[Iterable[str]] = None) -> TrainConfig:
    """CLI flags generated from TrainConfig's fields and from rtm_core's MapperConfig and
    DecoderConfig (--mapper.num-steps 1); `--preset` fills in defaults first."""
    argv = list(argv) if argv is not None else None
    first = argparse.ArgumentParser(allow_abbrev=False, add_help=False)
    first.add_argument("--objective", choices=OBJECTIVES, default="imle")
    first.add_argument("--preset", default=None)
    first.add_argument("--list-presets", action="store_true")
    known = first.parse_known_args(argv)[0]
    objective, presets = known.objective, PRESETS_BY_OBJECTIVE[known.objective]
    if known.list_presets:
        print(f"The presets of --objective {objective} (each line a flag and its value; flags given after "
              f"--preset win):\n{describe_presets(objective)}")
        raise SystemExit(0)
    shown = presets.get(known.preset or "", {})   # --help shows the chosen preset's values as the defaults
    parser = argparse.ArgumentParser(allow_abbrev=False, prog=program_name("rtm-train", "train.train"),
                                     description="Train an RTM (or one-pass MLP) generator with RS-IMLE or adversarially.")
    parser.add_argument("--preset", choices=sorted(presets), default=None,
                        help=f"start from these settings (the presets of --objective {objective}); "
                             f"--preset NAME --help shows its values as the defaults")
    parser.add_argument("--list-presets", action="store_true",
                        help="print every preset of --objective, one setting per line, and exit")
    notes, sections, groups = field_comments(TrainConfig), field_sections(TrainConfig), {}
    for f in dataclasses.fields(TrainConfig):
        if f.name in ("mapper", "decoder"):
            continue
        group = groups.get(sections[f.name]) or groups.setdefault(sections[f.name],
                                                                  parser.add_argument_group(sections[f.name]))
        default = shown.get(f.name, f.default)
        help_text = f"{notes.get(f.name, '')} (default {default!r}{', from --preset ' + known.preset if f.name in shown else ''})".strip()
        if _flag_type(f.type) is None:
            group.add_argument(_flag(f.name), action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            group.add_argument(_flag(f.name), type=_flag_type(f.type), default=None, help=help_text)
    for section, cls in (("mapper", MapperConfig), ("decoder", DecoderConfig)):
        group = parser.add_argument_group(f"{section} (rtm_core.{cls.__name__}; default: the --model preset's)")
        notes = field_comments(cls)
        for f in dataclasses.fields(cls):
            if f.name in FROM_DATA:
                continue
            dest, kind = f"{section}.{f.name}", type(f.default)
            if kind is bool:
                group.add_argument(_flag(dest), dest=dest, action=argparse.BooleanOptionalAction, default=None,
                                   help=notes.get(f.name))
            else:
                group.add_argument(_flag(dest), dest=dest, type=_number_or_text(kind), default=None,
                                   metavar=kind.__name__.upper(), help=notes.get(f.name))
    args = vars(parser.parse_args(argv))
    args.pop("list_presets")
    settings = dict(presets.get(args.pop("preset") or "", {}))
    for section in ("mapper", "decoder"):
        given = {k.split(".", 1)[1]: args.pop(k) for k in list(args) if k.startswith(section + ".")}
        settings[section] = {**settings.get(section, {}), **{k: v for k, v in given.items() if v is not None}}
    given = {k: v for k, v in args.items() if v is not None}
    for images, steps in IMAGE_COUNTS.items():
        if images in given and steps in given:
            parser.error(f"--{images.replace('_', '-')} and --{steps.replace('_', '-')} say the same thing; give one")
        if steps in given:          # asked in steps: the preset's count in images no longer applies
            settings.pop(images, None)
    settings.update(given)
    try:
        return TrainConfig(**settings)
    except ValueError as e:
        parser.error(str(e))


def command_line(cfg: TrainConfig) -> list[str]:
    """The flags that make `cfg` with no preset: every field that differs from its default.
    Recorded in meta.json, so a model card can give the exact command of each stage."""
    flags = []
    derived = {steps for images, steps in IMAGE_COUNTS.items() if getattr(cfg, images)}   # said by the count in images
    for f in dataclasses.fields(TrainConfig):
        if f.name in derived:
            continue
        value = getattr(cfg, f.name)
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        if value == default:
            continue
        items = value.items() if isinstance(value, dict) else [(None, value)]
        for key, v in items:
            name = _flag(f"{f.name}.{key}" if key else f.name)
            flags += ([name if v else name.replace("--", "--no-", 1)] if isinstance(v, bool) else [name, str(v)])
    return flags


def _number_or_text(kind: type):
    """float fields also take 'sqrt2' (StyleGAN2's gain) so the command line stays exact."""
    if kind is float:
        return lambda text: math.sqrt(2) if text.strip().lower() == "sqrt2" else float(text)
    return kind
