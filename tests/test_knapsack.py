"""The 0/1 knapsack behind keyshot summaries: optimal against brute force, and strict about its input."""

import itertools

import numpy as np
import pytest

from grounding_agent.utils.knapsack import knapsack


def brute(values, weights, capacity):
    best = 0.0
    for r in range(len(values) + 1):
        for combo in itertools.combinations(range(len(values)), r):
            if sum(weights[i] for i in combo) <= capacity:
                best = max(best, sum(values[i] for i in combo))
    return best


@pytest.mark.parametrize("seed", range(20))
def test_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 9))
    values = rng.uniform(-0.2, 1.0, n).tolist()
    weights = rng.integers(0, 12, n).tolist()
    capacity = int(rng.integers(0, 30))
    chosen = knapsack(values, weights, capacity)
    assert sum(weights[i] for i in chosen) <= capacity
    assert sum(values[i] for i in chosen) == pytest.approx(brute(values, weights, capacity))
    assert chosen == sorted(set(chosen))


def test_bad_input_is_a_value_error():
    with pytest.raises(ValueError, match="2 values but 1 weights"):
        knapsack([1, 2], [1], 3)
    with pytest.raises(ValueError, match=">= 0"):
        knapsack([1], [-1], 3)
    with pytest.raises(ValueError, match="finite"):
        knapsack([float("nan")], [1], 3)
