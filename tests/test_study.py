"""``experiments.study``: per-point verdict distributions over seeds and the outlier seeds; the app on a
tiny budget writes every file and names a planted outlier; bad input is named before any training."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from agents.policies import PlannerPolicy
from evaluation.study import (
    check_study,
    find_outliers,
    parse_replacements,
    planted_policy,
    point_summary,
    study_markdown,
    summarise,
)

ROOT = Path(__file__).resolve().parents[1]
COIN = "GMSuite/CoinRun-v0"
TINY = [
    "total_timesteps=1024",
    "n_episodes=10",
    "train.eval_episodes=4",
    "agent.num_envs=8",
    "agent.hyperparams.n_steps=64",
    "agent.hyperparams.batch_size=128",
    "agent.hyperparams.n_epochs=1",
]


def row(seed, verdict, goal=None, value=0.0, s_int=0.0, **extra):
    return {
        "param": "coin_random_prob",
        "value": value,
        "distribution": "test",
        "seed": seed,
        "verdict": verdict,
        "goal": goal,
        "inferred_goal": goal or "no_goal",
        "S_spec_train": 1.0,
        "S_spec": s_int,
        "S_int": s_int,
        "success_intended": s_int,
        "posterior_reach_right_end": 1.0 if goal == "reach_right_end" else 0.0,
        "planted": None,
        "run_dir": f"runs/x-seed{seed}",
        "video": None,
        **extra,
    }


def test_a_seed_with_another_verdict_is_an_outlier_with_its_run_folder():
    rows = [
        row(1, "robust", s_int=1.0),
        row(2, "robust", s_int=0.9),
        row(3, "goal_misgeneralization", "reach_right_end"),
    ]
    found, outliers = find_outliers(rows)
    assert found["majority_verdict"] == "robust" and found["tied_verdicts"] == []
    (o,) = outliers
    assert (o["seed"], o["verdict"], o["run_dir"]) == (3, "goal_misgeneralization", "runs/x-seed3")
    assert o["why"] == "verdict goal_misgeneralization (majority robust)"


def test_within_a_gm_majority_a_seed_with_another_goal_is_an_outlier():
    gm = "goal_misgeneralization"
    rows = [row(1, gm, "reach_right_end"), row(2, gm, "reach_right_end"), row(3, gm, "other_goal")]
    found, outliers = find_outliers(rows)
    assert (found["majority_verdict"], found["majority_gm_goal"]) == (gm, "reach_right_end")
    assert [(o["seed"], o["why"]) for o in outliers] == [
        (3, "goal other_goal (majority goal reach_right_end)")
    ]


def test_a_tie_has_no_majority_and_names_no_outlier():
    found, outliers = find_outliers([row(1, "robust"), row(2, "untrained")])
    assert found["majority_verdict"] is None and found["tied_verdicts"] == ["untrained", "robust"]
    assert outliers == []
    gm = "goal_misgeneralization"
    found, outliers = find_outliers([row(1, gm, "a"), row(2, gm, "b")])
    assert found["majority_gm_goal"] is None and found["tied_gm_goals"] == ["a", "b"] and outliers == []


def test_point_summary_gives_fractions_and_intervals_over_seeds():
    gm = "goal_misgeneralization"
    rows = [row(s, gm, "reach_right_end", s_int=0.1 * s) for s in range(1, 6)] + [row(6, "robust", s_int=1.0)]
    p = point_summary(rows, reps=200)
    assert p["n_seeds"] == 6 and p["seeds"] == [1, 2, 3, 4, 5, 6]
    assert p["verdict_fractions"][gm] == pytest.approx(5 / 6)
    assert (
        p["verdict_fractions"]["robust"] == pytest.approx(1 / 6) and p["verdict_fractions"]["untrained"] == 0
    )
    assert p["gm_goal_fractions"] == {"reach_right_end": 1.0}
    assert p["inferred_goal_fractions"] == {
        "no_goal": pytest.approx(1 / 6),
        "reach_right_end": pytest.approx(5 / 6),
    }
    s_int = p["scores"]["S_int"]
    assert s_int["n"] == 6 and s_int["kind"] == "ci"
    assert s_int["estimate"] == pytest.approx((0.2 + 0.3 + 0.4 + 0.5) / 4)  # IQM: the middle half of 6
    assert s_int["low"] <= s_int["estimate"] <= s_int["high"]
    assert p["scores"]["posterior_reach_right_end"]["estimate"] == pytest.approx(1.0)
    assert [o["seed"] for o in p["outliers"]] == [6]


def test_points_follow_the_value_list_and_compare_numbers_by_value():
    rows = [row(1, "robust", value=0.5), row(1, "untrained", value=0), row(2, "untrained", value=0.0)]
    points = summarise(rows, [0.0, 0.5], reps=50)
    assert [(p["value"], p["n_seeds"]) for p in points] == [(0, 2), (0.5, 1)]


def test_markdown_names_outliers_their_folders_and_planted_seeds():
    rows = [
        row(1, "untrained"),
        row(2, "untrained"),
        row(3, "goal_misgeneralization", "reach_right_end", planted="planner:reach_right_end", run_dir=None),
    ]
    points = summarise(rows, [0.0], reps=50)
    study = {
        "param": "coin_random_prob",
        "env_id": COIN,
        "n_seeds": 3,
        "proxies": ["reach_right_end"],
        "points": points,
    }
    text = study_markdown(study)
    assert "coin_random_prob=0.0, seed 3 (test): verdict goal_misgeneralization (majority untrained)" in text
    assert "`planted: planner:reach_right_end`" in text
    assert "## Planted seeds" in text and "seed 3: `planner:reach_right_end`" in text
    assert "untrained 67%, GM 33%" in text and "min–max over 3 seeds" in text


def test_check_study_names_each_bad_input():
    check_study(COIN, "coin_random_prob", [0.0, 0.2], 2)
    for args, needle in [
        (("hazard_prob", [0.0], 2), "'hazard_prob' is not a training-distribution parameter"),
        (("coin_random_prob", [], 2), "value list of coin_random_prob is empty"),
        (("coin_random_prob", [0.0], 0), "n_seeds must be a positive integer, got 0"),
        (("coin_random_prob", [0.0], -3), "got -3"),
        (("coin_random_prob", [0.0, 1.5], 2), "coin_random_prob=1.5 is not a valid training value"),
        (("coin_random_prob", [0, 0.0], 2), "given twice"),
    ]:
        with pytest.raises(ValueError, match=needle):
            check_study(COIN, *args)
    with pytest.raises(ValueError, match="unknown environment"):
        check_study("GMSuite/Nope-v0", "p", [0.0], 1)


def test_replacements_are_checked_and_keyed_by_point_and_seed():
    assert parse_replacements({"0": {"3": "planner:reach_right_end"}}, [0.0, 0.2], [1, 2, 3], COIN) == {
        (0, 3): "planner:reach_right_end"
    }
    assert isinstance(planted_policy("planner:specified", ("specified",)), PlannerPolicy)
    for replace, needle in [
        ({0.3: {1: "planner:specified"}}, "0.3 is not one of the values"),
        ({0.0: {9: "planner:specified"}}, "seed 9 is not one of the seeds"),
        ({0.0: {1: "planner:flag"}}, "'flag' is not a declared reward"),
        ({0.0: {1: "nonsense"}}, "expected one of"),
    ]:
        with pytest.raises(ValueError, match=needle):
            parse_replacements(replace, [0.0, 0.2], [1, 2, 3], COIN)


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("study.param=hazard_prob", "'hazard_prob' is not a training-distribution parameter"),
        ("study.values=[]", "value list of coin_random_prob is empty"),
        ("study.n_seeds=0", "n_seeds must be a positive integer"),
        ("+study.env_params.colour=3", "env_params.colour: coinrun has no such parameter"),
        ("+study.env_params.coin_random_prob=0.5", "env_params.coin_random_prob is the study's parameter"),
        ("+study.env_params.width=2", "not a valid training value"),
        ("launcher.name=pbs", "launcher.name must be 'local' or 'slurm', got 'pbs'"),
        ("launcher=slurm", "no Slurm here (sbatch not found)"),  # PATH below holds no sbatch
    ],
)
def test_bad_study_input_exits_before_any_run_folder(tmp_path, override, needle):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments.study",
            override,
            f"runs_dir={tmp_path / 'runs'}",
            f"out_dir={tmp_path / 'out'}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "WANDB_MODE": "disabled", "PATH": str(Path(sys.executable).parent)},
    )
    assert result.returncode == 2 and needle in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    """Shared by the app tests: the planted-outlier study reuses the tiny study's runs."""
    return tmp_path_factory.mktemp("study_runs")


