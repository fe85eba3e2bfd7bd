"""The losses of the fine-tuning stages, as pure functions of logits, labels and log-probabilities.

Labels follow Hugging Face's convention: ``labels[b, t]`` is the token at position ``t`` (the logits at
``t - 1`` predict it) and ``IGNORE`` (-100) marks a position that is not scored: the prompt and the padding.

    tools (SFT):  mean over completion tokens of -log pi(token | everything before it)
    rlhf  (DPO):  -log sigmoid(beta * ((log pi(y_w) - log ref(y_w)) - (log pi(y_l) - log ref(y_l))))
                  (Rafailov et al. 2023, eq. 7), pi and ref summed over the completion's tokens
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE = -100
"""The label of a position that carries no loss (prompt and padding tokens)."""


def token_logps(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probabilities of the labelled tokens and their mask, both [B, L-1]: position t scores
    ``labels[:, t + 1]`` with ``logits[:, t]``; masked positions hold 0."""
    targets = labels[:, 1:]  # [B, L-1]
    mask = targets != IGNORE
    logps = torch.log_softmax(logits[:, :-1].float(), dim=-1)  # [B, L-1, V]
    picked = torch.gather(logps, 2, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)  # [B, L-1]
    return picked * mask, mask


def sft_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood of the completion tokens (every labelled token weighs the same)."""
    picked, mask = token_logps(logits, labels)
    return -picked.sum() / mask.sum().clamp(min=1)


def sequence_logps(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log pi(completion | prompt) of each row, [B]: the sum over its labelled tokens."""
    picked, _ = token_logps(logits, labels)
    return picked.sum(-1)


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, reference_chosen: torch.Tensor,
             reference_rejected: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """DPO's per-pair loss and margin, both [B], from sequence log-probabilities [B].

    margin = (log pi(chosen) - log ref(chosen)) - (log pi(rejected) - log ref(rejected));
    loss = -log sigmoid(beta * margin) = softplus(-beta * margin).
    """
    margin = (policy_chosen - reference_chosen) - (policy_rejected - reference_rejected)
    return -F.logsigmoid(beta * margin), margin
