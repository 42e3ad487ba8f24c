"""A synthetic regression data set: y = slope * x + intercept + noise."""

from __future__ import annotations

import random


def make_dataset(n_samples: int, slope: float, intercept: float, noise: float, seed: int):
    """Return (train, test) lists of (x, y) pairs."""
    rng = random.Random(seed)
    points = []
    for _ in range(n_samples):
        x = rng.uniform(-1.0, 1.0)
        points.append((x, slope * x + intercept + rng.gauss(0.0, noise)))
    split = int(0.8 * n_samples)
    return points[:split], points[split:]


def mean_squared_error(weights: list[float], points) -> float:
    w, b = weights
    return sum((w * x + b - y) ** 2 for x, y in points) / len(points)
