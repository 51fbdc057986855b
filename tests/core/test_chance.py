"""When a classifier counts as at chance (nnprobe.core.chance): a tenth of the way from 1/K to 1."""

from __future__ import annotations

import pytest

from nnprobe.core.chance import at_chance, chance_threshold


@pytest.mark.parametrize("classes, threshold", [(2, 0.55), (3, 0.4), (10, 0.19)])
def test_the_threshold_is_a_tenth_of_the_way_from_chance_to_perfect(classes, threshold):
    assert chance_threshold(classes) == pytest.approx(threshold)


def test_a_network_below_the_threshold_is_at_chance():
    assert at_chance(0.18, 10) and not at_chance(0.19, 10) and not at_chance(0.9, 10)
    assert at_chance(0.5, 2) is True


def test_fewer_than_two_classes_is_an_error():
    with pytest.raises(ValueError, match="at least 2 classes, got 1"):
        chance_threshold(1)
