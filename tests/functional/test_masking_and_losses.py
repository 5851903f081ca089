import math

import pytest
import torch
import torch.nn.functional as F

from safe_rlhf_lightning.functional import gather_logprobs, masked_mean, masked_sum, sft_loss


def test_masked_mean_by_hand():
    values = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    mask = torch.tensor([[True, False, True], [False, False, False]])
    assert masked_sum(values, mask).item() == 4.0
    assert masked_mean(values, mask).item() == 2.0
    # Row means: (1 + 3) / 2 and an empty row that gives 0, not NaN.
    assert masked_mean(values, mask, dim=1).tolist() == [2.0, 0.0]


def test_masked_mean_does_not_change_inputs():
    values = torch.randn(3, 4)
    mask = torch.rand(3, 4) > 0.5
    before = values.clone()
    masked_mean(values, mask)
    assert torch.equal(values, before)


def test_gather_logprobs_by_hand():
    # One sequence [0, 1] over a vocabulary of 2: logits at position 0 predict token 1.
    logits = torch.tensor([[[0.0, math.log(3.0)], [5.0, 5.0]]])
    input_ids = torch.tensor([[0, 1]])
    # p(1) = 3 / (1 + 3)
    expected = math.log(0.75)
    assert gather_logprobs(logits, input_ids).item() == pytest.approx(expected)


def test_sft_loss_matches_cross_entropy_with_ignored_labels_float64():
    torch.manual_seed(0)
    batch, length, vocab = 3, 7, 11
    logits = torch.randn(batch, length, vocab, dtype=torch.float64)
    input_ids = torch.randint(0, vocab, (batch, length))
    loss_mask = torch.zeros(batch, length, dtype=torch.bool)
    loss_mask[0, 3:] = True  # ragged response spans
    loss_mask[1, 5:6] = True
    loss_mask[2, 1:4] = True
    loss, stats = sft_loss(logits, input_ids, loss_mask)

    labels = torch.where(loss_mask, input_ids, torch.full_like(input_ids, -100))
    reference = F.cross_entropy(
        logits[:, :-1].reshape(-1, vocab), labels[:, 1:].reshape(-1), ignore_index=-100
    )
    assert loss.item() == pytest.approx(reference.item(), rel=1e-6)
    assert stats["num_tokens"].item() == loss_mask[:, 1:].sum().item()


def test_sft_loss_ignores_prompt_and_padding_tokens():
    torch.manual_seed(1)
    logits = torch.randn(2, 5, 6, requires_grad=True)
    input_ids = torch.randint(0, 6, (2, 5))
    loss_mask = torch.tensor([[False, False, True, True, False]] * 2)
    loss, _ = sft_loss(logits, input_ids, loss_mask)
    loss.backward()
    # Only positions 1 and 2 predict masked-in tokens (2 and 3); the rest get no gradient.
    grad_norm_per_position = logits.grad.abs().sum(dim=(0, 2))
    assert grad_norm_per_position[[0, 3, 4]].eq(0).all()
    assert grad_norm_per_position[[1, 2]].gt(0).all()
