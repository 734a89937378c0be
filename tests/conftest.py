"""Shared test set-up: Hypothesis profiles."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# 200 examples in CI; HYPOTHESIS_PROFILE=thorough for a long search.
settings.register_profile("ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "thorough", max_examples=5_000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
