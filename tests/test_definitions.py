"""Definitions, checked on hand-built tensors with answers worked out by hand: digitsum's loss
(the sum distribution the digit head implies, the agreement term) and evaluate's metrics."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch

from digitsum.config import TrainConfig
from digitsum.evaluate import all_pairs_accuracy, metrics
from digitsum.labelled import rank_confusions
from digitsum.mixture import Batch
from digitsum.model import Logits
from digitsum.training.objective import digitsum_loss, implied_sums

NEVER = -1e4  # a logit whose probability is 0 in float32, without the NaNs of -inf


def logits(probabilities: dict[int, float], classes: int) -> torch.Tensor:
    """Logits (1, classes) whose softmax is ``probabilities`` (class -> p; the rest 0)."""
    out = torch.full((1, classes), NEVER)
    for k, p in probabilities.items():
        out[0, k] = math.log(p)
    return out


def one_item(digit: int, number: int) -> Batch:
    """A batch of one item (no image: the loss reads the logits and the targets)."""
    return Batch(torch.zeros(1, 1, 28, 28), torch.tensor([number]), torch.tensor([digit]),
                 torch.tensor([digit + number]))


def test_the_digit_heads_probabilities_land_in_the_sum_columns_shifted_by_the_number():
    digit_logits = torch.cat([logits({0: 0.5, 1: 0.3, 9: 0.2}, 10)] * 2)
    implied = implied_sums(digit_logits, torch.tensor([0, 7]), 19)
    assert implied.shape == (2, 19)
    expected = torch.zeros(2, 19)
    expected[0, [0, 1, 9]] = torch.tensor([0.5, 0.3, 0.2])  # number 0: sum = digit
    expected[1, [7, 8, 16]] = torch.tensor([0.5, 0.3, 0.2])  # number 7: sums 7, 8 and 16
    torch.testing.assert_close(implied, expected)


def test_the_loss_is_both_cross_entropies_plus_the_weighted_kl_from_the_implied_sums():
    digit_logits = logits({0: 0.5, 1: 0.5}, 10)  # digit 0 or 1, even odds
    sum_logits = logits({3: 0.25, 4: 0.75}, 19)  # with number 3: sum 3 at 0.25, 4 at 0.75
    cfg = TrainConfig(label_smoothing=0.0, consistency=2.0)
    loss = digitsum_loss(Logits(digit_logits, sum_logits), one_item(digit=0, number=3), cfg)
    digit_ce, sum_ce = math.log(2), math.log(4)  # -ln 0.5 for digit 0; -ln 0.25 for sum 3
    kl = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)  # implied: 0.5 on sums 3 and 4
    assert loss.item() == pytest.approx(digit_ce + sum_ce + 2.0 * kl, rel=1e-5)
    no_agreement = digitsum_loss(Logits(digit_logits, sum_logits), one_item(digit=0, number=3),
                                 TrainConfig(label_smoothing=0.0, consistency=0.0))
    assert no_agreement.item() == pytest.approx(digit_ce + sum_ce, rel=1e-5)


def test_the_agreement_term_is_zero_when_the_heads_agree_and_pulls_both_heads_when_they_do_not():
    digit_logits = logits({2: 0.6, 5: 0.4}, 10)
    agreeing = logits({6: 0.6, 9: 0.4}, 19)  # number 4: exactly what the digit head implies
    cfg = TrainConfig(label_smoothing=0.0, consistency=1.0)
    item = one_item(digit=2, number=4)
    ce_only = TrainConfig(label_smoothing=0.0, consistency=0.0)
    assert digitsum_loss(Logits(digit_logits, agreeing), item, cfg).item() == pytest.approx(
        digitsum_loss(Logits(digit_logits, agreeing), item, ce_only).item(), abs=1e-6)

    # Where the heads disagree the term pulls both. (At all-zero logits the digit head's pull is zero in
    # exact arithmetic, so a test there would pass or fail on rounding.) Digit head 0.6 / 0.4 on 2 and 5,
    # a uniform sum head q = 1/19: the term is sum p ln(p / q), whose gradient in the digit logit of
    # class i is p_i (ln p_i - sum_j p_j ln p_j), and in the sum logits q - implied.
    d = torch.full((1, 10), -30.0)  # other digits at e^-30: finite, so the KL's gradient is too
    d[0, 2], d[0, 5] = math.log(0.6), math.log(0.4)
    d.requires_grad_()
    s = torch.zeros(1, 19, requires_grad=True)
    agreement = digitsum_loss(Logits(d, s), item, cfg) - digitsum_loss(Logits(d, s), item, ce_only)
    agreement.backward()  # the agreement term alone
    entropy_term = 0.6 * math.log(0.6) + 0.4 * math.log(0.4)
    expected_d = torch.zeros(1, 10)
    expected_d[0, 2], expected_d[0, 5] = 0.6 * (math.log(0.6) - entropy_term), 0.4 * (math.log(0.4) - entropy_term)
    torch.testing.assert_close(d.grad, expected_d, atol=1e-5, rtol=1e-4)  # +-0.097: its target is not detached
    expected_s = torch.full((1, 19), 1 / 19)
    expected_s[0, 6] -= 0.6
    expected_s[0, 9] -= 0.4
    torch.testing.assert_close(s.grad, expected_s, atol=1e-5, rtol=1e-4)


def test_confusions_rank_by_count_then_by_digit_and_digit_read_whatever_order_rows_came_in():
    rows = [(9, 7), (4, 1), (3, 5), (4, 1), (9, 7), (0, 6), (2, 8)]  # 4->1 and 9->7 twice, three ones
    for order in (rows, rows[::-1]):
        assert rank_confusions(Counter(order), k=4) == [
            {"digit": 4, "read_as": 1, "count": 2}, {"digit": 9, "read_as": 7, "count": 2},
            {"digit": 0, "read_as": 6, "count": 1}, {"digit": 2, "read_as": 8, "count": 1}]


def test_a_detached_target_stops_the_agreement_terms_pull_on_the_digit_head():
    item = one_item(digit=2, number=4)
    d = torch.full((1, 10), -30.0)  # heads that disagree: undetached, the digit head's pull is +-0.097 (above)
    d[0, 2], d[0, 5] = math.log(0.6), math.log(0.4)
    d.requires_grad_()
    s = torch.zeros(1, 19, requires_grad=True)
    detached = TrainConfig(label_smoothing=0.0, consistency=1.0, detach_target=True)
    ce_only = TrainConfig(label_smoothing=0.0, consistency=0.0)
    (digitsum_loss(Logits(d, s), item, detached) - digitsum_loss(Logits(d, s), item, ce_only)).backward()
    assert s.grad.abs().sum() > 0 and d.grad.abs().sum() == 0


def test_metrics_count_digits_sums_consistency_and_each_digit():
    truth = torch.tensor([1, 2, 3, 4])
    numbers = torch.tensor([0, 1, 2, 3])  # true sums 1, 3, 5, 7
    digits = torch.tensor([1, 2, 3, 3])  # the 4 read as a 3
    sums = torch.tensor([1, 3, 6, 7])  # 6 is wrong; 7 is right but not 3 + 3
    card = metrics(digits, sums, truth, numbers)
    assert card["n"] == 4
    assert card["digit_accuracy"] == 3 / 4
    assert card["sum_accuracy"] == 3 / 4  # items 0, 1, 3
    assert card["consistency"] == 2 / 4  # sum = digit + number for items 0 and 1 only
    assert card["per_digit_accuracy"] == {"1": 1.0, "2": 1.0, "3": 1.0, "4": 0.0}  # digits without images left out


def test_all_pairs_accuracy_scores_each_image_with_every_number():
    truth = torch.tensor([0, 9])
    pair_sums = torch.stack([torch.arange(10), torch.arange(9, 19)])  # every sum right
    assert all_pairs_accuracy(pair_sums, truth) == 1.0
    pair_sums[0, 3] = 4  # 0 + 3 read as 4
    pair_sums[1, 9] = 17  # 9 + 9 read as 17
    assert all_pairs_accuracy(pair_sums, truth) == 18 / 20
