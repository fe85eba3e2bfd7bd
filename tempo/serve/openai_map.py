"""The OpenAI-compatible API's mapping (TEMPO_SPEC section 14), as pure functions: OpenAI's request fields to
TEMPO's request fields, a result to OpenAI's response and stream chunks, errors to OpenAI's error shape.

No FastAPI and no engine here: ``tempo/serve/openai_api.py`` has the routes and calls these.

- The returned text is the result's ``clean_text``: one *clean token* per step, the highest-probability kept
  candidate (steps with nothing kept are left out).
- ``logprobs`` carry, per clean token, its log-probability (the log of its ``probability`` in the result) and
  the step's highest alternatives: the step's candidates (kept, pruned or removed) by probability, at most the
  number asked. A step's candidates are its set, so a step holds fewer alternatives than asked when fewer tokens
  passed ``selection_threshold`` (or ``max_parallel_tokens``); at ``temperature`` 0 the set is the argmax alone.
- ``stop`` strings end the text at the first one found (it is left out); a stream holds back the text that could
  be the start of a stop string until it is known not to be.
"""
from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass
from typing import Any, Sequence

from tempo.errors import RequestError
from tempo.result import Candidate, GenerationResult, Step

MAX_LOGPROBS = 20
"""The most alternatives a token's ``logprobs`` (completions) or ``top_logprobs`` (chat) may ask for."""
MAX_STOPS = 4
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 413: "invalid_request_error", 422: "invalid_request_error",
               429: "rate_limit_error", 499: "invalid_request_error"}
OPENAI_FIELDS = {"max_tokens", "temperature", "top_p", "seed"}
"""OpenAI's fields that are TEMPO request fields of the same name and meaning."""
IGNORED = ("user", "store", "metadata", "service_tier")
"""OpenAI fields that change nothing here (bookkeeping of OpenAI's own service); accepted and ignored."""
UNSUPPORTED = {
    # field: (the values accepted, why no other)
    "n": ((None, 1), "one choice per request (n = 1); send several requests, they share the batch"),
    "best_of": ((None, 1), "one completion per request (best_of = 1)"),
    "echo": ((None, False), "the prompt is not echoed; the result's prompt is tempo.prompt"),
    "suffix": ((None, ""), "no insertion: TEMPO continues the prompt"),
    "logit_bias": ((None, {}), "no logit bias; TEMPO's sampling fields are extra body fields"),
    "presence_penalty": ((None, 0, 0.0), "no presence penalty; use repetition_penalty (an extra body field)"),
    "frequency_penalty": ((None, 0, 0.0), "no frequency penalty; use repetition_penalty (an extra body field)"),
    "tools": ((None, []), "no tool calls"),
    "tool_choice": ((None, "none"), "no tool calls"),
    "functions": ((None, []), "no function calls"),
    "function_call": ((None, "none"), "no function calls"),
    "response_format": ((None, {"type": "text"}), "text responses only"),
}
CHAT_ONLY_SYSTEM = ("system_content", "enable_thinking")
"""TEMPO fields that add a system message through the chat template: in chat, the messages hold it."""


def error_body(message: str, param: str | None = None, status: int = 400, code: str | None = None) -> dict:
    """OpenAI's error shape: ``{"error": {"message", "type", "param", "code"}}``."""
    kind = ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def refuse(field: str, message: str) -> RequestError:
    return RequestError(field, message)


def check_unsupported(body: dict[str, Any]) -> None:
    """``RequestError`` naming the first OpenAI field given at a value TEMPO cannot honour."""
    for name, (accepted, why) in UNSUPPORTED.items():
        if name in body and body[name] not in accepted:
            raise refuse(name, f"{why}; got {body[name]!r}")


def stop_strings(stop: Any) -> list[str]:
    """``stop`` as a list: a string, up to ``MAX_STOPS`` strings, or none."""
    if stop is None:
        return []
    stops = [stop] if isinstance(stop, str) else list(stop)
    if len(stops) > MAX_STOPS or not all(isinstance(s, str) and s for s in stops):
        raise refuse("stop", f"must be a non-empty string or a list of at most {MAX_STOPS} of them, got {stop!r}")
    return stops


def tempo_fields(body: dict[str, Any], tempo_names: Sequence[str], max_tokens_field: str = "max_tokens") -> dict:
    """The TEMPO request fields of an OpenAI body: OpenAI's own that TEMPO shares (``max_tokens``,
    ``temperature``, ``top_p``, ``seed``), then TEMPO's extra body fields; ``None`` = not given (settings)."""
    fields = {name: body.get(name) for name in tempo_names if body.get(name) is not None}
    if body.get(max_tokens_field) is not None:
        fields["max_tokens"] = body[max_tokens_field]
    return fields


