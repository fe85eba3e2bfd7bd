"""The OpenAI-compatible API (TEMPO_SPEC section 14): the official ``openai`` client against a real server on
loopback, and the mapping's pure functions against hand computations."""
import contextlib
import json
import math

import httpx
import openai
import pytest
import torch

from tempo.request import FIELDS
from tempo.result import Candidate, Step
from tempo.serve import openai_map as om
from tempo.serve.openai_api import ChatBody, CompletionBody
from tempo.settings.loader import load_settings
from helpers import alone, build_tokenizer, record_jobs, same, serving

pytestmark = pytest.mark.usefixtures("clean_tempo_env")

PROMPT = "the cat sat on the"
GREEDY = {"temperature": 0.0, "max_tokens": 12}
MIN = {"min_steps": 12}  # EOS suppressed, as HF generate's min_new_tokens: both run all 12 steps
WIDE = {"selection_threshold": 0.0, "max_parallel_tokens": 4, "top_p": 1.0}  # every set holds 4 candidates


# --- the mapping, by hand --------------------------------------------------------------------------------------

def test_cut_at_stop_keeps_the_tokens_before_the_stop_and_holds_back_a_possible_start():
    texts = [" a", " cat", " sat", " on"]
    assert om.cut_at_stop(texts, [" sat"], final=True) == (2, " cat", True)
    assert om.cut_at_stop(texts, ["at o"], final=True) == (3, " s", True)  # cut inside the third token
    assert om.cut_at_stop(texts, [" a"], final=True) == (0, None, True)  # the very first characters
    assert om.cut_at_stop(texts, [" onward"], final=False) == (3, None, False)  # " on" may start " onward"
    assert om.cut_at_stop(texts, [" onward"], final=True) == (4, None, False)  # ... but the text has ended
    assert om.cut_at_stop(texts, [], final=False) == (4, None, False)


def test_logprobs_are_the_clean_token_and_the_sets_best_candidates():
    steps = [Step(0, 5, 0.1, candidates=[Candidate(7, " b", 0.3), Candidate(6, " a", 0.6, status="pruned"),
                                         Candidate(8, " c", 0.1)]),
             Step(1, 6, 0.1, candidates=[Candidate(9, " d", 0.5, status="removed")]),  # nothing kept: left out
             Step(2, 7, 0.1, candidates=[Candidate(3, " e", 1.0)])]
    tokens = om.clean_tokens(steps)
    legacy = om.completion_logprobs(tokens, top=2)
    assert legacy["tokens"] == [" b", " e"]
    assert legacy["token_logprobs"] == [math.log(0.3), 0.0]
    assert legacy["top_logprobs"] == [{" a": math.log(0.6), " b": math.log(0.3)}, {" e": 0.0}]
    assert legacy["text_offset"] == [0, 2]
    chat = om.chat_logprobs(tokens, top=1)["content"]
    assert chat[0]["token"] == " b" and chat[0]["bytes"] == [32, 98]
    assert [t["token"] for t in chat[0]["top_logprobs"]] == [" a"]


def test_chat_prompt_has_one_bos_and_a_tokenizer_without_a_template_is_refused():
    tokenizer = build_tokenizer()
    messages = [{"role": "system", "content": "the sky"}, {"role": "user", "content": [{"type": "text", "text": "a cat"}]}]
    text = om.chat_prompt(tokenizer, "m", messages)
    reference = tokenizer.apply_chat_template([{"role": "system", "content": "the sky"},
                                               {"role": "user", "content": "a cat"}],
                                              tokenize=True, add_generation_prompt=True)
    reference = reference["input_ids"] if hasattr(reference, "keys") else reference
    assert tokenizer(text)["input_ids"] == list(reference)
    with pytest.raises(om.RequestError) as refused:
        om.chat_prompt(build_tokenizer(chat_template=False), "tiny", messages)
    assert refused.value.field == "messages" and "chat template" in str(refused.value) and "tiny" in str(refused.value)


def test_the_bodies_take_every_request_field_from_its_declaration():
    for body in (CompletionBody, ChatBody):
        names = set(body.model_fields)
        assert {n for n in FIELDS if n != "prompt"} <= names
        assert {"model", "stream", "stop", "n", "logprobs"} <= names


# --- the official client against a real server -----------------------------------------------------------------

