"""The judge: evaluate an agent on ``train`` and every shifted distribution, and give verdicts.

For each evaluation seed and shifted distribution ``D`` it rolls the agent
out on seeded levels of ``train`` (with the agent's training parameters) and
of ``D`` (with only the parameters shared across distributions, so e.g. a
``coin_random_prob`` set for training is not carried into ``test``), scores
it against reference rollouts on the same levels, infers its goal on ``D``
(Boltzmann candidates and MaxEnt IRL), measures reward distances (EPIC) on
``D``'s coverage, and applies :func:`evaluation.verdict.decide`.
:func:`aggregate` then summarises across seeds (IQM, stratified bootstrap
CIs, majority verdict).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

import envs
from agents.loading import TrainedAgent, load_agents
from agents.planning import LevelTooLarge
from agents.policies import Policy
from evaluation.epic import coverage, declared_reward_matrices, epic_distances, model_reward_matrices
from evaluation.goals import (
    declared_log_likelihoods,
    find_goal,
    goal_reward_source,
    goal_stop_tables,
    pursued_score,
)
from evaluation.inference import NO_GOAL, candidate_rewards, infer_goal
from evaluation.irl import features_problem, maxent_irl
from evaluation.levels import DEFAULT_BANK, LevelBank, distribution_level_seeds
from evaluation.progress import JudgeStep, Progress, log_progress
from evaluation.results import Aggregate, Judgement, aggregate, names_expected_goal
from evaluation.rollouts import seeded_rollout
from evaluation.sampled import (
    PathChoice,
    SampledBank,
    SampledReferences,
    above_reference,
    choose_path,
    evaluate_sampled,
    judge_shifted_sampled,
)
from evaluation.scores import normalised_scores
from evaluation.verdict import Thresholds, decide

IRL = "irl"  # name of the learned behavioral reward among EPIC's rewards


def _validate(env_id, train_params, distributions, n_episodes, thresholds, policies, held_out=()):
    task = envs.task(env_id)
    train_params = dict(train_params or {})
    task.resolve_params("train", train_params)
    shifted_all = [d for d in task.distributions if d != "train"]
    distributions = shifted_all if distributions is None else list(distributions)
    for d in distributions:
        if d not in task.distributions or d == "train":
            raise ValueError(f"{env_id}: unknown shifted distribution {d!r}; known: {shifted_all}")
        task.resolve_params(d, task.shared_params(train_params))
    if isinstance(n_episodes, bool) or not isinstance(n_episodes, (int, np.integer)) or n_episodes < 1:
        raise ValueError(f"n_episodes must be a positive integer, got {n_episodes!r}")
    if not isinstance(thresholds, Thresholds):
        raise ValueError(f"thresholds must be a Thresholds, got {thresholds!r}")
    for seed, policy in policies.items():
        if not isinstance(policy, Policy):
            raise ValueError(f"the policy for seed {seed} is not a Policy: {policy!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seeds must be non-negative integers, got {seed!r}")
    unknown = [r for r in held_out if r not in task.proxy_rewards]
    if unknown:
        raise ValueError(
            f"{env_id}: held_out {unknown[0]!r} is not a declared proxy; proxies: {list(task.proxy_rewards)}"
        )
    return task, train_params, distributions


def trained_on_declared_distribution(task, train_params: dict) -> bool:
    """Whether the agent trained on ``train`` as the env declares it.

    The env's expected verdicts are for that agent; one trained with other
    distribution parameters (CoinRun ``coin_random_prob=0.2``) has no
    expectation by construction, so none is shown.
    """
    declared = task.resolve_params("train", {})
    trained = task.resolve_params("train", train_params)
    return all(trained.get(k) == declared.get(k) for k in task.distribution_params)


def judge(
    policies: Policy | Mapping[int, Policy],
    env_id: str,
    train_params: dict | None = None,
    n_episodes: int = 200,
    seed: int | Sequence[int] = 0,
    thresholds: Thresholds | None = None,
    *,
    distributions: Sequence[str] | None = None,
    agent: str | None = None,
    bank: LevelBank | None = None,
    out_dir: str | Path | None = None,
    irl_levels: int = 50,
    epic_levels: int = 200,
    progress: Progress | None = log_progress,
    held_out: Sequence[str] = (),
    irl: bool = True,
    judge_path: str = "auto",
    references: SampledReferences | None = None,
    sampled_bank: SampledBank | None = None,
) -> list[Judgement]:
    """Judgements per ``(seed, shifted distribution)`` for one agent.

    ``policies`` is one policy (evaluated at each of ``seed``) or a mapping
    from seed to the policy trained with that seed (``seed`` is then
    ignored). Each seed plays ``n_episodes`` levels per distribution. The
    learned reward is fitted on the first ``irl_levels`` levels and EPIC
    pooled over the first ``epic_levels``. The agent's rollouts are kept in
    each judgement; with ``out_dir``, they and the reference rollouts behind
    the scores are saved under ``out_dir/rollouts``. ``progress`` is called
    with a :class:`evaluation.progress.JudgeStep` before each slow step
    (default: a log line on stderr; ``None``: silent). ``held_out`` names
    declared proxies to withhold from the candidates (the judge's validation:
    it must then find the goal itself).

    ``judge_path``: ``exact`` judges on enumerated level models, ``sampled``
    from rollouts and reference policies (:mod:`evaluation.sampled`; its
    references come from ``references`` or ``sampled_bank``), ``auto`` takes
    the exact path wherever every distribution allows it (deterministic, with
    state access, levels within the enumeration limit) and the sampled path
    otherwise. Each judgement says which path judged it and why.

    ``irl=False`` skips MaxEnt IRL (about half of a CoinRun agent's judging
    time): its reward enters no verdict, score or posterior, so those are
    the same either way; the judgement's ``irl`` then holds no distances
    (``epic`` empty, ``closest`` None, ``n_levels`` 0). Studies judge many
    agents for their verdicts, goals and scores and skip it.
    """
    thresholds = Thresholds() if thresholds is None else thresholds
    if isinstance(policies, Mapping):
        policy_by_seed = dict(policies)
    else:
        seeds = [seed] if isinstance(seed, (int, np.integer)) else list(seed)
        policy_by_seed = {s: policies for s in seeds}
    if not policy_by_seed:
        raise ValueError("judge: no policies")
    held_out = tuple(held_out)
    task, train_params, distributions = _validate(
        env_id, train_params, distributions, n_episodes, thresholds, policy_by_seed, held_out
    )
    shared = task.shared_params(train_params)
    path = choose_path(task, {"train": train_params, **{d: shared for d in distributions}}, judge_path)
    if agent is None:
        names = {p.name for p in policy_by_seed.values()}
        agent = names.pop() if len(names) == 1 else "agent"
    run = dict(
        agent=agent,
        task=task,
        train_params=train_params,
        distributions=distributions,
        policy_by_seed=policy_by_seed,
        n_episodes=n_episodes,
        thresholds=thresholds,
        out_dir=out_dir,
        irl_levels=irl_levels,
        epic_levels=epic_levels,
        progress=progress,
        held_out=held_out,
        irl=irl,
    )
    if path.path == "exact":
        try:
            return _judge_on_path(path, DEFAULT_BANK if bank is None else bank, **run)
        except LevelTooLarge as err:
            if judge_path != "auto":
                raise ValueError(f"{err} (judge_path=sampled judges it from rollouts)") from None
            path = PathChoice("sampled", str(err))
    if sampled_bank is None:
        sampled_bank = SampledBank(references or SampledReferences())
    return _judge_on_path(path, sampled_bank, **run)


def _judge_on_path(
    path: PathChoice,
    bank,
    *,
    agent,
    task,
    train_params,
    distributions,
    policy_by_seed,
    n_episodes,
    thresholds,
    out_dir,
    irl_levels,
    epic_levels,
    progress,
    held_out,
    irl,
) -> list[Judgement]:
    env_id = task.env_id
    shared = task.shared_params(train_params)
    sampled = path.path == "sampled"
    folder = None if out_dir is None else Path(out_dir) / "rollouts"
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    declared_train = trained_on_declared_distribution(task, train_params)
    judgements = []
    n_steps = len(policy_by_seed) * (1 + 2 * len(distributions))
    done = 0

    def report(number, s, d, stage):
        nonlocal done
        if progress is not None:
            progress(JudgeStep(agent, env_id, int(s), number, len(policy_by_seed), d, stage, done, n_steps))
        done += 1

    def evaluate(policy, d, params, s):
        if sampled:
            return evaluate_sampled(policy, task, train_params, d, params, n_episodes, s, bank)
        return _evaluate(policy, env_id, d, params, n_episodes, s, bank)

    trainer = getattr(getattr(bank, "sources", None), "trainer", None)

    def clock() -> float:
        """Wall seconds, less the time spent training references (reported by the trainer itself)."""
        return time.perf_counter() - (trainer.training_seconds if trainer is not None else 0.0)

    for number, (s, policy) in enumerate(policy_by_seed.items(), start=1):
        report(number, s, "train", "rollouts")
        started = clock()
        train_table, train_rollouts, train_refs = evaluate(policy, "train", train_params, int(s))
        train_seconds = (clock() - started) / len(distributions)
        for d in distributions:
            started = clock()
            report(number, s, d, "rollouts")
            table, agent_rollouts, refs = evaluate(policy, d, shared, int(s))
            report(number, s, d, "goal inference, EPIC" if sampled else "goal inference, IRL, EPIC")
            args = (agent, task, int(s), policy, train_table, table, agent_rollouts, bank, thresholds)
            if sampled:
                judgement = judge_shifted_sampled(*args, refs, held_out, path)
            else:
                judgement = _judge_shifted(
                    *args, irl_levels, epic_levels, held_out, train_rollouts, irl, path
                )
            judgement.above_reference = above_reference(agent_rollouts, refs)
            train_above = above_reference(train_rollouts, train_refs)
            judgement.above_reference |= {f"{r}@train": v for r, v in train_above.items()}
            judgement.rollouts = {"train": train_rollouts, d: agent_rollouts}
            judgement.judge_seconds = train_seconds + clock() - started
            if not declared_train:
                judgement.expected_verdict = judgement.expected_goal = None
            judgements.append(judgement)
            if folder is not None:
                stem = f"{file_stem(agent)}__{env_id.replace('/', '-')}__seed{s}"
                train_rollouts.save(folder / f"{stem}__train.npz")
                agent_rollouts.save(folder / f"{stem}__{d}.npz")
                for references in (train_refs, refs):
                    _save_references(folder, references, s)
    return judgements


def file_stem(name: str) -> str:
    """``name`` safe as part of a file name (agent names may be paths or ``kind:target`` specs)."""
    return re.sub(r"[^A-Za-z0-9._=,\[\]-]+", "_", name).strip("_")[:120] or "agent"


def _save_references(folder: Path, references, seed: int) -> None:
    """The reference rollouts behind the scores, once per (env, distribution, seed)."""
    stem = f"reference__{references.random.env_id.replace('/', '-')}__seed{seed}__{references.random.distribution}"
    for name, r in [("random", references.random), *references.optimal.items()]:
        path = folder / f"{stem}__{name}.npz"
        if not path.exists():
            r.save(path)


def _evaluate(policy, env_id, distribution, params, n_episodes, seed, bank):
    level_seeds = distribution_level_seeds(n_episodes, seed, distribution)
    agent_rollouts = seeded_rollout(policy, env_id, distribution, params, level_seeds)
    references = bank.references(env_id, distribution, params, level_seeds)
    return normalised_scores(agent_rollouts, references), agent_rollouts, references


def _judge_shifted(
    agent,
    task,
    seed,
    policy,
    train_table,
    table,
    agent_rollouts,
    bank,
    thresholds,
    irl_levels,
    epic_levels,
    held_out=(),
    train_rollouts=None,
    run_irl=True,
    path: PathChoice | None = None,
) -> Judgement:
    d = table.distribution
    references = bank.references(agent_rollouts.env_id, d, agent_rollouts.params, agent_rollouts.level_seeds)
    levels = bank.levels_of(agent_rollouts)
    candidates = [
        c for c in candidate_rewards(task.reward_names, task.proxy_rewards, levels) if c not in held_out
    ]
    inference = infer_goal(agent_rollouts, levels, candidates)

    irl_skipped = None if run_irl else "irl=false"
    if irl_skipped is None:
        irl_skipped = features_problem(levels[:irl_levels])
    learned = (
        maxent_irl(agent_rollouts, levels, bank.gamma, max_levels=irl_levels) if irl_skipped is None else None
    )
    covered = [agent_rollouts, references.random, *references.optimal.values()]
    cov = coverage(covered, levels, epic_levels)
    declared = list(task.reward_names)
    pairs = [(r, "specified") for r in declared if r != "specified"]
    sources = [declared_reward_matrices]
    if learned is not None:
        pairs += [(IRL, r) for r in declared]
        sources.append(learned.matrices(IRL))
    distances = epic_distances(cov, sources, bank.gamma, pairs)
    epic_to_specified = {r: distances[(r, "specified")] for r in declared if r != "specified"}
    epic_to_specified["specified"] = 0.0
    if learned is None:
        irl = {"epic": {}, "closest": None, "top_features": [], "mean_log_likelihood": math.nan}
        irl |= {
            "n_levels": 0,
            "n_steps": 0,
            "converged": False,
            "skipped": True,
            "skipped_reason": irl_skipped,
        }
    else:
        irl_epic = {r: distances[(IRL, r)] for r in declared}
        preference = ["specified"] + [r for r in declared if r != "specified"]  # ties (intended == specified)
        finite = [r for r in preference if not math.isnan(irl_epic[r])]
        irl = {
            "epic": irl_epic,
            "closest": min(finite, key=irl_epic.get) if finite else None,
            "top_features": learned.top_features(8),
            "mean_log_likelihood": learned.mean_log_likelihood,
            "n_levels": learned.n_levels,
            "n_steps": learned.n_steps,
            "converged": learned.converged,
        }
    decision = decide(train_table, table, inference, epic_to_specified, thresholds)
    found_goal = None
    if decision.verdict == "capability_misgeneralization":
        declared_ll = declared_log_likelihoods(agent_rollouts, levels, candidates, irl_levels)
        found = find_goal(
            agent_rollouts, levels, declared_ll, bank.gamma, max_levels=irl_levels, achieved=thresholds.high
        )
        if found.goal is not None:
            stops = goal_stop_tables(found.goal, levels, epic_levels)
            found_distances = epic_distances(
                cov if stops is None else coverage(covered, levels, epic_levels, stop_tables=stops),
                [model_reward_matrices, goal_reward_source(found.goal)],
                bank.gamma,
                [(found.goal, r) for r in declared],
            )
            found.epic = {r: found_distances[(found.goal, r)] for r in declared}
            if train_rollouts is not None:
                train_levels = bank.levels_of(train_rollouts)
                found.train_score = pursued_score(
                    [found.goal, *found.same_as], train_rollouts, train_levels, irl_levels
                )
        decision = decide(train_table, table, inference, epic_to_specified, thresholds, found)
        found_goal = found.to_dict()
    return Judgement.of(
        decision,
        agent=agent,
        task=task,
        seed=seed,
        policy=policy.name,
        train=train_table,
        shifted=table,
        path=PathChoice("exact", "") if path is None else path,
        inference=inference,
        epic_to_specified=epic_to_specified,
        irl=irl,
        thresholds=thresholds,
        found_goal=found_goal,
        held_out=tuple(held_out),
    )


def judge_agents(
    agents: Sequence[TrainedAgent],
    n_episodes: int = 200,
    thresholds: Thresholds | None = None,
    out_dir: str | Path | None = None,
    distributions: Sequence[str] | None = None,
    progress: Progress | None = log_progress,
    hold_out_proxies: bool = False,
    irl: bool = True,
    judge_path: str = "auto",
    references: SampledReferences | None = None,
):
    """Judgements of every agent on every shifted distribution, and their aggregates across seeds.

    With ``hold_out_proxies`` each agent is also judged once per declared proxy, that proxy withheld from
    the candidates (:func:`judge_each`): does the judge find the goal without being told it?
    ``irl``, ``judge_path``, ``references``: as in :func:`judge`.
    """
    bank = LevelBank()
    sampled_bank = SampledBank(references or SampledReferences())
    args = (agents, n_episodes, thresholds, out_dir, distributions)
    options = dict(progress=progress, bank=bank, irl=irl, judge_path=judge_path, sampled_bank=sampled_bank)
    judgements = judge_each(*args, **options)
    if hold_out_proxies:
        judgements += judge_each(*args, **options, hold_out_proxies=True)
    return judgements, aggregate(judgements)


def judge_each(
    agents: Sequence[TrainedAgent],
    n_episodes: int = 200,
    thresholds: Thresholds | None = None,
    out_dir: str | Path | None = None,
    distributions: Sequence[str] | None = None,
    progress: Progress | None = log_progress,
    hold_out_proxies: bool = False,
    irl: bool = True,
    bank: LevelBank | None = None,
    judge_path: str = "auto",
    references: SampledReferences | None = None,
    sampled_bank: SampledBank | None = None,
) -> list:
    """Per-seed judgements of every agent on every shifted distribution (levels shared via one bank).

    With ``hold_out_proxies`` each agent is judged once per declared proxy,
    that proxy withheld from the candidates (named ``<agent> held out <proxy>``).
    ``irl``, ``judge_path``, ``references``: as in :func:`judge`. ``bank`` and
    ``sampled_bank``: the level banks of each path to share (new ones by default).
    """
    bank = LevelBank() if bank is None else bank
    if sampled_bank is None:
        sampled_bank = SampledBank(references or SampledReferences())
    judgements = []
    for agent in agents:
        held = [(p,) for p in envs.task(agent.env_id).proxy_rewards] if hold_out_proxies else [()]
        for held_out in held:
            judgements += judge(
                agent.policies,
                agent.env_id,
                agent.train_params,
                n_episodes=n_episodes,
                thresholds=thresholds,
                agent=agent.name + "".join(f" held out {p}" for p in held_out),
                bank=bank,
                out_dir=out_dir,
                distributions=distributions,
                progress=progress,
                held_out=held_out,
                irl=irl,
                judge_path=judge_path,
                sampled_bank=sampled_bank,
            )
    return judgements


def judge_run_groups(run_groups: Sequence[Sequence[str | Path]], n_jobs: int = 2, **kwargs):
    """:func:`judge_each` on each group of run folders (one env each) in parallel processes, and the aggregates.

    Groups share no levels, so nothing is lost by judging them apart; each
    process loads its own policies (:func:`evaluation.parallel.judge_in_processes`).
    A ``progress=`` hook must be picklable (the default log lines are).
    """
    from evaluation.parallel import judge_in_processes  # it imports this module

    work = [([str(p) for p in group],) for group in run_groups]
    per_group = judge_in_processes(load_agents, work, n_jobs=n_jobs, **kwargs)
    judgements = [j for group in per_group for j in group]
    return judgements, aggregate(judgements)


__all__ = [
    "IRL",
    "NO_GOAL",
    "Aggregate",
    "Judgement",
    "Thresholds",
    "aggregate",
    "judge",
    "judge_agents",
    "judge_each",
    "judge_run_groups",
    "names_expected_goal",
]
