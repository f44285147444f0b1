"""Judge trained agents: ``python -m experiments.evaluate 'runs=[runs/coinrun/ppo/crp0.0-seed1]'``."""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from agents.loading import load_agents
from agents.run_logging import start_wandb
from evaluation.judge import judge_agents
from evaluation.report import log_wandb, verdict_table, write_report
from evaluation.verdict import Thresholds
from experiments.common import clear_errors


def run(cfg: DictConfig) -> dict:
    thresholds = Thresholds(**cfg.thresholds)
    runs = [cfg.runs] if isinstance(cfg.runs, str) else list(cfg.runs)
    agents = load_agents(runs)
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    judgements, aggregates = judge_agents(
        agents,
        n_episodes=cfg.n_episodes,
        thresholds=thresholds,
        out_dir=out_dir,
        distributions=cfg.distributions,
    )
    meta = {"runs": runs, "n_episodes": cfg.n_episodes, "config": OmegaConf.to_container(cfg, resolve=True)}
    paths = write_report(judgements, aggregates, out_dir, meta=meta)
    wandb_run = start_wandb(
        out_dir, project=cfg.logger.project, mode=cfg.logger.mode, config=meta["config"], name=out_dir.name
    )
    if wandb_run is not None:
        log_wandb(judgements, aggregates, wandb_run)
        wandb_run.finish()
    print(verdict_table(aggregates))
    print(f"report: {paths['verdicts.md']}")
    return {"aggregates": [a.to_dict() for a in aggregates], "report": str(out_dir)}


@hydra.main(config_path="../configs", config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    with clear_errors():
        run(cfg)


if __name__ == "__main__":
    main()
