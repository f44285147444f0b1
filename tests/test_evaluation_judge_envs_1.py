"""The judge's per-env tests (tests/test_evaluation_judge.py) over the envs it assigns to this file.

The tests, specifications, level bank and judgements are those of test_evaluation_judge.py (imported, so a
worker that runs both files judges each agent once); this file only says which envs they run on here
(``ENVS_ELSEWHERE`` there), so that ``pytest -n 2 --dist loadfile`` can run it beside the others.
"""

from __future__ import annotations

from tests.test_evaluation_judge import (  # noqa: F401  (the per-env tests, collected here too)
    ENVS_ELSEWHERE,
    parametrize_cases,
    test_irl_reward_is_where_its_specified_outcome_puts_it,
    test_optimal_for_a_proxy_gets_its_specified_outcome,
    test_optimal_for_specified_gets_its_specified_outcome,
    test_random_after_the_shift_is_capability_misgeneralization,
    test_random_everywhere_is_untrained,
)

ENVS = ENVS_ELSEWHERE["test_evaluation_judge_envs_1.py"]


def pytest_generate_tests(metafunc):
    parametrize_cases(metafunc, ENVS)
