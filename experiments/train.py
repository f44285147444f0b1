"""Train one agent: ``python -m experiments.train env=coinrun env.coin_random_prob=0.0 seed=1 agent=ppo``."""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from agents.run_logging import log_run_summary, start_wandb
from agents.training import resolve_checkpoint, train, validate
from evaluation.periodic import make_evaluator, make_video_recorder
from experiments.common import clear_errors, train_config


def run(cfg: DictConfig) -> dict:
    config = train_config(cfg)
    validate(config)
    if cfg.train.resume_from is not None:
        resolve_checkpoint(cfg.train.resume_from)
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    evaluate = make_evaluator(config.env_id, config.env_params, config.eval_episodes, seed=config.seed)
    video = (
        make_video_recorder(config.env_id, config.env_params, seed=config.seed) if cfg.train.video else None
    )
    wandb_run = start_wandb(
        run_dir,
        project=cfg.logger.project,
        mode=cfg.logger.mode,
        config=OmegaConf.to_container(cfg, resolve=True),
        name=run_dir.as_posix().replace("/", "__"),
        group=f"{cfg.env.name}-{cfg.env.tag}",
    )
    metrics = train(
        config,
        run_dir,
        evaluate=evaluate,
        record_video=video,
        wandb_run=wandb_run,
        fresh=cfg.train.fresh,
        progress_bar=cfg.train.progress_bar,
        resume_from=cfg.train.resume_from,
    )
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
        run(cfg)


if __name__ == "__main__":
    main()
