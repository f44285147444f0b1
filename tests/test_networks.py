"""The grid CNN and its agent-centred view."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from agents.networks import GridCNN, egocentric_view, is_grid
from envs.coinrun import CoinRunCore


def test_egocentric_view_puts_the_agent_at_the_centre_and_keeps_offsets():
    core = CoinRunCore(16, "test")
    core.reset_levels(np.arange(16), np.arange(16) + 100)
    core.agent[:] = np.stack([np.arange(16) % 5 + 1, np.arange(16) % 11 + 1], axis=1)
    obs = torch.as_tensor(core.observe()).float()
    view = egocentric_view(obs, agent_channel=3)
    h, w = core.height, core.width
    assert view.shape == (16, 4, 2 * h - 1, 2 * w - 1)
    assert (view[:, 3, h - 1, w - 1] == 1).all() and view[:, 3].sum() == 16
    for i in range(16):
        r, c = core.agent[i]
        cr, cc = core.objects["coin"][i]
        assert view[i, 2, cr - r + h - 1, cc - c + w - 1] == 1  # the coin at its offset from the agent
        assert view[i, 0].sum() == obs[i, 0].sum()  # every wall cell kept, nothing invented


@pytest.mark.parametrize("egocentric", [False, True])
def test_grid_cnn_output_shape(egocentric):
    space = gym.spaces.Box(0, 1, shape=(4, 7, 13), dtype=np.uint8)
    net = GridCNN(space, features_dim=32, channels=(8, 16), strides=(1, 2), egocentric=egocentric)
    obs = torch.zeros(5, 4, 7, 13)
    obs[:, 3, 3, 1] = 1
    assert net(obs).shape == (5, 32)
    with pytest.raises(ValueError, match="strides"):
        GridCNN(space, channels=(8, 16), strides=(1,))


@pytest.mark.parametrize("egocentric", [False, True])
def test_no_convolutions_is_one_dense_layer_on_the_view(egocentric):
    space = gym.spaces.Box(0, 1, shape=(4, 7, 13), dtype=np.uint8)
    net = GridCNN(space, features_dim=32, channels=(), egocentric=egocentric)
    (dense,) = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert not any(isinstance(m, torch.nn.Conv2d) for m in net.modules())
    assert dense.in_features == 4 * (13 * 25 if egocentric else 7 * 13)
    obs = torch.zeros(5, 4, 7, 13)
    obs[:, 3, 3, 1] = 1
    assert net(obs).shape == (5, 32)


def test_only_a_three_dimensional_box_is_a_grid():
    assert is_grid(gym.spaces.Box(0, 1, shape=(4, 7, 13), dtype=np.uint8))
    for shape in [(2,), (5, 5), (1, 2, 3, 4)]:
        assert not is_grid(gym.spaces.Box(-1.0, 1.0, shape=shape, dtype=np.float32))
    assert not is_grid(gym.spaces.Discrete(3))
