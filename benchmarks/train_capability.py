"""How fast PPO (the default config) learns each env's training distribution.

Trains through the project's own path (``agents.training.train`` with the
default Hydra agent config) and prints, at each evaluation, the wall time,
the steps used and the success rate on ``train`` (and on the shifted
distribution, where the goal misgeneralization shows). Targets: CoinRun
>=95% coin success on train within 120 s, Maze >=90% within 300 s, on 2 cores.

    python benchmarks/train_capability.py [--env coinrun|maze|both] [--seed 1]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from hydra import compose, initialize_config_dir

from agents.training import train
from evaluation.periodic import make_evaluator
from experiments.common import train_config

CONFIGS = str(Path(__file__).resolve().parents[1] / "configs")
TARGETS = {"coinrun": (0.95, 120.0, 400_000), "maze": (0.90, 300.0, 500_000)}


def measure(env: str, seed: int, eval_every: int) -> str:
    target, seconds, budget = TARGETS[env]
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        cfg = compose("train", overrides=[f"env={env}", f"seed={seed}", f"total_timesteps={budget}"])
    config = train_config(cfg)
    config.eval_every = eval_every
    with tempfile.TemporaryDirectory() as run_dir:
        evaluate = make_evaluator(config.env_id, config.env_params, n_episodes=200, seed=seed)
        metrics = train(config, run_dir, evaluate=evaluate, progress_bar=False)
        rows = [line for line in (Path(run_dir) / "eval.jsonl").read_text().splitlines()]
    import json

    rows = [json.loads(r) for r in rows]
    reached = None
    print(f"{env}: seed {seed}, {metrics['steps_per_second_this_session']:.0f} env-steps/s overall")
    for row in rows:
        if row["reward"] != "specified":
            continue
        if row["distribution"] == "train":
            print(
                f"  {row['wall_seconds']:7.1f} s  {row['timesteps']:>8} steps  train success {row['success_rate']:.3f}"
            )
            if reached is None and row["success_rate"] >= target:
                reached = row
    if reached:
        verdict = "met" if reached["wall_seconds"] <= seconds else "NOT met"
        return (
            f"{env}: {target:.0%} train success at {reached['wall_seconds']:.0f} s, "
            f"{reached['timesteps']} steps (target {seconds:.0f} s: {verdict})"
        )
    return f"{env}: {target:.0%} train success NOT reached within {budget} steps"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", choices=["coinrun", "maze", "both"], default="both")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--eval-every", type=int, default=20_000)
    args = parser.parse_args()
    names = ["coinrun", "maze"] if args.env == "both" else [args.env]
    lines = [measure(name, args.seed, args.eval_every) for name in names]
    print("; ".join(lines))


if __name__ == "__main__":
    main()
