"""Model builders: an MLP and a CNN (2-D images, 1-D sequences) with architecture switches."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

ACTIVATIONS = {
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.1),
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}
BASE_CHANNELS = 32  # CNN channels at width 1
BASE_HIDDEN = 128  # MLP hidden units and FC-head units at width 1


def _round_to(n: float, multiple: int) -> int:
    return max(multiple, math.ceil(n / multiple) * multiple)


def _norm(kind: str, channels: int, groups: int, dims: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels) if dims == 2 else nn.BatchNorm1d(channels)
    if kind == "group":
        return nn.GroupNorm(groups, channels)
    return nn.Identity()


class Block(nn.Module):
    """layer → norm → activation → dropout, optionally wrapped as x + F(x)."""

    def __init__(self, layer: nn.Module, norm: nn.Module, act: nn.Module, drop: nn.Module,
                 residual: bool):
        super().__init__()
        self.body = nn.Sequential(layer, norm, act, drop)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


class MLP(nn.Module):
    def __init__(self, in_features: int, n_classes: int, *, hidden: int, depth: int, norm: str,
                 groups: int, activation: str, dropout: float, residual: bool):
        super().__init__()
        act = ACTIVATIONS[activation]
        drop = lambda: nn.Dropout(dropout) if dropout else nn.Identity()  # noqa: E731
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for i in range(depth):
            # The first layer changes the width, so it cannot carry a skip connection.
            layers.append(Block(nn.Linear(width, hidden), _norm(norm, hidden, groups, 1), act(),
                                drop(), residual and i > 0))
            width = hidden
        layers.append(nn.Linear(width, n_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CNN(nn.Module):
    """Conv stem, ``depth`` conv blocks each followed by 2x pooling while the map is large enough,
    then a flatten+FC head or a global-average-pool head."""

    def __init__(self, input_shape: tuple[int, ...], n_classes: int, *, channels: int, hidden: int,
                 depth: int, norm: str, groups: int, activation: str, dropout: float,
                 spatial_dropout: float, residual: bool, head: str):
        super().__init__()
        dims = len(input_shape) - 1
        conv = nn.Conv2d if dims == 2 else nn.Conv1d
        pool = nn.MaxPool2d if dims == 2 else nn.MaxPool1d
        sdrop = nn.Dropout2d if dims == 2 else nn.Dropout1d
        act = ACTIVATIONS[activation]
        in_ch, size = input_shape[0], input_shape[1]
        min_size = 2 if dims == 2 else 5
        layers: list[nn.Module] = [
            conv(in_ch, channels, 5 if dims == 1 else 3, padding="same"),
            _norm(norm, channels, groups, dims), act(),
        ]
        for _ in range(depth):
            layers.append(Block(conv(channels, channels, 3, padding="same"),
                                _norm(norm, channels, groups, dims), act(),
                                sdrop(spatial_dropout) if spatial_dropout else nn.Identity(),
                                residual))
            if size // 2 >= min_size:
                layers.append(pool(2))
                size //= 2
        self.features = nn.Sequential(*layers)
        drop = nn.Dropout(dropout) if dropout else nn.Identity()
        if head == "gap":
            pooled = nn.AdaptiveAvgPool2d(1) if dims == 2 else nn.AdaptiveAvgPool1d(1)
            self.head = nn.Sequential(pooled, nn.Flatten(), drop, nn.Linear(channels, n_classes))
        else:
            flat = channels * size**dims
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(flat, hidden), act(), drop,
                                      nn.Linear(hidden, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def build_model(config: Any, input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    """The model ``config`` describes, for inputs of ``input_shape`` (one sample, no batch dim)."""
    groups = config.norm_groups if config.norm == "group" else 1
    hidden = _round_to(BASE_HIDDEN * config.width, groups)
    if config.resolved_model == "mlp":
        return MLP(math.prod(input_shape), n_classes, hidden=hidden, depth=config.depth,
                   norm=config.norm, groups=groups, activation=config.activation,
                   dropout=config.dropout, residual=config.residual)
    channels = _round_to(BASE_CHANNELS * config.width, groups)
    return CNN(tuple(input_shape), n_classes, channels=channels, hidden=hidden,
               depth=config.depth, norm=config.norm, groups=groups,
               activation=config.activation, dropout=config.dropout,
               spatial_dropout=config.spatial_dropout, residual=config.residual, head=config.head)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