@pytest.fixture(scope="module")
def served(tiny_model_dir):
    settings = load_settings(overrides={"app.stream_interval": 0.0})
    with serving(tiny_model_dir["llama"], settings) as served:
        yield served


@pytest.fixture(scope="module")
def client(served):
    with openai.OpenAI(base_url=served[1].url + "v1", api_key="unused", max_retries=0) as client:
        yield client


def model_id(served) -> str:
    return served[0].loaded.model_id


def clean_ids(tempo: dict) -> list[int]:
    return [next(c["token_id"] for c in s["candidates"] if c["status"] == "kept") for s in tempo["steps"]]


@pytest.mark.server
@pytest.mark.slow
def test_a_completion_at_temperature_0_is_hugging_faces_greedy_text(served, client):
    engine, _ = served
    answer = client.completions.create(model=model_id(served), prompt=PROMPT, extra_body=MIN, **GREEDY)
    ids = engine.loaded.tokenizer(PROMPT)["input_ids"]
    with torch.no_grad():
        out = engine.loaded.model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                           max_new_tokens=12, min_new_tokens=12, do_sample=False)
    assert clean_ids(answer.tempo) == out[0, len(ids):].tolist()
    reference = alone(engine, PROMPT, **GREEDY, **MIN)
    assert answer.choices[0].text == reference.clean_text and answer.choices[0].finish_reason == "length"
    assert answer.usage.prompt_tokens == len(ids) and answer.usage.completion_tokens == 12
    assert answer.model == model_id(served) and answer.object == "text_completion"


@pytest.mark.server
@pytest.mark.slow
def test_logprobs_3_give_three_alternatives_per_token_with_the_results_probabilities(served, client):
    engine, _ = served
    answer = client.completions.create(model=model_id(served), prompt=PROMPT, max_tokens=8, logprobs=3,
                                       extra_body=WIDE)
    reference = alone(engine, PROMPT, max_tokens=8, **WIDE)
    logprobs = answer.choices[0].logprobs
    assert len(logprobs.tokens) == len(reference.steps) == 8
    for step, token, value, top in zip(reference.steps, logprobs.tokens, logprobs.token_logprobs,
                                       logprobs.top_logprobs):
        best = sorted(step.candidates, key=lambda c: -c.probability)[:3]
        assert token == step.kept[0].text and value == pytest.approx(math.log(step.kept[0].probability), abs=1e-4)
        assert list(top) == [c.text for c in best]
        assert list(top.values()) == pytest.approx([math.log(c.probability) for c in best], abs=1e-4)
    chat = client.chat.completions.create(model=model_id(served), messages=[{"role": "user", "content": "a cat"}],
                                          max_tokens=4, logprobs=True, top_logprobs=2, extra_body=WIDE)
    content = chat.choices[0].logprobs.content
    assert len(content) == 4 and all(len(t.top_logprobs) == 2 for t in content)
    assert "".join(t.token for t in content) == chat.choices[0].message.content


@pytest.mark.server
@pytest.mark.slow
def test_streaming_gives_the_same_text_in_several_chunks(served, client):
    whole = client.completions.create(model=model_id(served), prompt=PROMPT, extra_body=MIN, **GREEDY)
    chunks = list(client.completions.create(model=model_id(served), prompt=PROMPT, stream=True, extra_body=MIN,
                                            **GREEDY))
    texts = [c.choices[0].text for c in chunks]
    assert len([t for t in texts if t]) >= 3 and "".join(texts) == whole.choices[0].text
    assert chunks[-1].choices[0].finish_reason == "length" and chunks[-1].tempo["clean_text"] == whole.choices[0].text
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])
    messages = [{"role": "user", "content": "the cat"}]
    chat = client.chat.completions.create(model=model_id(served), messages=messages, extra_body=MIN, **GREEDY)
    parts = list(client.chat.completions.create(model=model_id(served), messages=messages, stream=True,
                                                stream_options={"include_usage": True}, extra_body=MIN, **GREEDY))
    assert parts[0].choices[0].delta.role == "assistant" and parts[-1].usage.completion_tokens == 12
    streamed = "".join(p.choices[0].delta.content or "" for p in parts if p.choices)
    assert streamed == chat.choices[0].message.content and len([p for p in parts if p.choices]) >= 4


