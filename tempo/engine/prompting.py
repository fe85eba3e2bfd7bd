"""The prompt as token ids: plain, or through the tokenizer's chat template for thinking mode."""
from __future__ import annotations

import logging
from typing import Any

from tempo.request import GenerationRequest

log = logging.getLogger(__name__)

THINKING_SYSTEM_MESSAGE = "Enable deep thinking subroutine."


def system_message(request: GenerationRequest) -> str | None:
    """``system_content`` when given, else the thinking message when thinking is on, else none."""
    if request.system_content:
        return request.system_content
    if request.enable_thinking:
        return THINKING_SYSTEM_MESSAGE
    return None


def encode_prompt(tokenizer: Any, request: GenerationRequest) -> list[int]:
    """Token ids of the prompt. A system message goes through the chat template when the
    tokenizer has one; without a template the prompt is used plain (and a warning logged)."""
    system = system_message(request)
    if system is not None and getattr(tokenizer, "chat_template", None):
        messages = [{"role": "system", "content": system}, {"role": "user", "content": request.prompt}]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])
    if system is not None:
        log.warning("the tokenizer has no chat template: the system message is ignored, the prompt is used plain")
    return list(tokenizer(request.prompt)["input_ids"])
