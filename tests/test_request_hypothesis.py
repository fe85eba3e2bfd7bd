"""Request validation under any JSON object (hypothesis): ``build_request`` (the path REST, gradio_client and the
CLI take) either builds a valid ``GenerationRequest`` or raises ``RequestError`` naming a field, never another
exception; a request it builds round-trips through JSON unchanged.

The objects mix the declared field names with random keys, and values of every JSON type (nan and the
infinities, integers far past 64 bits, nested lists and objects) with values near each field's own range,
so both the accepting and the refusing paths are reached. Bounded: 300 examples, no deadline."""
import json
import math

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tempo.errors import RequestError
from tempo.fields import LIMITS, limit_arg
from tempo.request import FIELDS, GenerationRequest, build_request

pytestmark = pytest.mark.slow

SCALARS = st.one_of(
    st.none(), st.booleans(),
    st.integers(), st.integers(min_value=-(2**200), max_value=2**200),
    st.integers(min_value=2**1024, max_value=2**1100), st.just(-(10**400)),  # past the largest float
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 1e308]),
    st.text(max_size=20), st.sampled_from(["", " ", "true", "False", "0.5", "1e400", "nan", "inf", "3", "-1"]),
)
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                       max_size=3), max_leaves=6)


def near_range(spec) -> st.SearchStrategy:
    """Values of a field's own kind around its valid range (its edges included), and their string forms."""
    if spec.choices:
        return st.sampled_from(spec.choices) | st.sampled_from([c.upper() for c in spec.choices])
    if spec.type is bool:
        return st.booleans() | st.sampled_from(["true", "false", "TRUE", 0, 1])
    if spec.type is str:
        return st.text(max_size=30)
    lo, hi = spec.bounds()
    lo = -10 if lo is None else lo
    hi = lo + 1000 if hi is None else hi
    if spec.type is int:
        ints = st.integers(min_value=int(lo) - 2, max_value=int(hi) + 2)
        return ints | ints.map(float) | ints.map(str)
    floats = st.floats(min_value=lo - 1, max_value=hi + 1, allow_nan=False)
    return floats | st.sampled_from([lo, hi]) | floats.map(repr) | st.integers(int(lo) - 1, int(hi) + 1)


# 10**5000: past Python's int-to-text limit (no JSON parser hands one over, but build_request is public).
EXTREMES = st.sampled_from([math.nan, math.inf, -math.inf, 2**1030, -(10**400), 10**5000, 2**63, -(2**63) - 1,
                            "1e400", "x" * 10_000, [], {}])
FIELD_VALUES = {name: near_range(spec) | EXTREMES | JSON for name, spec in FIELDS.items() if name != "prompt"}
KNOWN = st.sampled_from(sorted(FIELD_VALUES)).flatmap(lambda name: st.tuples(st.just(name), FIELD_VALUES[name]))
UNKNOWN = st.tuples(st.text(min_size=1, max_size=12).filter(lambda k: k not in FIELDS), JSON)
# An unknown key is refused before any value is looked at, so only one object in five carries one.
BODIES = st.tuples(st.lists(KNOWN, max_size=8), st.lists(UNKNOWN, max_size=1), st.integers(0, 4)).map(
    lambda t: dict(t[0] + (t[1] if t[2] == 0 else [])))
PROMPTS = st.text(max_size=40) | JSON


@pytest.fixture(scope="module")
def typed_settings():
    from tempo.settings.loader import load_settings

    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in __import__("os").environ if n.startswith("TEMPO_")]:
            patch.delenv(name)
        return load_settings()


def limits_of(typed) -> dict[str, int]:
    limits = {}
    for setting in LIMITS:
        section, key = setting.split(".")
        limits[limit_arg(setting)] = int(getattr(getattr(typed, section), key))
    return limits


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(prompt=PROMPTS, body=BODIES)
def test_any_json_object_builds_a_request_or_names_a_field(typed_settings, prompt, body):
    try:
        request = build_request(prompt, typed_settings, **body)
    except RequestError as exc:
        assert exc.field in FIELDS or exc.field in body, (exc.field, body)
        assert str(exc).startswith(f"{exc.field}: "), str(exc)
        assert len(str(exc)) < 2000 or exc.field not in FIELDS, "a refused value is echoed back whole"
        return
    assert isinstance(request, GenerationRequest)
    ints = [getattr(request, name) for name, spec in FIELDS.items() if spec.type is int]
    assert all(-(2**63) <= value < 2**63 for value in ints), "the engine hands integer fields to torch as int64"
    as_json = json.loads(json.dumps(request.to_dict(), allow_nan=False))
    again = GenerationRequest(**as_json).validate(**limits_of(typed_settings))
    assert again == request
    assert json.dumps(again.to_dict()) == json.dumps(request.to_dict())


def test_the_strategies_reach_both_outcomes(typed_settings):
    """The property above means little if every object were refused: count both outcomes over a sample."""
    built, refused = 0, 0

    @settings(max_examples=150, deadline=None, database=None)
    @given(body=st.lists(KNOWN, max_size=3).map(dict))
    def sample(body):
        nonlocal built, refused
        try:
            build_request("the cat", typed_settings, **body)
            built += 1
        except RequestError:
            refused += 1

    sample()
    assert built >= 10 and refused >= 10, (built, refused)
