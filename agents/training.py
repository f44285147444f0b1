"""The training loop: an SB3 agent on a shift environment, resumably, into one run folder.

``train(config, run_dir)`` is the whole path: validate everything first (bad
input stops before any work), take the run folder's lock (one writer per
run), refuse a folder holding another config, build the env batch and the
model and load the checkpoint to resume from, and only then write into the
folder (so a refused start leaves none); learn with periodic shift
evaluation and checkpoints, then save the final policy, a final checkpoint
(from which a longer budget continues) and metrics. Evaluation and videos are
injected as functions so this layer does not depend on the judge; an env that
cannot render gets no video, said in one line of ``train.log``.

The other jobs live beside it, and every public name of theirs is importable
from here too: the config, its checks and run names in
:mod:`agents.train_config`; run folders, their lock and where a run starts in
:mod:`agents.run_folder`; what reproducing a run needs in
:mod:`agents.provenance`.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from stable_baselines3.common.callbacks import CallbackList
from stable_baselines3.common.logger import HumanOutputFormat, Logger

import envs
from agents.callbacks import Checkpointing, EpisodeRewardStats, PeriodicEvaluation, ProgressLog, StopRequest
from agents.checkpoints import (
    CheckpointError,
    load_training_checkpoint,
    read_policy,
    save_policy,
    write_json_atomic,
)
from agents.networks import GridCNN, is_grid
from agents.provenance import PACKAGES, run_info, save_provenance
from agents.run_folder import (
    LOCK_FILE,
    RESULT_NAMES,
    RUN_CONFIG,
    RunBusyError,
    RunStart,
    finished_metrics,
    prepare_run,
    resolve_checkpoint,
    run_lock,
)
from agents.run_logging import JsonlWriter, WandbWriter, jsonl_to_csv, truncate_jsonl
from agents.train_config import (
    ALGORITHMS,
    FREE_KEYS,
    HYPERPARAM_RULES,
    LATER_DEFAULTS,
    RESERVED_ARGS,
    AgentConfig,
    TrainConfig,
    canonical,
    canonical_json,
    config_digest,
    observation_space,
    run_name,
    validate,
    validate_agent,
    validate_learner,
)
from agents.vec_env import MixtureVectorEnv, ShiftSB3VecEnv
from envs.core import ShiftVectorEnv

__all__ = [
    # the training loop (this module)
    "TrainingInterrupted",
    "build_model",
    "load_trained_policy",
    "make_training_env",
    "policy_meta",
    "quiet_render_backends",
    "train",
    # agents.train_config
    "ALGORITHMS",
    "FREE_KEYS",
    "HYPERPARAM_RULES",
    "LATER_DEFAULTS",
    "RESERVED_ARGS",
    "AgentConfig",
    "TrainConfig",
    "canonical",
    "canonical_json",
    "config_digest",
    "observation_space",
    "run_name",
    "validate",
    "validate_agent",
    "validate_learner",
    # agents.run_folder
    "LOCK_FILE",
    "RESULT_NAMES",
    "RUN_CONFIG",
    "RunBusyError",
    "RunStart",
    "finished_metrics",
    "prepare_run",
    "resolve_checkpoint",
    "run_lock",
    # agents.provenance
    "PACKAGES",
    "run_info",
]


# matplotlib's font manager logs at INFO when it (re)builds its font cache, i.e. on the first plot
# with a fresh cache (the demo's report); the apps' Hydra logging prints INFO lines, and this one
# says nothing about the run.
logging.getLogger("matplotlib.font_manager").setLevel(logging.WARNING)


def make_training_env(config: TrainConfig) -> ShiftSB3VecEnv:
    """The training batch; with several ``distributions``, the rows split evenly between them."""
    task = envs.task(config.env_id)
    if list(config.distributions) == ["train"]:
        vec = ShiftVectorEnv(config.agent.num_envs, "train", task=task, **config.env_params)
    else:
        k = len(config.distributions)
        sizes = [config.agent.num_envs // k + (i < config.agent.num_envs % k) for i in range(k)]
        vec = MixtureVectorEnv(
            [
                ShiftVectorEnv(
                    n,
                    d,
                    task=task,
                    **(config.env_params if d == "train" else task.shared_params(config.env_params)),
                )
                for n, d in zip(sizes, config.distributions, strict=True)
            ]
        )
    venv = ShiftSB3VecEnv(vec, reward=config.reward)
    venv.seed(config.seed)
    return venv


def build_model(agent: AgentConfig, venv, seed: int, verbose: int = 0):
    """``agent``'s SB3 model for ``venv``: :class:`GridCNN` features on a ``(C, H, W)`` grid,
    SB3's ``MlpPolicy`` (its default layers) on any other Box (:func:`agents.networks.is_grid`)."""
    common = {"seed": seed, "verbose": verbose, "device": "cpu", **agent.hyperparams}
    if not is_grid(venv.observation_space):
        return ALGORITHMS[agent.algo]("MlpPolicy", venv, **common)
    policy_kwargs = {
        "features_extractor_class": GridCNN,
        "features_extractor_kwargs": {
            "features_dim": agent.features_dim,
            "channels": tuple(agent.channels),
            "strides": tuple(agent.strides) if agent.strides else None,
            "egocentric": agent.egocentric,
        },
        "normalize_images": False,
    }
    return ALGORITHMS[agent.algo]("CnnPolicy", venv, policy_kwargs=policy_kwargs, **common)


