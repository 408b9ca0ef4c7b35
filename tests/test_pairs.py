"""Held-out combinations: the --hold-out-pairs spec, training and validation that never meet them (one process
and each rank of a 2-process world), and the evaluation that scores them apart."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from digitsum.config import ModelConfig, TrainConfig
from digitsum.errors import ConfigError
from digitsum.evaluate import held_out_figures
from digitsum.mixture import VAL_NUMBER_SEED, NumberMixture, fixed_numbers, split_train_val
from digitsum.pairs import avoid_pairs, pair_mask, parse_pairs
from helpers import assert_one_line_error, run_cli

HELD_KEYS = {"held_out_pairs", "held_out_n", "seen_n", "held_out_sum_accuracy", "seen_sum_accuracy",
             "held_out_consistency", "seen_consistency", "held_out_digit_plus_number_accuracy",
             "seen_digit_plus_number_accuracy"}


def test_a_list_of_pairs_is_read_sorted_without_repeats():
    assert parse_pairs(" 7+5, 3+9,7+5") == ((3, 9), (7, 5))
    assert parse_pairs("") == ()


def test_random_k_draws_k_distinct_pairs_the_same_every_time():
    ten = parse_pairs("random:10")
    assert len(set(ten)) == 10 and ten == parse_pairs("random:10")
    assert set(parse_pairs("random:3")) <= set(parse_pairs("random:20"))  # one fixed order, cut at K


def test_sum_s_holds_out_every_pair_of_that_sum():
    assert parse_pairs("sum:3") == ((0, 3), (1, 2), (2, 1), (3, 0))
    assert parse_pairs("sum:18") == ((9, 9),)
    assert len(parse_pairs("sum:9")) == 10


@pytest.mark.parametrize(("spec", "fragment"), [
    ("7+12", "'7+12' is not D+N"),
    ("7-5", "'7-5' is not D+N"),
    ("sum:19", "a sum is 0-18, got 19"),
    ("sum:x", "S of sum:S must be a whole number"),
    ("random:100", "random:K holds out 1 to 99"),
    ("random:0", "random:K holds out 1 to 99"),
    ("pairs:3", "give D+N pairs"),
    (",".join(f"{d}+{n}" for d in range(10) for n in range(10)), "all 100 combinations"),
    (",".join(f"4+{n}" for n in range(10)), "every number for digit 4"),
])
def test_bad_specs_are_config_errors(spec, fragment):
    with pytest.raises(ConfigError, match="--hold-out-pairs") as raised:
        parse_pairs(spec)
    assert fragment in str(raised.value) and "\n" not in str(raised.value)


@pytest.mark.parametrize("spec", ["7+12", "sum:19", "random:100"])
def test_train_refuses_a_bad_spec_in_one_line_exit_2(capsys, tmp_path, spec):
    code, _, err = run_cli(capsys, "train", "--hold-out-pairs", spec, "--out", tmp_path / "run")
    assert code == 2
    assert_one_line_error(err, "--hold-out-pairs")
    assert not (tmp_path / "run").exists()


def test_resume_refuses_hold_out_pairs(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "--resume", tmp_path, "--hold-out-pairs", "sum:9")
    assert code == 2
    assert_one_line_error(err, "drop --hold-out-pairs")


def test_an_old_config_holds_nothing_out():
    old = {k: v for k, v in TrainConfig().to_dict().items() if k != "hold_out_pairs"}
    assert TrainConfig.from_dict(old).hold_out_pairs == ""


def test_redrawn_numbers_avoid_the_mask_and_stay_uniform_over_the_rest():
    mask = pair_mask(parse_pairs("3+0,3+1,3+2,3+3,3+4"))
    g = torch.Generator().manual_seed(0)
    digits, numbers = torch.full((50000,), 3), torch.randint(0, 10, (50000,), generator=g)
    redrawn = avoid_pairs(digits, numbers, mask, torch.Generator().manual_seed(1))
    counts = torch.bincount(redrawn, minlength=10)
    assert counts[:5].sum() == 0
    assert ((counts[5:] / 50000 - 0.2).abs() < 0.01).all()
    kept = ~mask[digits, numbers]
    assert torch.equal(redrawn[kept], numbers[kept])  # only held-out pairs change
    assert torch.equal(redrawn, avoid_pairs(digits, numbers, mask, torch.Generator().manual_seed(1)))


def training_pairs(mixture, cfg: TrainConfig, rank: int = 0, world_size: int = 1) -> torch.Tensor:
    """(digit, number) of every digit in one whole epoch this rank trains on -> (M, 2)."""
    seen = []
    for batch in mixture.epoch_batches(1, cfg, rank, world_size):
        real = torch.ones(len(batch.digits), dtype=torch.bool) if batch.real is None else batch.real
        assert torch.equal(batch.sums[real], batch.digits[real] + batch.numbers[real])
        seen.append(torch.stack([batch.digits[real], batch.numbers[real]], 1))
    return torch.cat(seen)


@pytest.fixture(scope="module")
def held_mixtures(mnist):
    cfg = TrainConfig(hold_out_pairs="random:10", negatives=0.125)
    train_mix, val_mix = split_train_val(mnist["train"], cfg)
    bank = mnist["train"].images[:200]  # any bank: non-digits have no digit to pair
    return cfg, NumberMixture(train_mix.images, train_mix.labels, negatives=bank), val_mix


def test_no_training_or_validation_item_meets_a_held_out_pair(held_mixtures):
    cfg, train_mix, val_mix = held_mixtures
    mask = pair_mask(parse_pairs(cfg.hold_out_pairs))
    pairs = training_pairs(train_mix, cfg)
    assert len(pairs) == train_mix.steps_per_epoch(cfg.batch_size) * cfg.batch_size  # the whole epoch
    assert not mask[pairs[:, 0], pairs[:, 1]].any()
    assert (~mask).sum() == len(torch.unique(pairs[:, 0] * 10 + pairs[:, 1]))  # every other pair is trained on
    assert not mask[val_mix.labels, val_mix.numbers].any()
    original = fixed_numbers(len(val_mix), VAL_NUMBER_SEED)  # validation changes only the pairs it must
    kept = ~mask[val_mix.labels, original]
    assert torch.equal(val_mix.numbers[kept], original[kept])


def test_each_rank_of_two_avoids_them_and_together_they_train_what_one_process_does(held_mixtures):
    cfg, train_mix, _ = held_mixtures
    mask = pair_mask(parse_pairs(cfg.hold_out_pairs))
    ranks = [training_pairs(train_mix, cfg, rank, 2) for rank in (0, 1)]
    for pairs in ranks:
        assert not mask[pairs[:, 0], pairs[:, 1]].any()
    together = torch.cat(ranks)
    one = training_pairs(train_mix, cfg)
    key = lambda p: torch.sort(p[:, 0] * 10 + p[:, 1]).values  # noqa: E731
    assert torch.equal(key(together), key(one))  # the same draws, split across ranks


def test_without_held_out_pairs_the_numbers_are_those_drawn_before(mnist):
    cfg = TrainConfig(limit=3000)
    plain, val = split_train_val(mnist["train"], cfg)
    assert torch.equal(val.numbers, fixed_numbers(len(val), VAL_NUMBER_SEED))
    g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + 1)  # mixture.epoch_generator
    order = torch.randperm(len(plain), generator=g)
    numbers = torch.randint(0, 10, (len(plain),), generator=g)
    first = next(plain.epoch_batches(1, replace(cfg, batch_size=64)))
    assert torch.equal(first.numbers, numbers[:64]) and torch.equal(first.digits, plain.labels[order[:64]])


def test_held_out_figures_score_the_cells_of_held_out_pairs_apart():
    truth = torch.tensor([3, 7])
    digits = torch.tensor([[3] * 10, [1] * 10])  # image 0 read right, image 1 read as 1
    sums = truth[:, None] + torch.arange(10)[None, :]  # every sum right...
    sums[0, 5] = 0  # ...but 3+5, held out
    card = held_out_figures(digits, sums, truth, ((3, 5), (7, 2)))
    assert card["held_out_pairs"] == ["3+5", "7+2"] and card["held_out_n"] == 2 and card["seen_n"] == 18
    assert card["held_out_sum_accuracy"] == 0.5 and card["seen_sum_accuracy"] == 1.0
    assert card["held_out_consistency"] == 0.0  # 3+5 wrong; 7+2 right but the digit head read 1
    assert card["seen_consistency"] == 9 / 18
    assert card["held_out_digit_plus_number_accuracy"] == 0.5 and card["seen_digit_plus_number_accuracy"] == 0.5


@pytest.fixture(scope="module")
def held_run(mnist_dir, tmp_path_factory):
    from digitsum.training import train

    out = tmp_path_factory.mktemp("runs") / "held"
    cfg = TrainConfig(epochs=1, batch_size=64, limit=3000, val_size=1000, threads=1, hold_out_pairs="sum:9")
    train(ModelConfig(), cfg, out, data_dir=str(mnist_dir))
    return out, cfg


def test_a_run_records_its_pairs_and_scores_them_apart(held_run, mnist, capsys, mnist_dir):
    out, cfg = held_run
    assert json.loads((out / "config.json").read_text())["train"]["hold_out_pairs"] == "sum:9"
    metrics = json.loads((out / "metrics.json").read_text())
    assert HELD_KEYS <= set(metrics)
    assert metrics["held_out_pairs"] == [f"{d}+{9 - d}" for d in range(10)]
    assert metrics["held_out_n"] == 10000 and metrics["seen_n"] == 90000  # one cell per test image
    seen, held = metrics["seen_sum_accuracy"], metrics["held_out_sum_accuracy"]
    assert abs(0.9 * seen + 0.1 * held - metrics["all_pairs_sum_accuracy"]) < 1e-9  # the same cells, split in two
    code, stdout, _ = run_cli(capsys, "evaluate", "--checkpoint", out, "--data-dir", mnist_dir, "--json")
    assert code == 0
    assert {k: v for k, v in json.loads(stdout).items() if k in HELD_KEYS} == {k: metrics[k] for k in HELD_KEYS}


def test_a_run_without_held_out_pairs_has_none_of_the_keys(small_run):
    assert not HELD_KEYS & set(json.loads((small_run / "metrics.json").read_text()))


def test_train_config_refuses_a_spec_that_is_not_text():
    with pytest.raises(ConfigError, match="--hold-out-pairs"):
        replace(TrainConfig(), hold_out_pairs=7)


def test_the_report_of_a_held_out_run_outlines_its_cells_and_draws_the_embeddings(held_run, mnist_dir, tmp_path):
    from digitsum.report import report_run
    from digitsum.report.figures import draw_pair_accuracy

    report = report_run(held_run[0], tmp_path / "report", mnist_dir)
    assert {"pair_accuracy.png", "embeddings.png"} <= set(report.figures)
    grid = torch.full((10, 10), 0.99).numpy()
    mask = pair_mask(parse_pairs("sum:9")).numpy()
    assert draw_pair_accuracy(grid, mask) != draw_pair_accuracy(grid)  # the outlines are drawn
