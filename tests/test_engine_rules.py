"""EOS and min_steps, thinking mode, schedules driving selection, result JSON and text."""
import pytest

from tempo.engine.output import bracketed_text, format_set
from tempo.engine.prompting import THINKING_SYSTEM_MESSAGE, encode_prompt
from tempo.engine.row import build_result
from tempo.engine.batch import Batch
from tempo.request import GenerationRequest
from tempo.result import Candidate, GenerationResult, Step

PROMPT = "the cat sat on the"


def run_with_eos(engine, request, eos_ids):
    row = Batch(engine.adapter, engine.loaded.tokenizer, eos_ids, engine.pad_id).run([request])[0]
    return build_result(row, engine.loaded.tokenizer, engine.loaded.info())


def test_eos_as_highest_candidate_stops_and_is_not_printed(engine):
    base = engine.generate(PROMPT, max_tokens=6, selection_threshold=0.05)
    eos = base.steps[2].candidates[0].token_id  # make step 2's top token the EOS
    result = run_with_eos(engine, engine.request(PROMPT, max_tokens=6, selection_threshold=0.05), [eos])
    assert result.stop_reason == "eos"
    assert len(result.steps) <= 2
    assert all(c.token_id != eos for step in result.steps for c in step.candidates)


def test_eos_not_highest_is_dropped_from_the_set(engine):
    base = engine.generate(PROMPT, max_tokens=3, selection_threshold=0.05)
    assert len(base.steps[0].candidates) >= 2
    eos = base.steps[0].candidates[1].token_id
    result = run_with_eos(engine, engine.request(PROMPT, max_tokens=3, selection_threshold=0.05), [eos])
    assert [c.token_id for c in result.steps[0].candidates] == \
        [c.token_id for c in base.steps[0].candidates if c.token_id != eos]


def test_min_steps_suppresses_eos(engine):
    base = engine.generate(PROMPT, max_tokens=1, temperature=0.0)
    eos = base.steps[0].candidates[0].token_id
    request = engine.request(PROMPT, max_tokens=8, temperature=0.0, min_steps=3)
    result = run_with_eos(engine, request, [eos])
    assert len(result.steps) >= 3
    assert all(step.candidates[0].token_id != eos for step in result.steps[:3])
    stopped = run_with_eos(engine, engine.request(PROMPT, max_tokens=8, temperature=0.0), [eos])
    assert stopped.steps == [] and stopped.stop_reason == "eos"


def test_max_tokens_and_selection_schedule(engine):
    result = engine.generate(PROMPT, max_tokens=10, selection_threshold=0.02, selection_schedule="relu",
                             selection_final_threshold=1.0, relu_activation_point=0.3)
    assert len(result.steps) == 10 and result.stop_reason == "max_tokens"
    thresholds = [s.selection_threshold for s in result.steps]
    assert thresholds[0] == pytest.approx(0.02) and thresholds[-1] == pytest.approx(1.0)
    assert len(result.steps[-1].candidates) == 1  # nothing passes 1.0 unless certain: the argmax alone
    assert any(len(s.candidates) > 1 for s in result.steps[:3])
    for step in result.steps:
        assert all(c.probability >= step.selection_threshold for c in step.candidates) or len(step.candidates) == 1


def test_thinking_mode_uses_the_chat_template(engines):
    tok = engines["llama"].loaded.tokenizer
    plain = encode_prompt(tok, GenerationRequest(prompt="the cat"))
    assert plain == tok("the cat")["input_ids"]
    thinking = tok.decode(encode_prompt(tok, GenerationRequest(prompt="the cat", enable_thinking=True)))
    assert f"system : {THINKING_SYSTEM_MESSAGE} </s>" in thinking and "user : the cat" in thinking
    custom = tok.decode(encode_prompt(tok, GenerationRequest(prompt="the cat", enable_thinking=True,
                                                             system_content="the sun")))
    assert "system : the sun" in custom and "user : the cat" in custom and custom.rstrip().endswith("assistant :")


def test_thinking_without_a_template_is_plain(caplog):
    from helpers import build_tokenizer

    tok = build_tokenizer(chat_template=False)
    ids = encode_prompt(tok, GenerationRequest(prompt="the cat", enable_thinking=True))
    assert ids == tok("the cat")["input_ids"]
    assert "no chat template" in caplog.text


def test_result_json_round_trip(engine):
    result = engine.generate(PROMPT, max_tokens=5, selection_threshold=0.05)
    again = GenerationResult.from_json(result.to_json())
    assert again == result
    assert set(result.to_dict()) >= {"prompt", "mode", "text", "clean_text", "steps", "settings", "timing", "model"}
    assert result.model.id and result.model.device == "cpu" and result.model.dtype == "float32"
    assert result.timing.total_s >= result.timing.prefill_s > 0 and result.timing.tokens_per_s > 0


def test_text_brackets_sets_and_clean_text_takes_the_top(engine):
    result = engine.generate(PROMPT, max_tokens=8, selection_threshold=0.05)
    assert "[" in result.text and "/" in result.text
    tok = engine.loaded.tokenizer
    assert result.clean_text == "".join(s.candidates[0].text for s in result.steps)
    assert result.clean_text.split() == tok.decode([s.candidates[0].token_id for s in result.steps]).split()


def test_format_rules():
    assert format_set([" cat", " dog"]) == " [cat/dog]"
    assert format_set(["cat", " dog"]) == "[cat/ dog]"
    steps = [
        Step(0, 5, 0.1, candidates=[Candidate(1, " The", 0.9)]),
        Step(1, 6, 0.1, candidates=[Candidate(2, " cat", 0.6), Candidate(3, " dog", 0.3, status="pruned"),
                                     Candidate(4, " cow", 0.1)]),
        Step(2, 7, 0.1, candidates=[Candidate(5, " gone", 0.5, status="removed")]),
        Step(3, 8, 0.1, candidates=[Candidate(6, " sat", 0.8)]),
    ]
    assert bracketed_text(steps) == " The [cat/cow] sat"