@pytest.mark.server
@pytest.mark.slow
def test_the_stream_is_server_sent_events_ending_with_done(served):
    body = {"prompt": PROMPT, "stream": True, **GREEDY}
    with httpx.stream("POST", served[1].url + "v1/completions", json=body, timeout=60) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [e for e in response.read().decode().split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"
    assert all("choices" in json.loads(e[6:]) for e in events[:-1])


@pytest.mark.server
@pytest.mark.slow
def test_extra_body_fields_reach_tempo_and_tempo_carries_the_sets(served, client, monkeypatch):
    engine, server = served
    jobs = record_jobs(monkeypatch, server.app.state.scheduler)  # through the app's scheduler, as the UI's users
    narrow = client.completions.create(model=model_id(served), prompt=PROMPT, max_tokens=10,
                                       extra_body={"selection_threshold": 0.9})
    wide = client.completions.create(model=model_id(served), prompt=PROMPT, max_tokens=10,
                                     extra_body={"selection_threshold": 0.02, "top_p": 1.0})
    assert {job.request.selection_threshold for job in jobs.jobs} == {0.9, 0.02}
    assert all(len(s["candidates"]) == 1 for s in narrow.tempo["steps"]) and "[" not in narrow.tempo["text"]
    assert max(len(s["candidates"]) for s in wide.tempo["steps"]) > 1 and "[" in wide.tempo["text"]
    from tempo.result import GenerationResult
    same(GenerationResult.from_dict(wide.tempo), alone(engine, PROMPT, max_tokens=10, selection_threshold=0.02,
                                                       top_p=1.0))
    assert wide.choices[0].text == wide.tempo["clean_text"]


@pytest.mark.server
@pytest.mark.slow
def test_a_stop_string_ends_the_text_before_it(served, client):
    full = client.completions.create(model=model_id(served), prompt=PROMPT, max_tokens=30, temperature=0,
                                     extra_body={"min_steps": 30}, logprobs=0)
    tokens = full.choices[0].logprobs.tokens
    stop = tokens[3] + tokens[4]
    expected = full.choices[0].text[:full.choices[0].text.find(stop)]
    cut = client.completions.create(model=model_id(served), prompt=PROMPT, max_tokens=30, temperature=0, stop=[stop],
                                    extra_body={"min_steps": 30})
    assert cut.choices[0].text == expected and cut.choices[0].finish_reason == "stop"
    streamed = list(client.completions.create(model=model_id(served), prompt=PROMPT, max_tokens=30, temperature=0,
                                              stop=stop, stream=True, extra_body={"min_steps": 30}))
    assert "".join(c.choices[0].text for c in streamed) == expected
    assert streamed[-1].choices[0].finish_reason == "stop"


@pytest.mark.server
@pytest.mark.slow
def test_chat_goes_through_the_template_and_a_model_without_one_is_refused(served, client, monkeypatch):
    engine, _ = served
    tokenizer = engine.loaded.tokenizer
    messages = [{"role": "system", "content": "the sky"}, {"role": "user", "content": "a red dog"}]
    chat = client.chat.completions.create(model=model_id(served), messages=messages, extra_body=MIN, **GREEDY)
    template_ids = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
    template_ids = list(template_ids["input_ids"] if hasattr(template_ids, "keys") else template_ids)
    assert tokenizer(chat.tempo["prompt"])["input_ids"] == template_ids  # one BOS, the template's tokens
    assert chat.choices[0].message.content == alone(engine, chat.tempo["prompt"], **GREEDY, **MIN).clean_text
    assert chat.usage.prompt_tokens == len(template_ids) and chat.object == "chat.completion"
    monkeypatch.setattr(tokenizer, "chat_template", None)
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=model_id(served), messages=messages, max_tokens=3)
    error = refused.value.body
    assert refused.value.status_code == 400 and error["param"] == "messages" and "chat template" in error["message"]


