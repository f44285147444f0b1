"""Judge agents: run folders of the train app, or policies brought from outside.

    python -m experiments.evaluate 'runs=[runs/coinrun/ppo/crp0.0-seed1]'
    python -m experiments.evaluate env=coinrun policy=sb3:path/model.zip
    python -m experiments.evaluate env=coinrun 'policy=[python:pkg.mod:policy_a,python:pkg.mod:policy_b]'

A list of policies is one agent with one policy per training seed (seeds 1, 2, ...).
``hold_out_proxies=true`` judges each agent also once per declared proxy, that proxy withheld from the
candidates, and writes ``held_out.md``: whether the judge finds the goal without being told it.

Judging shows its progress per agent, seed and distribution on stderr (a bar
on a terminal, log lines otherwise). The report is written into
``<out_dir>.partial`` and moved into ``out_dir`` only when complete
(``results.json`` last), so an interrupted evaluate leaves no results: Ctrl-C
removes the partial folder and exits 130 with ``interrupted; no report written``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

import envs
from agents.external import policy_from_spec
from agents.files import atomic_write
from agents.loading import TrainedAgent, load_agents
from agents.run_logging import start_wandb
from evaluation.judge import judge_agents
from evaluation.progress import reporter
from evaluation.report import behaviour_table, log_wandb, paths_table, verdict_table, write_report
from evaluation.validation import held_out_markdown, held_out_rows
from evaluation.verdict import Thresholds
from experiments.common import (
    clear_errors,
    env_params,
    fail,
    import_env_modules,
    load_env_config,
    reference_sources,
)

MARKER = "results.json"  # moved into out_dir last: present only with a complete report


def partial_dir(out_dir: Path) -> Path:
    """Where a report is written until it is complete: ``<out_dir>.partial`` beside ``out_dir``."""
    out_dir = out_dir.absolute()  # "." has no name
    return out_dir.with_name(out_dir.name + ".partial")


def publish(partial: Path, out_dir: Path) -> None:
    """Move the complete report in ``partial`` into ``out_dir`` and remove ``partial``.

    A missing or empty ``out_dir`` is replaced by one rename. Otherwise (Hydra's
    ``.hydra/``, an earlier report) the old ``results.json`` goes first, each
    entry is replaced and the new ``results.json`` comes last: a crash midway
    leaves no ``results.json`` beside files of another run.
    """
    if not out_dir.exists() or (out_dir.is_dir() and not any(out_dir.iterdir())):
        if out_dir.exists():
            out_dir.rmdir()
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        partial.rename(out_dir)
        return
    (out_dir / MARKER).unlink(missing_ok=True)
    entries = sorted(partial.iterdir(), key=lambda p: p.name == MARKER)
    for entry in entries:
        target = out_dir / entry.name
        if target.is_dir() and not target.is_symlink() and entry.name != MARKER:
            shutil.rmtree(target)
        entry.replace(target)
    partial.rmdir()


def external_agent(cfg: DictConfig) -> TrainedAgent:
    """The agent of ``policy=`` (one spec or a list, one per seed) on ``env=``'s training params."""
    if cfg.get("env") is None:
        raise ValueError("policy= needs env=<name> (the env the policy acts in and its training params)")
    env_cfg = load_env_config(cfg.env.name) if "id" not in cfg.env else cfg.env
    specs = [cfg.policy] if isinstance(cfg.policy, str) else list(cfg.policy)
    if not specs:
        raise ValueError("policy= is an empty list")
    name = cfg.get("agent_name") or (specs[0] if len(specs) == 1 else "external")
    policies = {seed: policy_from_spec(str(spec), name=name) for seed, spec in enumerate(specs, start=1)}
    train_params = env_params(env_cfg)
    envs.task(env_cfg.id).resolve_params("train", train_params)
    return TrainedAgent(name, env_cfg.id, train_params, policies, {})


def run(cfg: DictConfig) -> dict:
    thresholds = Thresholds(**cfg.thresholds)
    n = cfg.n_episodes  # checked before any policy is loaded
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n_episodes must be a positive integer, got {n!r}")
    import_env_modules(cfg)
    if cfg.get("policy") is not None and cfg.get("runs") is not None:
        raise ValueError("give runs= (run folders) or policy= (external policies), not both")
    if cfg.get("policy") is not None:
        agents = [external_agent(cfg)]
        runs = []
    elif cfg.get("runs") is not None:
        runs = [cfg.runs] if isinstance(cfg.runs, str) else list(cfg.runs)
        agents = load_agents(runs)
    else:
        raise ValueError("nothing to judge: give runs=[run folders] or env=<name> policy=<kind:target>")
    out_dir = Path(cfg.out_dir)
    partial = partial_dir(out_dir)
    shutil.rmtree(partial, ignore_errors=True)  # left by a killed evaluate
    partial.mkdir(parents=True)
    try:
        with reporter() as progress:
            judgements, aggregates = judge_agents(
                agents,
                n_episodes=cfg.n_episodes,
                thresholds=thresholds,
                out_dir=partial,
                distributions=cfg.distributions,
                progress=progress,
                hold_out_proxies=cfg.hold_out_proxies,
                irl=cfg.irl,
                judge_path=cfg.judge_path,
                references=reference_sources(cfg, sorted({a.env_id for a in agents})),
            )
        meta = {
            "runs": runs,
            "policy": OmegaConf.to_container(cfg, resolve=True).get("policy"),
            "n_episodes": cfg.n_episodes,
            "config": OmegaConf.to_container(cfg, resolve=True),
        }
        paths = write_report(judgements, aggregates, partial, meta=meta)
        if cfg.hold_out_proxies:
            held_out = held_out_markdown(
                held_out_rows([j for j in judgements if j.held_out], thresholds.epic)
            )
            paths["held_out.md"] = partial / "held_out.md"
            atomic_write(paths["held_out.md"], held_out.encode())
        publish(partial, out_dir)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    paths = {name: out_dir / path.relative_to(partial) for name, path in paths.items()}
    wandb_run = start_wandb(
        out_dir, project=cfg.logger.project, mode=cfg.logger.mode, config=meta["config"], name=out_dir.name
    )
    if wandb_run is not None:
        log_wandb(judgements, aggregates, wandb_run)
        wandb_run.finish()
    print(verdict_table(aggregates))
    print(paths_table(aggregates, judgements))
    print(behaviour_table(judgements))
    if cfg.hold_out_proxies:
        print(f"Each declared proxy held out from the candidates (EPIC bar {thresholds.epic}):\n{held_out}")
    print(f"report: {paths['verdicts.md']}")
    return {"aggregates": [a.to_dict() for a in aggregates], "report": str(out_dir)}


@hydra.main(config_path="../configs", config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    with clear_errors():
        try:
            run(cfg)
        except KeyboardInterrupt:
            fail("interrupted; no report written", 130, prefix="")


if __name__ == "__main__":
    main()