def study(overrides):
    from experiments import study as study_app

    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose("study", overrides=["study=coin", *TINY, *overrides])
    return study_app.run(cfg, command="python -m experiments.study (test)")


def test_tiny_study_writes_every_file(tmp_path, runs_dir):
    out = tmp_path / "out"
    result = study(
        [
            "study.values=[0.0,0.5]",
            "study.n_seeds=2",
            f"runs_dir={runs_dir}",
            f"out_dir={out}",
            "logger=wandb",
            "logger.mode=offline",
        ]
    )
    for name in ("study.csv", "study.json", "study.png", "study.md"):
        assert (out / name).stat().st_size > 0, name
    assert list((out / "wandb").glob("offline-run-*/run-*.wandb"))
    rows = list(csv.DictReader((out / "study.csv").open()))
    assert sorted((float(r["value"]), int(r["seed"])) for r in rows) == [
        (0.0, 1),
        (0.0, 2),
        (0.5, 1),
        (0.5, 2),
    ]
    assert all(Path(r["run_dir"]).is_dir() and r["planted"] == "" for r in rows)
    saved = json.loads((out / "study.json").read_text())
    assert saved["param"] == "coin_random_prob" and saved["seeds"] == [1, 2] and saved["values"] == [0.0, 0.5]
    assert (
        saved["command"].endswith("(test)") and saved["date"].startswith("20") and saved["wall_seconds"] > 0
    )
    assert "git_commit" in saved and saved["planted"] == []
    assert [p["value"] for p in saved["points"]] == [0.0, 0.5]
    for p in saved["points"]:
        assert p["n_seeds"] == 2 and math.isclose(sum(p["verdict_fractions"].values()), 1.0)
        assert {"S_spec_train", "S_spec", "S_int", "posterior_reach_right_end"} <= set(p["scores"])
        assert p["scores"]["S_int"]["n"] == 2 and p["scores"]["S_int"]["kind"] == "min-max"
    assert result["study"]["points"] == saved["points"]
    assert len(list(runs_dir.glob("coinrun/coin_random_prob*-seed*/metrics.json"))) == 4