@pytest.mark.server
@pytest.mark.slow
@pytest.mark.parametrize("fields, param", [
    ({"extra_body": {"selection_threshold": 2.0}}, "selection_threshold"),
    ({"extra_body": {"no_such_field": 1}}, "no_such_field"),
    ({"temperature": -1}, "temperature"),
    ({"n": 2}, "n"),
    ({"extra_body": {"mode": "beam"}}, "mode"),
    ({"model": "gpt-4o"}, "model"),
    ({"prompt": ["two", "prompts"]}, "prompt"),
])
def test_a_bad_field_is_a_400_in_openais_error_shape_naming_it(served, client, fields, param):
    fields = {"model": model_id(served), "prompt": PROMPT, "max_tokens": 3, **fields}
    with pytest.raises(openai.BadRequestError) as refused:
        client.completions.create(**fields)
    assert refused.value.status_code == 400
    error = refused.value.body
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param and error["type"] == "invalid_request_error" and param in error["message"]
    assert client.completions.create(model=model_id(served), prompt=PROMPT, max_tokens=2).choices[0].text


@pytest.mark.server
@pytest.mark.slow
def test_bad_json_and_a_large_body_answer_in_openais_shape(served):
    url = served[1].url + "v1/chat/completions"
    broken = httpx.post(url, content=b'{"messages": [', headers={"content-type": "application/json"})
    assert broken.status_code == 400 and broken.json()["error"]["param"] is None
    assert "JSON" in broken.json()["error"]["message"]
    missing = httpx.post(url, json={"max_tokens": 3})
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "messages"
    too_long = {"messages": [{"role": "user", "content": "the " * 300}], "stream": True}  # over 256 positions
    for answer in (httpx.post(url, json=too_long), httpx.post(url, json={**too_long, "stream": False})):
        assert answer.status_code == 400 and answer.json()["error"]["param"] == "messages", answer.text
        assert "context" in answer.json()["error"]["message"]
    large = httpx.post(url, content=b"x" * (2 * 1024 * 1024), headers={"content-type": "application/json"})
    assert large.status_code == 413 and large.json()["error"]["param"] == "body"
    assert httpx.post(served[1].url + "generate", json={"prompt": "the", "top_p": 3.0}).json()["field"] == "top_p"


@pytest.mark.server
@pytest.mark.slow
def test_models_lists_the_served_model(served, client):
    assert [m.id for m in client.models.list().data] == [model_id(served)]
    assert client.models.retrieve(model_id(served)).owned_by == "tempo"


@pytest.mark.server
@pytest.mark.slow
def test_the_rate_limit_is_the_one_of_generate(tiny_model_dir):
    from tempo.engine.runner import Tempo
    from tempo.models.loading import load_model
    from tempo.serve.rest import Server, rest_app
    from tempo.serve.scheduler import Scheduler

    settings = load_settings(overrides={"api.rate_limit": 2})
    engine = Tempo(load_model(str(tiny_model_dir["llama"])), settings)
    scheduler = Scheduler(engine)
    app = rest_app(engine, settings, scheduler, settings.api)
    app.state.owns_scheduler = True
    server = Server(app).start()
    try:
        assert httpx.post(server.url + "generate", json={"prompt": "the", "max_tokens": 2}).status_code == 200
        assert httpx.get(server.url + "v1/models").status_code == 200
        refused = httpx.post(server.url + "v1/completions", json={"prompt": "the", "max_tokens": 2})
        assert refused.status_code == 429 and refused.json()["error"]["type"] == "rate_limit_error"
        assert "rate_limit" in refused.json()["error"]["message"] and "retry-after" in refused.headers
    finally:
        server.close()


@pytest.mark.server
@pytest.mark.slow
def test_a_stream_the_client_leaves_cancels_its_job_and_frees_its_slot(served, monkeypatch):
    _, server = served
    jobs = record_jobs(monkeypatch, server.app.state.scheduler)
    body = {"prompt": "a quick fox", "stream": True, "max_tokens": 200, "min_steps": 200, "temperature": 0}
    with httpx.stream("POST", server.url + "v1/completions", json=body, timeout=60) as response:
        first = next(response.iter_lines())
        assert first.startswith("data: ")
    job = jobs.job("a quick fox", timeout=30)
    assert job.wait_for("done", timeout=60) == "cancelled" and len(job.result.steps) < 200
    slots = server.app.state.config.max_concurrent_requests
    with contextlib.ExitStack() as streams:  # every slot is free again: as many streams as slots run at once
        opened = [streams.enter_context(httpx.stream("POST", server.url + "v1/completions", json=body, timeout=60))
                  for _ in range(slots)]
        assert [r.status_code for r in opened] == [200] * slots
        assert httpx.post(server.url + "v1/completions", json={"prompt": "a", "max_tokens": 1}).status_code == 503
