"""Forks' pure parts (TEMPO_SPEC section 12): outcomes, total variation, the fork score by hand, and the
parameters' validation naming the field."""
import re

import pytest

from tempo.engine.forks import distribution, fork_score, outcome, total_variation
from tempo.errors import RequestError
from tempo.forks_request import FORKS_FIELDS, MAX_FORK_HORIZON, ForksRequest, build_forks


def test_outcome_is_the_first_group_else_the_match_else_the_text():
    assert outcome(" the answer is 42 .", re.compile(r"answer is (\d+)")) == "42"
    assert outcome(" the answer is 42 .", re.compile(r"\d+")) == "42"  # no group: the whole match
    assert outcome(" no number here", re.compile(r"answer is (\d+)")) == " no number here"  # unmatched: the text
    assert outcome(" x", None) == " x"
    assert outcome(" b", re.compile(r"(a)?b")) == " b"  # the first group took no part: unmatched
    assert outcome(" cat dog", re.compile(r"(dog|cat)")) == "cat"  # re.search: the first place it matches


def test_total_variation_by_hand():
    assert total_variation({"a": 1.0}, {"a": 1.0}) == 0.0
    assert total_variation({"a": 1.0}, {"b": 1.0}) == 1.0
    assert total_variation({"a": 0.5, "b": 0.5}, {"a": 0.25, "c": 0.75}) == pytest.approx(0.75)
    assert distribution({"a": 3, "b": 1}) == {"a": 0.75, "b": 0.25}


def test_fork_score_by_hand():
    top, half, other = {"A": 8}, {"A": 4, "B": 4}, {"B": 8}
    # weights 0.3 / 0.5 and 0.2 / 0.5 over the others; TV 0.5 and 1
    assert fork_score([0.5, 0.3, 0.2], [top, half, other]) == pytest.approx(0.6 * 0.5 + 0.4 * 1.0)
    assert fork_score([0.6, 0.4], [top, {"A": 8}]) == 0.0
    assert fork_score([0.6, 0.4], [top, other]) == 1.0
    assert fork_score([1.0], [top]) == 0.0
    # greedy rollouts: one outcome each, so the score is the weight of the others that differ
    assert fork_score([0.4, 0.3, 0.3], [{"x": 8}, {"y": 8}, {"x": 8}]) == pytest.approx(0.5)


def test_parameters_default_and_validate_naming_the_field():
    options = build_forks()
    assert (options.samples, options.horizon, options.fork_threshold, options.rollout_temperature,
            options.outcome_pattern) == (8, 16, 0.5, None, "")
    cases = [({"samples": 0}, "samples"), ({"horizon": MAX_FORK_HORIZON + 1}, "horizon"),
             ({"outcome_pattern": "(unclosed"}, "outcome_pattern"), ({"fork_threshold": 1.5}, "fork_threshold"),
             ({"rollout_temperature": -1.0}, "rollout_temperature"), ({"samples": 2.5}, "samples"),
             ({"nonsense": 1}, "nonsense")]
    for values, field in cases:
        with pytest.raises(RequestError) as err:
            build_forks(**values)
        assert err.value.field == field and str(err.value).startswith(f"{field}: ")
    assert "[1, 64]" in str(pytest.raises(RequestError, build_forks, horizon=65).value)


def test_the_horizon_limit_is_a_setting():
    from tempo.settings.schema import Settings

    settings = Settings.defaults().replace({"generation.max_fork_horizon": 4})
    assert build_forks(settings, horizon=4).horizon == 4
    with pytest.raises(RequestError, match=r"horizon: must be an integer in \[1, 4\]"):
        build_forks(settings, horizon=5)
    assert Settings.defaults().generation.max_fork_horizon == MAX_FORK_HORIZON


def test_declared_once():
    assert list(FORKS_FIELDS) == ["samples", "horizon", "rollout_temperature", "outcome_pattern", "fork_threshold"]
    assert ForksRequest().to_dict() == {name: spec.default for name, spec in FORKS_FIELDS.items()}


def test_the_parameter_table_of_the_docs_is_the_declaration():
    from pathlib import Path

    from tempo.docs import request_table

    page = (Path(__file__).resolve().parent.parent / "docs" / "layer_view_and_forks.md").read_text(encoding="utf-8")
    assert request_table(FORKS_FIELDS) in page
