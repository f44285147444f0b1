"""Policy networks: a small CNN for symbolic grids, SB3's MLP for anything flat.

SB3's NatureCNN needs images of at least 36x36; grid observations here are
one-hot planes of a few to a few dozen cells a side. :class:`GridCNN` runs
3x3 convolutions with padding, which keep every cell and see its neighbours,
then one dense layer; a stride of 2 in the last convolution keeps the cost of
the larger egocentric view near that of the plain one.

With no convolutions (``channels=()``) the network is one dense layer on the
flattened view: on small one-hot views a dense layer already sees every cell,
so it needs far less arithmetic per sample than convolutions for a similar
number of samples (the default learner; the README compares the two).

``egocentric=True`` first re-centres each observation on the agent (a
``(2H-1) x (2W-1)`` window, zeros outside the level), so "the coin is two
cells to my right" is the same input wherever the agent stands. The network
then learns to head for a goal anywhere from fewer samples, while a goal
tied to the level frame (the right end, the top-right corner) stays
learnable from the walls.

Only a ``(C, H, W)`` observation is a grid (:func:`is_grid`). Any other Box
(a point mass's ``(x, v)``, a flat feature vector) has no cells to convolve
or to centre on the agent, so training gives it SB3's ``MlpPolicy`` instead.
"""

from __future__ import annotations

import gymnasium as gym
import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn


def is_grid(space: gym.Space) -> bool:
    """A ``(C, H, W)`` Box: what :class:`GridCNN` and the egocentric view take."""
    return isinstance(space, gym.spaces.Box) and len(space.shape) == 3


def egocentric_view(obs: torch.Tensor, agent_channel: int) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(B, C, 2H-1, 2W-1)`` with the agent's cell at the centre."""
    b, c, h, w = obs.shape
    flat = obs[:, agent_channel].reshape(b, -1).argmax(dim=1)
    row, col = flat // w, flat % w
    padded = nn.functional.pad(obs, (w - 1, w - 1, h - 1, h - 1))
    rows = row[:, None] + torch.arange(2 * h - 1, device=obs.device)[None, :]
    cols = col[:, None] + torch.arange(2 * w - 1, device=obs.device)[None, :]
    batch = torch.arange(b, device=obs.device)[:, None, None]
    window = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]
    return window.permute(0, 3, 1, 2)


class GridCNN(BaseFeaturesExtractor):
    """Features of a ``(C, H, W)`` grid: optional egocentric view, 3x3 convolutions, one dense layer."""

    def __init__(
        self,
        observation_space: gym.spaces.Box,
        features_dim: int = 256,
        channels: tuple[int, ...] = (32, 64),
        egocentric: bool = False,
        agent_channel: int = -1,
        strides: tuple[int, ...] | None = None,
    ):
        super().__init__(observation_space, features_dim)
        in_channels = observation_space.shape[0]
        self.egocentric = egocentric
        self.agent_channel = agent_channel % in_channels
        strides = strides or (1,) * len(channels)
        if len(strides) != len(channels):
            raise ValueError(f"GridCNN: {len(strides)} strides for {len(channels)} conv layers")
        layers: list[nn.Module] = []
        for out_channels, stride in zip(channels, strides, strict=True):
            layers += [nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1), nn.ReLU()]
            in_channels = out_channels
        layers.append(nn.Flatten())
        self.cnn = nn.Sequential(*layers)
        with torch.no_grad():
            n_flat = self.cnn(self._view(torch.zeros(1, *observation_space.shape))).shape[1]
        self.linear = nn.Sequential(nn.Linear(n_flat, features_dim), nn.ReLU())

    def _view(self, observations: torch.Tensor) -> torch.Tensor:
        observations = observations.float()
        return egocentric_view(observations, self.agent_channel) if self.egocentric else observations

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.linear(self.cnn(self._view(observations)))
