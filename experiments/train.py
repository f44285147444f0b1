"""Train one agent: ``python -m experiments.train env=coinrun env.coin_random_prob=0.0 seed=1 agent=ppo``.

The run folder is ``<runs_root>/<env>/<agent>/<tag>-<digest>-seed<seed>``: the
digest covers the whole training config but the seed (numbers by value), so a
different budget or hyper-parameter is a different run. Everything is checked
before anything is written: a refused command leaves no folder and never
touches a finished run, and a start refused once the folder is made (a
checkpoint that does not fit the network) removes the folder it made. One
process trains into a run folder at a time (``run.lock``). Ctrl-C saves a
checkpoint and exits 130; the same command resumes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from agents.checkpoints import WriteError, write_bytes_atomic
from agents.run_logging import log_run_summary, start_wandb
from agents.training import (
    TrainConfig,
    TrainingInterrupted,
    canonical,
    prepare_run,
    quiet_render_backends,
    resolve_checkpoint,
    run_lock,
    run_name,
    train,
    validate,
)
from evaluation.periodic import make_evaluator, make_video_recorder
from experiments.common import clear_errors, fail, train_config


def readable_tag(cfg: DictConfig) -> str:
    """The env config's ``tag`` with its numbers by value (``crp${coin_random_prob}``: 0 and 0.0 -> crp0)."""
    raw = OmegaConf.to_container(cfg.env, resolve=False)
    try:
        env = {k: (v if k == "tag" else canonical(v)) for k, v in raw.items()}
        tag = str(OmegaConf.to_container(OmegaConf.create({"env": env}), resolve=True)["env"]["tag"])
    except Exception:  # noqa: BLE001 - a tag interpolating outside env: use it as resolved
        tag = str(cfg.env.tag)
    return tag.replace("/", "_") or "run"


def run_folder(cfg: DictConfig, config: TrainConfig) -> Path:
    if cfg.run_dir:
        return Path(cfg.run_dir)
    return Path(cfg.runs_root) / cfg.env.name / cfg.agent.name / run_name(readable_tag(cfg), config)


def run(cfg: DictConfig) -> dict:
    quiet_render_backends(runtime_dir=False)  # before env modules (and any pygame in them) are imported
    config = train_config(cfg)
    validate(config)
    if cfg.train.resume_from is not None:
        resolve_checkpoint(cfg.train.resume_from)
    run_dir = run_folder(cfg, config)
    evaluate = make_evaluator(config.env_id, config.env_params, config.eval_episodes, seed=config.seed)
    video = (
        make_video_recorder(config.env_id, config.env_params, seed=config.seed) if cfg.train.video else None
    )
    # run_lock makes the folder; a start refused inside (a checkpoint that does not fit, say) removes it
    with run_lock(run_dir):
        start = prepare_run(config, run_dir, fresh=cfg.train.fresh, extend=cfg.train.extend)
        if start.finished is not None:
            print(
                f"{run_dir} is finished; train.fresh=true retrains it, "
                "a larger total_timesteps with train.extend=true continues it"
            )
            print(summary(run_dir, start.finished))
            return start.finished
        # written only now: a command refused above never touches the folder
        write_bytes_atomic(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True).encode())
        wandb_run = start_wandb(
            run_dir,
            project=cfg.logger.project,
            mode=cfg.logger.mode,
            config=OmegaConf.to_container(cfg, resolve=True),
            name=run_dir.as_posix().replace("/", "__"),
            group=f"{cfg.env.name}-{cfg.env.tag}",
        )
        print(f"training into {run_dir} (progress: {run_dir / 'train.log'})", flush=True)
        try:
            metrics = train(
                config,
                run_dir,
                evaluate=evaluate,
                record_video=video,
                wandb_run=wandb_run,
                progress_bar=cfg.train.progress_bar and sys.stdout.isatty(),
                resume_from=cfg.train.resume_from,
                extend=cfg.train.extend,
                handle_signals=True,
            )
        except BaseException:
            if wandb_run is not None:  # its files are closed before a refused start's folder is removed
                try:
                    wandb_run.finish(exit_code=1)
                except Exception:  # noqa: BLE001 - W&B must never hide the error itself
                    pass
            raise
    if wandb_run is not None:
        log_run_summary(wandb_run, run_dir, metrics)
        wandb_run.finish()
    print(summary(run_dir, metrics))
    return metrics


def summary(run_dir: Path, metrics: dict) -> str:
    lines = [f"run: {run_dir}  steps: {metrics['total_timesteps']}"]
    for row in metrics["final_eval"]:
        lines.append(
            f"  {row['distribution']:>6} {row['reward']:<18} success {row['success_rate']:.3f}"
            f"  return {row['mean_return']:.2f}"
        )
    return "\n".join(lines)


@hydra.main(config_path="../configs", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    with clear_errors():
        try:
            run(cfg)
        except TrainingInterrupted as err:
            fail(str(err), 130, prefix="")
        except WriteError as err:
            fail(str(err), 1)
        except KeyboardInterrupt:
            fail("interrupted before the first step; the same command starts it again", 130, prefix="")


if __name__ == "__main__":
    main()