def completion_prompt(prompt: Any) -> str:
    """``prompt``: a string, or a list of one string (one choice per request)."""
    if isinstance(prompt, list):
        if len(prompt) != 1 or not isinstance(prompt[0], str):
            raise refuse("prompt", "one prompt per request: a string or a list of one string "
                                   "(send several requests; they share the batch)")
        prompt = prompt[0]
    return prompt


def message_text(message: Any, index: int) -> tuple[str, str]:
    """``(role, text)`` of one chat message; its content a string or a list of text parts."""
    if not isinstance(message, dict) or not isinstance(message.get("role"), str):
        raise refuse("messages", f"message {index} must be an object with a role and a content")
    content = message.get("content")
    if isinstance(content, list):
        if not all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
                   for p in content):
            raise refuse("messages", f"message {index}: only text parts ({{\"type\": \"text\", \"text\": ...}})")
        content = "".join(p["text"] for p in content)
    if not isinstance(content, str):
        raise refuse("messages", f"message {index} must have a string content")
    return message["role"], content


def chat_prompt(tokenizer: Any, model_id: str, messages: Any) -> str:
    """The prompt text of ``messages`` through the tokenizer's chat template, ready for the engine, which adds
    the tokenizer's special tokens itself: a leading BOS that the template writes and the tokenizer would add
    again is left out (one BOS, as ``apply_chat_template(tokenize=True)`` gives)."""
    if not isinstance(messages, list) or not messages:
        raise refuse("messages", "must be a non-empty list of {role, content} objects")
    template = getattr(tokenizer, "chat_template", None)
    if not template:
        raise refuse("messages", f"the model {model_id} has no chat template (tokenizer.chat_template is "
                                 f"empty), so it cannot take chat messages; use /v1/completions with a prompt")
    turns = [dict(zip(("role", "content"), message_text(m, i))) for i, m in enumerate(messages)]
    text = tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
    bos = getattr(tokenizer, "bos_token", None)
    if bos and text.startswith(bos) and adds_bos(tokenizer):
        text = text[len(bos):]
    return text


def adds_bos(tokenizer: Any) -> bool:
    """Whether the tokenizer puts its BOS token in front of any text it encodes."""
    bos_id = getattr(tokenizer, "bos_token_id", None)
    ids = tokenizer("x")["input_ids"]
    return bos_id is not None and bool(ids) and ids[0] == bos_id


# --- the clean tokens of a result, and stop strings ----------------------------------------------------------

@dataclass(frozen=True)
class CleanToken:
    """One step's clean token (its highest-probability kept candidate) and the step's candidates by probability."""

    text: str
    logprob: float
    alternatives: tuple[Candidate, ...]


def logprob(probability: float) -> float:
    return math.log(probability) if probability > 0 else -9999.0  # OpenAI's stand-in for -inf


def clean_tokens(steps: Sequence[Step]) -> list[CleanToken]:
    """The clean token of every step that kept one (their texts join to the result's ``clean_text``)."""
    return [CleanToken(step.kept[0].text, logprob(step.kept[0].probability),
                       tuple(sorted(step.candidates, key=lambda c: -c.probability)))
            for step in steps if step.kept]


def cut_at_stop(texts: Sequence[str], stops: Sequence[str], final: bool) -> tuple[int, str | None, bool]:
    """How much of the tokens ``texts`` to show under ``stops``: ``(count, last, stopped)``.

    A stop string found: the tokens that begin before it, the last one's text ``last`` cut where the stop begins,
    ``stopped``. None found and not ``final`` (a stream): whole tokens up to the text that could be the start of a
    stop string, held back until the next tokens tell. Otherwise every token."""
    joined = "".join(texts)
    found = [i for i in (joined.find(s) for s in stops) if i >= 0]
    ends, end = [], 0
    for text in texts:
        end += len(text)
        ends.append(end)
    if found:
        cut = min(found)
        count = sum(1 for e, t in zip(ends, texts) if e - len(t) < cut)
        return count, (joined[ends[count - 1] - len(texts[count - 1]):cut] if count else None), True
    if final or not stops:
        return len(texts), None, False
    held = max((k for s in stops for k in range(1, len(s)) if joined.endswith(s[:k])), default=0)
    return sum(1 for e in ends if e <= len(joined) - held), None, False


def shown_tokens(tokens: Sequence[CleanToken], stops: Sequence[str], final: bool) -> tuple[list[CleanToken], bool]:
    """The clean tokens to show (the last one cut at a stop string) and whether a stop string ended them."""
    count, last, stopped = cut_at_stop([t.text for t in tokens], stops, final)
    shown = list(tokens[:count])
    if last is not None:
        shown[-1] = CleanToken(last, shown[-1].logprob, shown[-1].alternatives)
    return shown, stopped


