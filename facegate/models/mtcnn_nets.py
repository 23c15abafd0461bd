"""MTCNN's three networks (Zhang et al. 2016) in PyTorch, built from facenet-pytorch's weight files.

The definitions live here, beside the registry, because two layers use them: the MTCNN detector
(:mod:`facegate.detect.mtcnn`) runs all three in PyTorch, the box refiner (:mod:`facegate.detect.refine`)
runs R-Net and O-Net from ONNX graphs that `facegate models install` exports from them once
(:mod:`facegate.models.converted`). Only the weight files of facenet-pytorch are used, never its code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from facegate.models.registry import REGISTRY, verified_path

# R-Net and O-Net as exported to ONNX: (index in build_networks(), square input side, output names)
EXPORTED = {"rnet": (1, 24, ["prob", "offsets"]), "onet": (2, 48, ["prob", "offsets", "points"])}


def build_networks() -> tuple[Any, Any, Any]:
    """The three networks; parameter names match facenet-pytorch's pnet/rnet/onet.pt."""
    import torch
    from torch import nn

    class PNet(nn.Module):
        """12x12 fully convolutional proposal net: face probability and box offsets per 2-px cell."""

        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 10, kernel_size=3)
            self.prelu1 = nn.PReLU(10)
            self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
            self.conv2 = nn.Conv2d(10, 16, kernel_size=3)
            self.prelu2 = nn.PReLU(16)
            self.conv3 = nn.Conv2d(16, 32, kernel_size=3)
            self.prelu3 = nn.PReLU(32)
            self.conv4_1 = nn.Conv2d(32, 2, kernel_size=1)
            self.conv4_2 = nn.Conv2d(32, 4, kernel_size=1)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            x = self.pool1(self.prelu1(self.conv1(x)))
            x = self.prelu2(self.conv2(x))
            x = self.prelu3(self.conv3(x))
            prob = torch.softmax(self.conv4_1(x), dim=1)[:, 1]  # (B, H', W')
            return prob, self.conv4_2(x)  # (B, 4, H', W')

    class RNet(nn.Module):
        """24x24 refinement net."""

        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 28, kernel_size=3)
            self.prelu1 = nn.PReLU(28)
            self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv2 = nn.Conv2d(28, 48, kernel_size=3)
            self.prelu2 = nn.PReLU(48)
            self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv3 = nn.Conv2d(48, 64, kernel_size=2)
            self.prelu3 = nn.PReLU(64)
            self.dense4 = nn.Linear(576, 128)
            self.prelu4 = nn.PReLU(128)
            self.dense5_1 = nn.Linear(128, 2)
            self.dense5_2 = nn.Linear(128, 4)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            x = self.pool1(self.prelu1(self.conv1(x)))
            x = self.pool2(self.prelu2(self.conv2(x)))
            x = self.prelu3(self.conv3(x))
            # The converted Caffe weights expect a (W, H, C) flattening order.
            x = x.permute(0, 3, 2, 1).contiguous().flatten(1)
            x = self.prelu4(self.dense4(x))
            prob = torch.softmax(self.dense5_1(x), dim=1)[:, 1]
            return prob, self.dense5_2(x)

    class ONet(nn.Module):
        """48x48 output net: probability, box offsets and five points."""

        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 32, kernel_size=3)
            self.prelu1 = nn.PReLU(32)
            self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
            self.prelu2 = nn.PReLU(64)
            self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv3 = nn.Conv2d(64, 64, kernel_size=3)
            self.prelu3 = nn.PReLU(64)
            self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
            self.conv4 = nn.Conv2d(64, 128, kernel_size=2)
            self.prelu4 = nn.PReLU(128)
            self.dense5 = nn.Linear(1152, 256)
            self.prelu5 = nn.PReLU(256)
            self.dense6_1 = nn.Linear(256, 2)
            self.dense6_2 = nn.Linear(256, 4)
            self.dense6_3 = nn.Linear(256, 10)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            x = self.pool1(self.prelu1(self.conv1(x)))
            x = self.pool2(self.prelu2(self.conv2(x)))
            x = self.pool3(self.prelu3(self.conv3(x)))
            x = self.prelu4(self.conv4(x))
            x = x.permute(0, 3, 2, 1).contiguous().flatten(1)
            x = self.prelu5(self.dense5(x))
            prob = torch.softmax(self.dense6_1(x), dim=1)[:, 1]
            # dense6_3: x of the five points, then y, relative to the box (0..1).
            return prob, self.dense6_2(x), self.dense6_3(x)

    return PNet(), RNet(), ONet()


def load_weights(net: Any, key: str) -> Any:
    """Load the registry's sha256-verified weight file ``key`` (e.g. ``"mtcnn_onet"``) into ``net``."""
    import torch

    net.load_state_dict(torch.load(verified_path(REGISTRY[key]), map_location="cpu", weights_only=True))
    return net


def module(which: str) -> Any:
    """R-Net or O-Net (``which``: "rnet" | "onet") with its verified weights, eval mode, on the CPU."""
    index, _size, _outputs = EXPORTED[which]
    return load_weights(build_networks()[index], f"mtcnn_{which}").eval()


def export_onnx(which: str, dest: Path) -> None:
    """Write R-Net or O-Net as an ONNX graph (input ``crops`` [N, 3, S, S], a dynamic batch)."""
    from facegate.models.onnx_export import export_torch

    _index, size, outputs = EXPORTED[which]
    export_torch(module(which), (1, 3, size, size), dest, "crops", outputs)
