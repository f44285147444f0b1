"""Policies brought from outside the suite: a torch module, any SB3 model, a plain function.

The judge asks of a policy what SB3's ``evaluate_policy`` asks: observations
in, actions out (:class:`agents.policies.Policy`). These adapters turn what
researchers already have into that, and :func:`policy_from_spec` reads them
from one command-line string:

- ``sb3:path/to/model.zip`` (optionally ``sb3:ppo:path``): a model saved by
  plain Stable-Baselines3 code or the RL Zoo. SB3's own loader reads it, and
  it unpickles parts of the file: load only files you trust.
- ``python:package.module:name``: an object importable from your package: a
  :class:`~agents.policies.Policy`, an SB3 model, a torch ``nn.Module``
  returning logits, a callable ``obs -> actions``, or a zero-argument factory
  returning one of those.
- ``torch:package.module:Factory:path/to/weights.pt``: ``Factory()`` builds the
  module, the weights are a state dict loaded with ``weights_only=True``.

A callable is first given the whole batch ``(B, *obs_shape)`` and should
return ``B`` actions; one that fails on the batch or returns a single action
is called once per observation from then on.
"""

from __future__ import annotations

import importlib
import inspect
import json
import zipfile
from pathlib import Path

import numpy as np
import torch

from agents.policies import Policy, SB3Policy

SPEC_KINDS = ("sb3", "python", "torch")


class TorchPolicy(Policy):
    """An ``nn.Module`` mapping a float batch of observations to action logits ``(B, A)``.

    Actions are sampled from the softmax (the judge seeds torch per seed and
    distribution), or the argmax with ``deterministic=True``.
    """

    def __init__(self, module: torch.nn.Module, deterministic: bool = False, name: str = "torch"):
        self.module = module.eval()
        self.deterministic = deterministic
        self.name = name

    def act(self, obs):
        with torch.no_grad():
            logits = self.module(torch.as_tensor(np.asarray(obs), dtype=torch.float32))
        if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[0] != len(obs):
            shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
            raise ValueError(
                f"policy {self.name!r}: the module returned {shape} for {len(obs)} observations; "
                "expected logits of shape (batch, number of actions)"
            )
        if self.deterministic:
            return logits.argmax(dim=1).numpy()
        return torch.distributions.Categorical(logits=logits).sample().numpy()


class CallablePolicy(Policy):
    """A plain function ``obs -> actions`` (batched), or ``obs -> action`` (called per observation)."""

    def __init__(self, fn, name: str = "callable"):
        self.fn = fn
        self.name = name
        self.per_observation: bool | None = None

    def act(self, obs):
        if self.per_observation is None:
            try:
                actions = np.asarray(self.fn(obs))
            except Exception:  # noqa: BLE001  (a function of one observation may fail on a batch)
                actions = None
            self.per_observation = actions is None or (actions.size == 1 and len(obs) > 1)
            if not self.per_observation:
                return self._batch(actions, obs)
        if self.per_observation:
            return np.array([np.asarray(self.fn(o)).item() for o in obs])
        return self._batch(np.asarray(self.fn(obs)), obs)

    def _batch(self, actions: np.ndarray, obs) -> np.ndarray:
        if actions.size != len(obs):
            raise ValueError(
                f"policy {self.name!r} returned {actions.size} actions for {len(obs)} observations"
            )
        return actions.reshape(len(obs))


def as_policy(obj, name: str) -> Policy:
    """Wrap what a user brings (Policy, SB3 model, torch module, callable) as a :class:`Policy`."""
    if isinstance(obj, Policy):
        return obj
    if hasattr(obj, "predict") and hasattr(obj, "policy"):
        return SB3Policy(obj, name=name)
    if isinstance(obj, torch.nn.Module):
        return TorchPolicy(obj, name=name)
    if callable(obj):
        return CallablePolicy(obj, name=name)
    raise ValueError(
        f"{name}: {type(obj).__name__} is not a policy; give a Policy, an SB3 model, "
        "a torch nn.Module returning logits, or a callable obs -> actions"
    )


