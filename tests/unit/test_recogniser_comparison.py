"""The matched-pairs comparison of two recognisers on the same clips (tests/support/asr_samples)."""

import math

import pytest

from tests.support.asr_samples import WORSE_AT_5_PERCENT, Scored, worse_by


def _scored(errors: list[int]) -> Scored:
    return Scored(errors, words=7 * len(errors), wrong=[])


def test_slips_either_way_are_not_a_loss() -> None:
    # The clean set on AMD EPYC: 6 word errors more in all, worse on 5 clips and better on 3.
    old = _scored([0] * 52 + [1, 1, 1, 0, 0, 0, 0, 0])
    new = _scored([0] * 52 + [0, 0, 0, 3, 1, 2, 1, 2])
    assert worse_by(new, old) == pytest.approx(1.29, abs=0.01)  # what the integration test printed


def test_a_few_clips_worse_and_none_better_is_a_loss() -> None:
    old = _scored([0] * 60)
    new = _scored([0] * 57 + [1, 1, 1])
    assert worse_by(new, old) > WORSE_AT_5_PERCENT
    assert worse_by(old, new) < 0


def test_the_same_errors_are_no_difference_and_one_difference_everywhere_is_certain() -> None:
    assert worse_by(_scored([1, 0, 2]), _scored([1, 0, 2])) == 0.0
    assert worse_by(_scored([2, 1, 3]), _scored([1, 0, 2])) == math.inf
