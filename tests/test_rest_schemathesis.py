"""The REST server under generated requests (schemathesis over its own OpenAPI schema, ``/openapi.json``).

Every route the schema lists (``/generate``, ``/health`` and whatever routes land later) gets a bounded number
of generated cases, schema-valid and schema-violating, sent to a real server on loopback with a tiny model.
Checks: no 5xx (schemathesis' ``not_a_server_error``); every 4xx says which field was wrong (a ``field`` key, or a
``detail`` starting ``<name>:``); a body that violates the schema is refused (``negative_data_rejection``); and
the server still answers ``GET /health`` afterwards. ``generation.max_tokens_limit`` (and the MCTS bounds) are
small so that an accepted request stays fast; the rate limit is off (the cases come faster than a user's)."""
import json
import math
import re

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings, strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import negative_data_rejection

from tempo.engine.runner import Tempo
from tempo.models.loading import load_model
from tempo.fields import LIMITS as BOUNDING_SETTINGS, limit_arg
from tempo.request import FIELDS
from tempo.serve.rest import Server, create_app
from tempo.settings.loader import load_settings

pytestmark = [pytest.mark.server, pytest.mark.slow]

SERVED = {"generation.max_tokens_limit": 8, "generation.max_tokens": 4, "mcts.max_simulations": 4,
          "mcts.simulations": 2, "mcts.max_depth": 3, "mcts.depth": 2, "api.rate_limit": 0, "api.request_timeout": 60}
BOUNDS = {limit_arg(setting): SERVED[setting] for setting in BOUNDING_SETTINGS}
"""The served bounds of the fields that a setting bounds, as ``FieldSpec.bounds`` takes them."""
NAMED = re.compile(r"^([A-Za-z_][A-Za-z0-9_.]*): ")
"""A detail that names what was wrong: ``top_k: must be ...``, ``rate_limit: at most ...``."""


@pytest.fixture(scope="module")
def served(tiny_model_dir):
    settings = load_settings(overrides=SERVED)
    engine = Tempo(load_model(str(tiny_model_dir["llama"])), settings)
    server = Server(create_app(engine, settings), host="127.0.0.1").start()
    yield server
    server.close()


# Values no JSON-schema generator draws for an unbounded number: past float and int64 range, non-finite (sent as
# the NaN / Infinity literals Python's JSON reader accepts), and of the wrong JSON type.
EXTREMES = st.sampled_from([math.inf, -math.inf, math.nan, 10**26, -(10**26), 2**63, 2**64, 10**400, -0.0,
                            5e-324, "1e999", "NaN", [], {}, [[1]], {"a": {"b": None}}, True])


def before_generate_body(context, strategy):
    """Sometimes lay one or two request fields with an extreme value over the generated body."""
    fields = st.sampled_from(sorted(set(FIELDS) - {"prompt"}))
    extra = st.dictionaries(fields, EXTREMES, min_size=1, max_size=2)
    # The generated body wins a clash, so a schema-violating body keeps what made it so (negative_data_rejection).
    laid = st.tuples(strategy, extra).map(lambda t: {**t[1], **t[0]} if isinstance(t[0], dict) else t[0])
    return strategy | laid


@pytest.fixture(scope="module")
def declared_fields(served) -> set[str]:
    """Every property of every request body the server's own OpenAPI schema declares (the request's fields,
    /branch's ``step`` and ``token_id``, /forks' ``samples``, /model's ``model_id``, the OpenAI fields ...)."""
    found: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            found.update(node.get("properties", {}) if isinstance(node.get("properties"), dict) else ())
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(httpx.get(served.url + "openapi.json", timeout=30).json())
    return found


@pytest.fixture(scope="module")
def api_schema(served):
    loaded = schemathesis.openapi.from_url(served.url + "openapi.json")
    loaded.hook(before_generate_body)
    return loaded


schema = schemathesis.pytest.from_fixture("api_schema")


def names_a_field(body, sent, declared: set[str] = frozenset()) -> bool:
    """A 4xx body that says which field (or which limit or setting) was wrong: TEMPO's ``{"detail", "field"}``,
    or under ``/v1`` OpenAI's ``{"error": {"message", "param"}}``. ``declared``: the bodies' declared fields."""
    if not isinstance(body, dict):
        return False
    known = set(FIELDS) | {"body"} | set(declared) | (set(sent) if isinstance(sent, dict) else set())
    error = body.get("error")
    if isinstance(error, dict):  # OpenAI's shape: param names the field, and the message starts with it
        param, message = error.get("param"), str(error.get("message", ""))
        if isinstance(param, str) and param:
            return param in known and message.startswith(f"{param}:")
        return NAMED.match(message) is not None
    field = body.get("field")
    if isinstance(field, str) and field:
        return field in known and str(body.get("detail", "")).startswith(f"{field}:")
    return NAMED.match(str(body.get("detail", ""))) is not None