def policy_meta(config: TrainConfig, obs_shape) -> dict:
    """What a policy file must match to be loaded: env, params, shapes, network (and a non-default mixture)."""
    meta = {
        "env_id": config.env_id,
        "env_params": config.env_params,
        "obs_shape": list(obs_shape),
        "algo": config.agent.algo,
        "network": {
            "features_dim": config.agent.features_dim,
            "channels": list(config.agent.channels),
            "strides": config.agent.strides,
            "egocentric": config.agent.egocentric,
        },
        "hyperparams": config.agent.hyperparams,
        "seed": config.seed,
        "reward": config.reward,
    }
    if list(config.distributions) != LATER_DEFAULTS["distributions"]:
        meta["distributions"] = list(config.distributions)
    return meta


def load_trained_policy(path: str | Path):
    """Rebuild an SB3 model from a policy file (or run folder) without unpickling code."""
    path = Path(path)
    if (path / "final").is_dir():
        path = path / "final"
    state_dict, meta = read_policy(path)
    try:
        config = TrainConfig(
            env_id=meta["env_id"],
            env_params=meta["env_params"],
            agent=AgentConfig(
                algo=meta["algo"],
                num_envs=1,
                features_dim=meta["network"]["features_dim"],
                channels=meta["network"]["channels"],
                strides=meta["network"].get("strides"),
                egocentric=meta["network"].get("egocentric", False),
                hyperparams=meta.get("hyperparams", {}),
            ),
            seed=meta.get("seed", 0),
        )
    except KeyError as err:
        raise CheckpointError(f"{path}: model.json lacks {err}") from None
    validate(config)
    venv = make_training_env(config)
    if list(venv.observation_space.shape) != list(meta["obs_shape"]):
        raise CheckpointError(
            f"{path} expects observations of shape {meta['obs_shape']}, "
            f"but {config.env_id} with {config.env_params} gives {list(venv.observation_space.shape)}"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # batch-size advice is about training, not loading
        model = build_model(config.agent, venv, config.seed)
    try:
        model.policy.load_state_dict(state_dict)
    except RuntimeError as err:
        raise CheckpointError(f"{path} does not fit its declared network: {err}") from None
    return model, meta


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line] if path.exists() else []


def train(
    config: TrainConfig,
    run_dir: str | Path,
    evaluate: Callable | None = None,
    record_video: Callable | None = None,
    wandb_run=None,
    fresh: bool = False,
    progress_bar: bool = True,
    verbose: int = 0,
    resume_from: str | Path | None = None,
    extend: bool = False,
    handle_signals: bool = False,
) -> dict:
    """Train (or resume, or skip if finished) and return the final metrics.

    ``evaluate(model, timesteps) -> rows`` scores the policy on every
    distribution under every declared reward; ``record_video(model, path)``
    writes a shifted-distribution episode. With ``handle_signals`` (the train
    app), Ctrl-C or SIGTERM saves a checkpoint at the next rollout start and
    raises :class:`TrainingInterrupted`; a second Ctrl-C stops at once.
    """
    validate(config)
    explicit_checkpoint = resolve_checkpoint(resume_from) if resume_from is not None else None
    run_dir = Path(run_dir)
    with run_lock(run_dir):
        start = prepare_run(config, run_dir, fresh=fresh, extend=extend and explicit_checkpoint is None)
        if start.finished is not None:
            return start.finished
        if explicit_checkpoint is not None and start.checkpoint is None:
            start.checkpoint = explicit_checkpoint
        return _train_locked(
            config, run_dir, start, evaluate, record_video, wandb_run, progress_bar, verbose, handle_signals
        )


