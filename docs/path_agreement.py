"""The exact and the sampled path on the same agents: per env, both majorities, per-seed agreement, wall times.

    python docs/path_agreement.py <exact report folder> <sampled report folder> [more sampled folders...]

Each folder is an evaluate or suite report (its ``results.json``) judging the
same agents, one with ``judge_path=exact`` and one with
``judge_path=sampled``. A seed agrees when both paths give it the same
verdict and, for goal misgeneralization, the same goal. Wall times are the
judgements' ``judge_seconds`` summed over seeds (reference training excluded).
The last line is the overall per-seed agreement.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path


def load(folder: str) -> dict:
    return json.loads((Path(folder) / "results.json").read_text())


def outcome(verdict: str, goal: str | None) -> str:
    return (
        f"GM → `{goal}`" if verdict == "goal_misgeneralization" else verdict.replace("_misgeneralization", "")
    )


def table(exact: dict, sampled: dict) -> tuple[str, int, int]:
    per_seed: dict[tuple, dict[str, dict]] = defaultdict(dict)
    for path, results in (("exact", exact), ("sampled", sampled)):
        for j in results["judgements"]:
            per_seed[(j["env_id"], j["distribution"], j["seed"])][path] = j
    majority = {
        (a["env_id"], a["distribution"], path): outcome(a["verdict"], a.get("goal"))
        + ("" if not a["tied"] else " (tie)")
        for path, results in (("exact", exact), ("sampled", sampled))
        for a in results["aggregates"]
    }
    rows = defaultdict(lambda: {"agree": 0, "n": 0, "exact_s": 0.0, "sampled_s": 0.0, "differ": []})
    for (env, d, seed), pair in sorted(per_seed.items()):
        if len(pair) < 2:
            continue
        row = rows[(env, d)]
        e, s = pair["exact"], pair["sampled"]
        same = e["verdict"] == s["verdict"] and (
            e["verdict"] != "goal_misgeneralization" or e["goal"] == s["goal"]
        )
        row["agree"] += same
        row["n"] += 1
        row["exact_s"] += e.get("judge_seconds") or 0.0
        row["sampled_s"] += s.get("judge_seconds") or 0.0
        if not same:
            row["differ"].append(
                f"{seed}: {outcome(e['verdict'], e['goal'])} / {outcome(s['verdict'], s['goal'])}"
            )
    lines = [
        "| env | distribution | exact (majority) | sampled (majority) | seeds agreeing | differ (seed: exact / sampled) "
        "| exact s | sampled s |",
        "|" + "---|" * 8,
    ]
    agree = total = 0
    for (env, d), row in rows.items():
        agree, total = agree + row["agree"], total + row["n"]
        lines.append(
            f"| {env} | {d} | {majority.get((env, d, 'exact'), '–')} | {majority.get((env, d, 'sampled'), '–')} "
            f"| {row['agree']}/{row['n']} | {'; '.join(row['differ']) or '–'} "
            f"| {row['exact_s']:.0f} | {row['sampled_s']:.0f} |"
        )
    return "\n".join(lines), agree, total


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    exact = load(sys.argv[1])
    for folder in sys.argv[2:]:
        text, agree, total = table(exact, load(folder))
        print(f"{folder}:\n\n{text}\n")
    print(f"seeds agreeing: {agree}/{total} ({100 * agree / max(total, 1):.0f}%)")


if __name__ == "__main__":
    main()