def _import(target: str, spec: str):
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise ValueError(f"policy {spec!r}: expected package.module:name after the kind")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"policy {spec!r}: cannot import {module_name!r} ({err})") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ValueError(f"policy {spec!r}: {module_name!r} has no {attr!r}") from None


def _is_factory(obj) -> bool:
    if isinstance(obj, type) or isinstance(obj, torch.nn.Module) or not callable(obj):
        return isinstance(obj, type)
    try:
        params = inspect.signature(obj).parameters.values()
    except (TypeError, ValueError):
        return False
    required = [
        p for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    return not required


def _sb3_algorithms():
    from stable_baselines3 import A2C, DQN, PPO

    return {"ppo": PPO, "a2c": A2C, "dqn": DQN}


def load_sb3(path: str | Path, algo: str | None, spec: str):
    """An SB3 model from a zip saved by SB3 (``model.save``) or the RL Zoo."""
    path = Path(path)
    if not path.is_file() and path.with_suffix(".zip").is_file():
        path = path.with_suffix(".zip")
    if not path.is_file():
        raise ValueError(f"policy {spec!r}: no such file {str(path)!r}")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"policy {spec!r}: {str(path)!r} is not an SB3 model zip")
    algorithms = _sb3_algorithms()
    if algo is not None:
        if algo not in algorithms:
            raise ValueError(f"policy {spec!r}: unknown SB3 algorithm {algo!r}; known: {sorted(algorithms)}")
        order = [algo]
    else:
        with zipfile.ZipFile(path) as z:
            data = json.loads(z.read("data")) if "data" in z.namelist() else {}
        policy_class = json.dumps(data.get("policy_class", "")).lower()
        order = ["dqn"] if "dqn" in policy_class or "qnetwork" in policy_class else ["ppo", "a2c"]
    errors = []
    for name in order:
        try:
            return algorithms[name].load(path, device="cpu")
        except Exception as err:  # noqa: BLE001  (SB3 raises many kinds; each is reported)
            errors.append(f"{name}: {type(err).__name__}: {err}")
    raise ValueError(f"policy {spec!r}: SB3 could not load {str(path)!r} ({'; '.join(errors)})")


def policy_from_spec(spec: str, name: str | None = None) -> Policy:
    """One policy from a ``kind:target`` string (see the module docstring)."""
    if not isinstance(spec, str) or ":" not in spec:
        raise ValueError(f"policy {spec!r}: expected one of {[k + ':...' for k in SPEC_KINDS]}")
    kind, target = spec.split(":", 1)
    name = name or spec
    if kind == "sb3":
        algo, _, rest = target.partition(":")
        if rest and algo.lower() in _sb3_algorithms():
            return SB3Policy(load_sb3(rest, algo.lower(), spec), name=name)
        return SB3Policy(load_sb3(target, None, spec), name=name)
    if kind == "python":
        obj = _import(target, spec)
        if _is_factory(obj) and not isinstance(obj, Policy):
            obj = obj()
        return as_policy(obj, name)
    if kind == "torch":
        parts = target.split(":")
        if len(parts) < 3:
            raise ValueError(f"policy {spec!r}: expected torch:package.module:Factory:path/to/weights.pt")
        factory = _import(":".join(parts[:2]), spec)
        weights = Path(":".join(parts[2:]))
        if not weights.is_file():
            raise ValueError(f"policy {spec!r}: no such file {str(weights)!r}")
        module = factory()
        if not isinstance(module, torch.nn.Module):
            raise ValueError(
                f"policy {spec!r}: {parts[1]}() returned {type(module).__name__}, not an nn.Module"
            )
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
            module.load_state_dict(state)
        except Exception as err:  # noqa: BLE001  (a bad file can fail in many ways; one message)
            raise ValueError(f"policy {spec!r}: cannot load weights {str(weights)!r}: {err}") from None
        return TorchPolicy(module, name=name)
    raise ValueError(f"policy {spec!r}: unknown kind {kind!r}; known: {list(SPEC_KINDS)}")