class TrainingInterrupted(Exception):
    """Training stopped on a signal; ``step`` is where the same command resumes from."""

    def __init__(self, step: int, checkpoint_saved: bool = True):
        super().__init__(f"interrupted at step {step}; the same command resumes")
        self.step, self.checkpoint_saved = step, checkpoint_saved


@contextmanager
def _stop_on_signals(stop: StopRequest, enabled: bool) -> Iterator[None]:
    """First SIGINT/SIGTERM: request a stop at the next checkpoint; a second SIGINT: KeyboardInterrupt."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, _frame):
        if stop.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.requested = True

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _train_locked(
    config: TrainConfig,
    run_dir: Path,
    start: RunStart,
    evaluate: Callable | None,
    record_video: Callable | None,
    wandb_run,
    progress_bar: bool,
    verbose: int,
    handle_signals: bool,
) -> dict:
    metrics_path = run_dir / "metrics.json"
    progress_path, eval_path = run_dir / "progress.jsonl", run_dir / "eval.jsonl"

    # The start: env, model and checkpoint, before anything is written (a failure here is a refused
    # start, and run_lock removes a folder it made for it).
    torch.set_num_threads(config.torch_threads)
    venv = make_training_env(config)
    model = build_model(config.agent, venv, config.seed, verbose)
    meta = policy_meta(config, venv.observation_space.shape)
    ckpt_meta = None
    if start.checkpoint is not None:
        ckpt_meta = load_training_checkpoint(start.checkpoint, model, venv, meta)

    # From here on the folder holds this run.
    if start.history_from is not None and start.checkpoint is not None:
        for name in ("progress.jsonl", "eval.jsonl"):
            if (start.history_from / name).exists():
                shutil.copyfile(start.history_from / name, run_dir / name)
    metrics_path.unlink(missing_ok=True)  # an extended run is not done any more
    save_provenance(run_dir, config)
    checkpoints = run_dir / "checkpoints"
    last_eval = -1
    resumed_from = None
    progress = ProgressLog(run_dir / "train.log", config.total_timesteps, config.reward)
    if not is_grid(venv.observation_space):
        progress.note(
            f"observation shape {tuple(venv.observation_space.shape)} is not a (C, H, W) grid: "
            "SB3's MlpPolicy on it (agent.egocentric and agent.features_dim do not apply)"
        )
    if ckpt_meta is not None:
        last_eval = ckpt_meta.get("last_eval", -1)
        resumed_from = model.num_timesteps
        truncate_jsonl(progress_path, model.num_timesteps)
        truncate_jsonl(eval_path, model.num_timesteps, key="timesteps")
        if start.history_from is not None:
            progress.note(f"continuing {start.history_from} from its checkpoint at step {resumed_from}")
    else:
        for stale in (progress_path, eval_path):
            stale.unlink(missing_ok=True)

    formats = [JsonlWriter(progress_path)]
    if verbose:
        formats.append(HumanOutputFormat(sys.stdout))
    if wandb_run is not None:
        formats.append(WandbWriter(wandb_run))
    model.set_logger(Logger(folder=str(run_dir), output_formats=formats))

    stop = StopRequest()
    callbacks = [EpisodeRewardStats(venv.env.core.reward_names)]
    evaluation = None
    if evaluate is not None:
        evaluation = PeriodicEvaluation(
            evaluate, config.eval_every, eval_path, last_step=last_eval, stop=stop, note=progress.note
        )
        callbacks.append(evaluation)
    checkpointing = Checkpointing(
        checkpoints,
        venv,
        config.checkpoint_every,
        meta,
        state=lambda: {"last_eval": evaluation.last_step if evaluation else -1},
        stop=stop,
    )
    callbacks += [checkpointing, progress]

    started = time.perf_counter()
    remaining = config.total_timesteps - model.num_timesteps
    with _stop_on_signals(stop, handle_signals):
        try:
            if remaining > 0:
                model.learn(
                    remaining,
                    callback=CallbackList(callbacks),
                    reset_num_timesteps=resumed_from is None,
                    progress_bar=progress_bar,
                )
            wall = time.perf_counter() - started
            if evaluation is not None and not stop.requested and evaluation.last_step != model.num_timesteps:
                evaluation.run(model.num_timesteps)
                model.logger.dump(model.num_timesteps)
            if stop.saved_at is None and checkpointing.last_saved != model.num_timesteps:
                checkpointing.model = model
                checkpointing.save()  # the final state: a longer budget (train.extend) continues from here
        except KeyboardInterrupt:
            progress.note(f"interrupted at step {model.num_timesteps} (second Ctrl-C: no new checkpoint)")
            raise TrainingInterrupted(model.num_timesteps, checkpoint_saved=False) from None
        if stop.requested:
            step = stop.saved_at if stop.saved_at is not None else model.num_timesteps
            progress.note(f"interrupted at step {step}; checkpoint saved, the same command resumes")
            model.logger.close()
            venv.close()
            raise TrainingInterrupted(step)
    final_eval = (
        [r for r in _read_jsonl(eval_path) if r["timesteps"] == model.num_timesteps] if evaluation else []
    )
    save_policy(run_dir / "final", model, meta)
    video = None
    if record_video is not None:
        video = _record_video(record_video, model, run_dir / "video", progress.note)
    jsonl_to_csv(progress_path, run_dir / "progress.csv")
    jsonl_to_csv(eval_path, run_dir / "eval.csv")
    metrics = {
        "status": "done",
        "env_id": config.env_id,
        "seed": config.seed,
        "total_timesteps": int(model.num_timesteps),
        "resumed_from": resumed_from,
        "wall_seconds_this_session": wall,
        "steps_per_second_this_session": (model.num_timesteps - (resumed_from or 0)) / max(wall, 1e-9),
        "final_eval": final_eval,
        "video": video,
    }
    write_json_atomic(metrics_path, metrics)
    progress.note(f"done at step {model.num_timesteps} ({wall:.0f} s this session)")
    model.logger.close()
    venv.close()
    return metrics


def _record_video(record_video: Callable, model, folder: Path, note: Callable[[str], None]) -> str | None:
    """The video's path; ``None``, said in one ``train.log`` line, when the env cannot render.

    An env without ``render()``, or whose render raises or gives no image, is
    still trained and judged: only its video is skipped. A failed write (a
    full disk) is not a rendering problem and stops the run as any write does.
    """
    quiet_render_backends()
    try:
        return str(record_video(model, folder))
    except OSError:
        raise
    except Exception as err:  # noqa: BLE001 - whatever an env's renderer raises
        try:
            folder.rmdir()  # only if nothing was written into it
        except OSError:
            pass
        reason = " ".join(str(err).split()) or "no message"
        note(f"no video: the env cannot render a frame ({type(err).__name__}: {reason})")
        return None


def quiet_render_backends(runtime_dir: bool = True) -> None:
    """Keep SDL's complaints about a missing desktop session out of a training's output.

    A renderer built on pygame calls ``pygame.init()``, which starts SDL's
    audio and display back-ends: without a desktop session they print
    ``error: XDG_RUNTIME_DIR is invalid or not set`` and ALSA errors to stderr,
    and importing pygame prints a banner. For this process only, and only
    where nothing is set: SDL's dummy audio driver (training plays no sound),
    no banner, and with ``runtime_dir`` (just before rendering) a private
    ``XDG_RUNTIME_DIR`` (mode 0700, removed at exit).
    """
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    if runtime_dir and not os.environ.get("XDG_RUNTIME_DIR"):
        folder = tempfile.mkdtemp(prefix="xdg-runtime-")
        atexit.register(shutil.rmtree, folder, True)
        os.environ["XDG_RUNTIME_DIR"] = folder