def send(case, base_url: str):
    """``case.call``; a body holding nan or an infinity (which ``requests`` will not serialize) goes as the JSON
    text Python writes for it (``NaN``, ``Infinity``), which servers' JSON readers meet in the wild."""
    if isinstance(case.body, dict) and not_finite(case.body):
        return requests.request(case.method, base_url + case.formatted_path, timeout=60,
                                data=json.dumps(case.body).encode(), headers={"content-type": "application/json"})
    return case.call(base_url=base_url, timeout=60)


def not_finite(value) -> bool:
    if isinstance(value, dict):
        return any(not_finite(v) for v in value.values())
    if isinstance(value, list):
        return any(not_finite(v) for v in value)
    return isinstance(value, float) and not math.isfinite(value)


@schema.parametrize()
@settings(max_examples=40, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_generated_requests_get_no_server_error_and_every_refusal_names_a_field(case, served, declared_fields):
    response = send(case, served.url.rstrip("/"))
    case.validate_response(response, checks=[not_a_server_error, negative_data_rejection])
    if case.method.upper() != case.operation.method.upper():  # the coverage phase tries other methods: no field
        assert response.status_code in (404, 405), f"{case.method} {case.path} -> {response.status_code}"
        return  # 404, not 405: the Gradio app mounted at / answers the methods the REST routes do not take
    if 400 <= response.status_code < 500:
        try:
            body = response.json()
        except ValueError:
            body = response.text
        assert names_a_field(body, case.body, declared_fields), \
            f"{case.method} {case.formatted_path} -> {response.status_code} {response.text[:300]} (sent {case.body!r:.300})"


def valid_value(spec) -> st.SearchStrategy:
    """Values inside a field's declared range (as the served settings bound it): requests that generate."""
    if spec.choices:
        return st.sampled_from(spec.choices)
    if spec.type is bool:
        return st.booleans()
    if spec.type is str:
        return st.text(max_size=20)
    if spec.type is tuple:  # forced_sets: given sets of token ids (the tiny models' vocabulary has 47 tokens)
        return st.lists(st.lists(st.integers(0, 46), min_size=1, max_size=3, unique=True), max_size=3)
    lo, hi = spec.bounds(**BOUNDS)
    hi = min(hi, 300) if hi is not None else 300  # top_k, min_steps: no bound but int64; a model's vocabulary
    if spec.type is int:
        return st.integers(int(lo), int(hi))
    return st.floats(lo, hi, exclude_min=bool(spec.lo_excluded))


VALID_BODIES = st.fixed_dictionaries(
    {"prompt": st.sampled_from(["the cat sat on the", "a big red dog", "bird"]) | st.text(min_size=1, max_size=20)},
    optional={name: valid_value(spec) for name, spec in FIELDS.items() if name != "prompt"})


def test_requests_within_the_declared_ranges_generate_or_name_a_field(served):
    """The schema's types say nothing of ranges, so few generated bodies above pass validation: these do, and
    reach the engine with every mode and option mixed (MCTS, pruning, schedules, sampling)."""
    statuses = []

    @settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(body=VALID_BODIES)
    def post(body):
        answer = httpx.post(served.url + "generate", json=body, timeout=60)
        statuses.append(answer.status_code)
        assert answer.status_code in (200, 422), f"{answer.status_code} {answer.text[:300]} (sent {body})"
        if answer.status_code == 422:
            assert names_a_field(answer.json(), body), answer.text[:300]

    post()
    assert statuses.count(200) >= len(statuses) // 4, statuses


def test_the_server_is_healthy_after_the_generated_requests(served):
    health = httpx.get(served.url + "health", timeout=10)
    assert health.status_code == 200 and health.json()["model_loaded"] is True
    answer = httpx.post(served.url + "generate", json={"prompt": "the cat sat on the", "max_tokens": 3}, timeout=60)
    assert answer.status_code == 200 and answer.json()["stop_reason"] in ("max_tokens", "eos")
