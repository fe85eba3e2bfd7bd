"""Invariant 6: schedules start at start, end at final; ReLU is flat before its point; Bezier(1/3, 2/3) is linear."""
import pytest

from tempo.engine.schedules import bezier, progress, relu, threshold_at


@pytest.mark.parametrize("kind", ["constant", "bezier", "relu"])
def test_start_and_final(kind):
    assert threshold_at(kind, 0, 50, 0.1, 0.9) == pytest.approx(0.1)
    expected_final = 0.1 if kind == "constant" else 0.9
    assert threshold_at(kind, 49, 50, 0.1, 0.9) == pytest.approx(expected_final)


def test_relu_flat_before_activation_then_linear():
    values = [threshold_at("relu", s, 11, 0.2, 1.0, activation_point=0.5) for s in range(11)]
    assert values[:6] == [pytest.approx(0.2)] * 6  # t = 0.0 .. 0.5
    assert values[8] == pytest.approx(0.2 + 0.8 * (0.8 - 0.5) / 0.5)
    assert values[10] == pytest.approx(1.0)


def test_bezier_with_thirds_is_linear():
    for i in range(11):
        t = i / 10
        assert bezier(t, 1 / 3, 2 / 3) == pytest.approx(t)


def test_bezier_by_hand():
    t, p1, p2 = 0.25, 0.2, 0.8
    assert bezier(t, p1, p2) == pytest.approx(3 * 0.75**2 * 0.25 * 0.2 + 3 * 0.75 * 0.25**2 * 0.8 + 0.25**3)
    assert relu(0.3, 0.5) == 0.0


def test_progress_clips_and_handles_one_step():
    assert progress(5, 1) == 1.0
    assert progress(0, 1) == 0.0
    assert progress(3, 5) == pytest.approx(0.75)