def finish_reason(result: GenerationResult | None, stopped: bool) -> str:
    """``stop`` (a stop string or EOS) or ``length`` (max_tokens, or the request was cut short)."""
    return "stop" if stopped or (result is not None and result.stop_reason == "eos") else "length"


# --- logprobs ------------------------------------------------------------------------------------------------

def completion_logprobs(tokens: Sequence[CleanToken], top: int, offset: int = 0) -> dict:
    """The legacy completions ``logprobs``: tokens, their log-probabilities, the top alternatives of each step
    (``{text: logprob}``), the tokens' character offsets in the text (from ``offset``)."""
    offsets, at = [], offset
    for token in tokens:
        offsets.append(at)
        at += len(token.text)
    return {"tokens": [t.text for t in tokens], "token_logprobs": [t.logprob for t in tokens],
            "top_logprobs": [{c.text: logprob(c.probability) for c in t.alternatives[:top]} for t in tokens],
            "text_offset": offsets}


def chat_logprobs(tokens: Sequence[CleanToken], top: int) -> dict:
    """The chat ``logprobs``: per token its text, log-probability, UTF-8 bytes and ``top_logprobs``."""
    def entry(text: str, value: float) -> dict:
        return {"token": text, "logprob": value, "bytes": list(text.encode("utf-8"))}

    return {"content": [{**entry(t.text, t.logprob),
                         "top_logprobs": [entry(c.text, logprob(c.probability)) for c in t.alternatives[:top]]}
                        for t in tokens], "refusal": None}


# --- responses and stream chunks -----------------------------------------------------------------------------

def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def usage(result: GenerationResult, completion_tokens: int) -> dict:
    prompt_tokens = int(result.settings["prompt_tokens"])
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


@dataclass(frozen=True)
class Reply:
    """What the routes answer with: chat or completion, the model's id, the logprobs asked (None: none)."""

    chat: bool
    model: str
    top: int | None
    stops: tuple[str, ...] = ()
    id: str = ""
    created: int = 0

    @classmethod
    def new(cls, chat: bool, model: str, top: int | None, stops: Sequence[str]) -> "Reply":
        return cls(chat, model, top, tuple(stops), new_id("chatcmpl" if chat else "cmpl"), int(time.time()))

    def logprobs(self, tokens: Sequence[CleanToken], offset: int = 0) -> dict | None:
        if self.top is None:
            return None
        return chat_logprobs(tokens, self.top) if self.chat else completion_logprobs(tokens, self.top, offset)

    def head(self, chunk: bool) -> dict:
        kind = ("chat.completion" if self.chat else "text_completion") + (".chunk" if chunk and self.chat else "")
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}

    def response(self, result: GenerationResult) -> dict:
        """The whole answer to a request without ``stream``; ``tempo`` is the result (TEMPO_SPEC section 8)."""
        tokens, stopped = shown_tokens(clean_tokens(result.steps), self.stops, final=True)
        text = "".join(t.text for t in tokens)
        choice: dict[str, Any] = {"index": 0, "logprobs": self.logprobs(tokens),
                                  "finish_reason": finish_reason(result, stopped)}
        if self.chat:
            choice["message"] = {"role": "assistant", "content": text, "refusal": None}
        else:
            choice["text"] = text
        return {**self.head(chunk=False), "choices": [choice], "usage": usage(result, len(tokens)),
                "tempo": result.to_dict()}

    def chunk(self, tokens: Sequence[CleanToken], offset: int = 0, finish: str | None = None,
              tempo: dict | None = None, first: bool = False) -> dict:
        """One stream chunk: the text of ``tokens`` (their logprobs when asked), ``finish`` on the last one."""
        text = "".join(t.text for t in tokens)
        choice: dict[str, Any] = {"index": 0, "logprobs": self.logprobs(tokens, offset) if tokens else None,
                                  "finish_reason": finish}
        if self.chat:
            choice["delta"] = ({"role": "assistant", "content": text} if first else
                               ({"content": text} if text or finish is None else {}))
        else:
            choice["text"] = text
        out = {**self.head(chunk=True), "choices": [choice]}
        if tempo is not None:
            out["tempo"] = tempo
        return out

    def usage_chunk(self, result: GenerationResult, completion_tokens: int) -> dict:
        """The last chunk of a stream with ``stream_options.include_usage``: no choices, the usage."""
        return {**self.head(chunk=True), "choices": [], "usage": usage(result, completion_tokens)}


def models_list(model_id: str, created: int) -> dict:
    return {"object": "list", "data": [model_card(model_id, created)]}


def model_card(model_id: str, created: int) -> dict:
    return {"id": model_id, "object": "model", "created": created, "owned_by": "tempo"}
