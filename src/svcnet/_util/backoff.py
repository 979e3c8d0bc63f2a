"""Exponential back-off with jitter, as client-go's wait.Backoff."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """``next()`` returns the delay before the next attempt: ``initial`` doubling up to
    ``maximum``, each with up to ``jitter`` (fraction) added; ``reset()`` after a success."""

    initial: float = 0.1
    maximum: float = 10.0
    factor: float = 2.0
    jitter: float = 0.1
    _current: float = field(default=0.0, init=False)
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def next(self) -> float:
        self._current = self.initial if self._current == 0.0 else min(
            self.maximum, self._current * self.factor)
        return self._current * (1.0 + self.jitter * self.rng.random())

    def reset(self) -> None:
        self._current = 0.0