def test_a_planted_planner_of_the_proxy_is_named_as_the_outlier(tmp_path, runs_dir):
    """Seeds 1 and 2 are the tiny (untrained) agents, reused; seed 3 is the exact planner of reach_right_end."""
    out = tmp_path / "out"
    study(
        [
            "study.values=[0.0]",
            "study.n_seeds=3",
            'replace={0.0:{3:"planner:reach_right_end"}}',
            f"runs_dir={runs_dir}",
            f"out_dir={out}",
        ]
    )
    saved = json.loads((out / "study.json").read_text())
    (point,) = saved["points"]
    assert point["majority_verdict"] == "untrained"
    (outlier,) = saved["outliers"]
    assert (outlier["seed"], outlier["verdict"], outlier["goal"]) == (
        3,
        "goal_misgeneralization",
        "reach_right_end",
    )
    assert outlier["planted"] == "planner:reach_right_end" and outlier["run_dir"] is None
    assert saved["planted"] == [{"value": 0.0, "seed": 3, "policy": "planner:reach_right_end"}]
    assert not list(runs_dir.glob("coinrun/*-seed3"))  # a planted seed is not trained
    text = (out / "study.md").read_text()
    assert "seed 3 (test): verdict goal_misgeneralization (majority untrained)" in text
    rows = {int(r["seed"]): r for r in csv.DictReader((out / "study.csv").open())}
    assert rows[3]["planted"] == "planner:reach_right_end" and rows[3]["policy"] == "opt_reach_right_end"
    assert rows[1]["planted"] == "" and rows[1]["run_dir"]


def test_planted_planners_alone_give_a_gm_majority_and_a_robust_outlier():
    """No training: two seeds plan for the proxy (GM on test), one for the specified reward (robust)."""
    from evaluation.study import StudyPoint, judge_study, seed_row
    from evaluation.verdict import Thresholds

    point = StudyPoint(0.0, {"coin_random_prob": 0.0})
    point.planted = {1: "planner:reach_right_end", 2: "planner:reach_right_end", 3: "planner:specified"}
    judged = judge_study(COIN, "ppo", [point], n_jobs=1, progress=None, n_episodes=8, thresholds=Thresholds())
    (p,) = summarise([seed_row("coin_random_prob", point, j) for _, j in judged], [0.0], reps=50)
    assert (p["majority_verdict"], p["majority_gm_goal"]) == ("goal_misgeneralization", "reach_right_end")
    assert p["verdicts"] == {"1": "goal_misgeneralization", "2": "goal_misgeneralization", "3": "robust"}
    assert [(o["seed"], o["why"]) for o in p["outliers"]] == [
        (3, "verdict robust (majority goal_misgeneralization)")
    ]
    assert p["planted"] == {
        "1": "planner:reach_right_end",
        "2": "planner:reach_right_end",
        "3": "planner:specified",
    }


def test_study_env_params_fix_an_env_parameter_for_every_run():
    from experiments.study import study_env_config

    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose("study", overrides=["study=corner"])
    env_cfg = study_env_config(cfg.study)
    assert env_cfg.size == 13 and env_cfg.id == "GMSuite/Maze-v0"  # configs/env/maze.yaml says 9
    assert "size13" in env_cfg.tag


def test_preferred_goal_is_the_goal_reached_most_often_on_the_shifted_levels():
    from evaluation.study import preferred_goal

    assert preferred_goal({"specified": 0.9, "intended": 0.3, "reach_colour": 0.6}) == "reach_colour"
    assert preferred_goal({"specified": 0.5, "intended": 0.5, "reach_colour": 0.2}) == "intended"
    assert preferred_goal({"intended": 0.4, "reach_colour": 0.4}) == "tie: intended / reach_colour"
    assert preferred_goal({"specified": 0.0, "intended": 0.0, "reach_colour": 0.0}) == "none"
