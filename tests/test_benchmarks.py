"""Benchmarks: the notebook replica, time to accuracy, the profile and run_all work, at tiny size.

No timing is asserted: these prove the scripts run and report what they claim to measure.
"""

from __future__ import annotations

import platform
import re
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from digitsum.config import TrainConfig
from digitsum.errors import ImageError
from digitsum.mixture import normalize

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))  # benchmarks/ is a folder of scripts, not a package

import bench_profile  # noqa: E402
import bench_recipe  # noqa: E402
import bench_serve_profile  # noqa: E402
import bench_time_to_accuracy as tta  # noqa: E402
import compositional  # noqa: E402
import fast_recipe_networks  # noqa: E402
import handwriting  # noqa: E402
import nondigits  # noqa: E402
import notebook  # noqa: E402
import passed  # noqa: E402
import preprocess_ab  # noqa: E402
import run_all  # noqa: E402
import summary  # noqa: E402
import verdict_ensemble  # noqa: E402
import verdict_scores  # noqa: E402
import verdict_training  # noqa: E402
import verdict_weights  # noqa: E402
import writers  # noqa: E402


@pytest.fixture(autouse=True)
def one_thread():
    """The CPU is shared: one torch thread, restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def restore_path(monkeypatch):
    """run_all puts its folder on sys.path; undo that after the test."""
    monkeypatch.setattr(sys, "path", list(sys.path))


def test_notebook_item_is_a_normalised_image_with_a_fresh_random_number(mnist):
    train = mnist["train"]
    dataset = notebook.NotebookDataset(train.images[:10], train.labels[:10], seed=0)
    image, number, digit, total = dataset[3]
    assert image.dtype == torch.float32 and image.shape == (1, 28, 28)
    torch.testing.assert_close(image, normalize(train.images[3:4])[0])
    assert digit == int(train.labels[3]) and total == digit + number
    numbers = {dataset[3][1] for _ in range(200)}  # drawn anew on every read, as in the notebook
    assert numbers == set(range(10))


def test_notebook_loader_yields_shuffled_batches_of_100(mnist):
    train = mnist["train"]
    images, numbers, digits, sums = next(iter(notebook.notebook_loader(train.images[:300], train.labels[:300])))
    assert images.shape == (100, 1, 28, 28) and images.dtype == torch.float32
    assert numbers.dtype == digits.dtype == sums.dtype == torch.int64
    assert torch.equal(sums, digits + numbers)
    assert not torch.equal(digits, train.labels[:100])  # shuffled


def test_run_epoch_trains_and_stops_after_max_steps(mnist):
    train = mnist["train"]
    model, opt = notebook.seed_model_and_optimizer()
    before = [p.detach().clone() for p in model.parameters()]
    served = []

    def batches():
        for batch in notebook.notebook_loader(train.images[:1000], train.labels[:1000]):
            served.append(batch)
            yield batch

    assert notebook.run_epoch(model, opt, batches(), max_steps=3) > 0
    assert len(served) == 3
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_time_to_is_the_first_point_reaching_the_target_on_digit_and_sum():
    history = [tta.Point(0.25, 10.0, 0.991, 0.980), tta.Point(0.5, 20.0, 0.989, 0.992),
               tta.Point(0.75, 30.0, 0.995, 0.995)]
    assert tta.time_to(history, 0.99).epoch == 0.75  # the first point misses the sum, the second the digit
    assert tta.time_to(history, 0.98).seconds == 10.0
    assert tta.time_to(history, 0.996) is None


def test_time_to_accuracy_scores_every_recipe_at_each_quarter_epoch(mnist_dir):
    quick = {"limit": 1200, "epochs": 2, "test": 500, "val_size": 500, "seeds": 1}
    result = tta.measure(str(mnist_dir), threads=1, quick=quick)
    runs = result["runs"]
    assert set(runs) == set(tta.RECIPES)
    for name, (points,) in runs.items():
        assert [p.epoch for p in points] == [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0], name  # the same for all
        seconds = [p.seconds for p in points]
        assert seconds == sorted(seconds) and seconds[0] > 0, name  # cumulative training time
        assert points[-1].digit > 0.25, name  # learned: chance is 0.10
    assert result["setup"] == {"threads": 1, "seeds": 1, "notebook_images": 1200, "digitsum_images": 1200,
                               "test_images": 500}
    section = tta.render(result, "python benchmarks/bench_time_to_accuracy.py --quick")
    notebook, default = runs["notebook replica"][0][-1], runs["digitsum default"][0][-1]
    assert f"| final test digit | {tta.pct(notebook.digit)} | {tta.pct(default.digit)} |" in section
    assert "| time to >= 99.50% digit and sum |" in section and "Speed-up of each digitsum recipe" in section


def test_worst_seed_is_the_lowest_lower_head_and_names_its_seed_and_head():
    assert summary.worst_seed([(0.9952, 0.9955), (0.9951, 0.9945), (0.9940, 0.9960)]) == "99.40% (seed 2, digit)"
    assert summary.worst_seed([(0.9952, 0.9955), (0.9951, 0.9945)]) == "99.45% (seed 1, sum)"
    assert summary.worst_seed([(0.995, 0.995)]) == "99.50% (seed 0, digit)"  # a tie between the heads: the digit
    assert summary.worst_seed([(0.996, 0.994), (0.994, 0.996)]) == "99.40% (seed 0, sum)"  # a tie of seeds: the first


def test_time_to_accuracy_names_the_worst_seed_and_the_time_relative_to_the_replica():
    def seed(digit: float, total: float, seconds: float) -> list:
        return [tta.Point(0.5, seconds / 2, digit - 0.01, total - 0.01), tta.Point(1.0, seconds, digit, total)]

    runs = {"notebook replica": [seed(0.98, 0.97, 50), seed(0.98, 0.975, 60)],
            "digitsum default": [seed(0.996, 0.996, 100), seed(0.9958, 0.9957, 110)],
            "digitsum fast": [seed(0.9952, 0.9955, 20), seed(0.9951, 0.9945, 22)]}
    setup = {"threads": 2, "seeds": 2, "notebook_images": 60000, "digitsum_images": 55000, "test_images": 10000}
    section = tta.render({"runs": runs, "setup": setup}, "python benchmarks/bench_time_to_accuracy.py")
    assert ("| worst seed: the lower of its final digit and sum | 97.00% (seed 0, sum) | 99.57% (seed 1, sum) "
            "| 99.45% (seed 1, sum) |") in section
    ratio = "| training time, relative to the notebook replica's (ratio of the medians) | 1.00x | 1.91x | 0.38x |"
    assert ratio in section


def test_profile_splits_an_epoch_into_phases_and_ranks_operators(mnist):
    profiles = [bench_profile.profile_digitsum(mnist["train"], threads=1, steps=2, warmup=1, limit=600),
                bench_profile.profile_notebook(mnist["train"], steps=3, warmup=1, limit=600)]
    assert [(p.steps, p.warmup) for p in profiles] == [(2, 1), (3, 1)]
    for p in profiles:
        assert set(p.phases) == set(notebook.PHASES) and all(s > 0 for s in p.phases.values())
        seconds = [op[2] for op in p.ops]
        assert seconds == sorted(seconds, reverse=True) and len(p.ops) == bench_profile.TOP_OPS
        assert any("convolution" in name for name, _, _ in p.ops)
    section = bench_profile.render(profiles, {"A": [2.0, 3.0, 4.0], "B": [1.0, 2.0, 9.0]}, 1, "cmd")
    assert "| forward |" in section and "**1.50x**" in section  # ratio of medians: 3.0 / 2.0


def test_profile_counts_only_the_steps_the_data_allows(mnist):
    profile = bench_profile.profile_notebook(mnist["train"], steps=10, warmup=1, limit=300)  # 3 batches of 100
    assert (profile.steps, profile.warmup) == (2, 1)


def test_pipeline_ab_runs_both_arms_interleaved(mnist):
    times = bench_profile.pipeline_ab(mnist["train"], pairs=2, max_steps=2, limit=400)
    assert len(times["A"]) == len(times["B"]) == 2
    assert all(t > 0 for t in times["A"] + times["B"])


def write_bench(folder: Path, name: str, body: str) -> None:
    (folder / f"bench_{name}.py").write_text(f'"""A generated benchmark."""\n\n\ndef run(quick=False):\n{body}\n')


def test_run_all_runs_the_headline_first_then_the_rest_by_name(tmp_path):
    for name in ("zeta", "serve", "profile", "recipe", "time_to_accuracy", "alpha"):
        write_bench(tmp_path, name, "    return ''")
    assert run_all.discover(tmp_path) == ["time_to_accuracy", "recipe", "profile", "serve", "alpha", "zeta"]


def test_run_all_writes_header_and_every_section_and_reports_failures(tmp_path, capsys, restore_path):
    write_bench(tmp_path, "good", "    return '## Good\\n\\nquick=' + str(quick)")
    write_bench(tmp_path, "broken", "    raise RuntimeError('no data here')")
    out = tmp_path / "out.md"
    assert run_all.main(["--quick", "--output", str(out)], folder=tmp_path) == 1
    text = out.read_text()
    assert text.startswith("# digitsum benchmark results")
    assert "run_all.py --quick --output" in text and f"| torch | {torch.__version__} |" in text
    assert f"torch CPU capability {torch.backends.cpu.get_cpu_capability()} |" in text  # the times depend on it
    assert "## Good\n\nquick=True" in text
    assert "## broken\n\n**FAILED**: RuntimeError: no data here" in text
    assert "broken failed" in capsys.readouterr().err
    assert not list(tmp_path.glob(".out.md.*"))  # written atomically: no temporary left


def test_run_all_names_the_cpu_with_its_family_and_model_numbers():
    """A VM's "AMD EPYC" alone does not tell two hosts a generation apart: the machine line adds cpuinfo's numbers."""
    info = {"model name": "AMD EPYC", "cpu family": "26", "model": "2", "stepping": "1"}
    assert run_all.cpu_model(info) == "AMD EPYC (family 26, model 2, stepping 1)"
    assert run_all.cpu_model({"model name": "Intel Xeon"}) == "Intel Xeon"  # nothing more to add
    # no /proc/cpuinfo: what platform knows
    assert run_all.cpu_model({}) == (platform.processor() or platform.machine())


def test_run_all_only_prints_one_benchmark_and_writes_nothing(tmp_path, capsys, restore_path):
    write_bench(tmp_path, "one", "    return '## One'")
    write_bench(tmp_path, "two", "    return '## Two'")
    assert run_all.main(["--only", "two"], folder=tmp_path) == 0
    printed = capsys.readouterr().out
    assert "## Two" in printed and "## One" not in printed
    assert not (tmp_path / "RESULTS.md").exists()


def test_run_all_quick_prints_and_a_full_run_writes_results(tmp_path, capsys, restore_path):
    write_bench(tmp_path, "one", "    return '## One, quick=' + str(quick)")
    assert run_all.main(["--quick"], folder=tmp_path) == 0
    assert "## One, quick=True" in capsys.readouterr().out
    assert not (tmp_path / "RESULTS.md").exists()  # a smoke run never replaces the measured results
    assert run_all.main([], folder=tmp_path) == 0
    assert "## One, quick=False" in (tmp_path / "RESULTS.md").read_text()


def test_run_all_rejects_an_unknown_benchmark_in_one_line(tmp_path, capsys):
    write_bench(tmp_path, "one", "    return '## One'")
    assert run_all.main(["--only", "nope"], folder=tmp_path) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no benchmark named 'nope'; choose one of one" in err


def test_quick_profile_runs_the_real_benchmark_through_run_all(mnist_dir, capsys, monkeypatch):
    monkeypatch.setenv("DIGITSUM_DATA", str(mnist_dir))  # --data-dir sets it; restored afterwards
    assert run_all.main(["--quick", "--only", "profile", "--data-dir", str(mnist_dir)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("# digitsum benchmark results")
    assert "## Where the time goes" in printed and "### The pipeline alone" in printed


def test_recipe_variants_undo_one_choice_each(mnist):
    cfg = TrainConfig()
    default, *_ = bench_recipe.build(bench_recipe.DEFAULT, cfg, 10)
    previous, opt, sched = bench_recipe.build(bench_recipe.PREVIOUS, cfg, 10)
    assert default.image_branch[1][0].kernel_size == (3, 3) and previous.image_branch[1][0].kernel_size == (5, 5)
    assert not default.image_branch[1][0].weight.is_contiguous()  # channels-last
    assert default.fusion.in_features != previous.fusion.in_features  # product vs concat
    assert not opt.defaults["fused"]
    rates = []
    for _ in range(100):  # 10 epochs of 10 steps: the previous default warms up for a quarter of them
        opt.step()
        rates.append(sched.get_last_lr()[0])
        sched.step()
    assert rates.index(max(rates)) == 24 and max(rates) == pytest.approx(cfg.lr)
    _, fused, _ = bench_recipe.build(bench_recipe.Variant("x", fused_adamw=True), cfg, 10)
    assert fused.defaults["fused"]
    unpooled, *_ = bench_recipe.build(bench_recipe.Variant("x", pool_first=False), cfg, 10)
    assert [type(m).__name__ for m in unpooled.image_branch[0]] == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"]


def test_quick_recipe_benchmark_reports_every_variant(mnist_dir):
    section = bench_recipe.run(quick=True, data_dir=str(mnist_dir), threads=1)
    for v in bench_recipe.STEP_VARIANTS[1:]:
        assert f"| {v.name} | " in section
    for v in bench_recipe.EARLY_VARIANTS:
        assert section.count(f"| {v.name} | ") == (2 if v.name == "default" else 1)
    fast = next(line for line in section.splitlines() if line.startswith("| fast | "))
    assert re.search(r"\(seed 0, (digit|sum)\) \| [\d.]+ \| \d+\.\d\dx \|$", fast)  # worst seed, ratio to the replica
    assert "the notebook replica's 10 epochs trained in the same run" in section


def test_fast_recipe_networks_trains_each_width_and_names_the_kept_epoch_and_the_ratio(mnist_dir, capsys):
    assert fast_recipe_networks.main(["--quick", "--seeds", "1", "--threads", "1", "--conv3", "16", "32",
                                      "--late-agreement", "4", "--data-dir", str(mnist_dir)]) == 0
    table = capsys.readouterr().out
    rows = {line.split(" | ")[0]: line for line in table.splitlines() if line.startswith(("| 16", "| 32"))}
    assert set(rows) == {"| 16", "| 32", "| 16, late agreement 4", "| 32, late agreement 4"}
    assert "--late-agreement 4" in table
    for row in rows.values():  # seed 0's digit / sum, worst heads, the kept epoch (1 of 1), seconds, ratio
        assert re.fullmatch(r"\| \d+(, late agreement 4)? \| [\d.]+ / [\d.]+ \| [\d.]+% \(seed 0, (digit|sum)\) \| "
                            r"[\d.]+% \(seed 0, (digit|sum)\) \(1\) \| [\d.]+ \| \d+\.\d\dx \|", row), row
    assert rows["| 16"].split(" | ")[1] != rows["| 32"].split(" | ")[1]  # two networks, two sets of figures
    assert f"torch CPU capability {torch.backends.cpu.get_cpu_capability()}" in table


def test_fast_recipe_networks_trains_each_change_on_its_own_beside_the_recipe(mnist_dir, capsys):
    assert fast_recipe_networks.main(["--quick", "--seeds", "1", "--threads", "1", "--conv3", "16", "--change",
                                      "hidden=8", "lr=0.002", "--data-dir", str(mnist_dir)]) == 0
    table = capsys.readouterr().out
    rows = {line.split(" | ")[0]: line.split(" | ")[1] for line in table.splitlines() if line.startswith("| 16")}
    assert set(rows) == {"| 16", "| 16, hidden 8", "| 16, lr 0.002"}
    assert len(set(rows.values())) == 3  # three runs, three sets of figures
    assert "--change hidden=8 lr=0.002" in table


def test_fast_recipe_networks_reads_a_change_as_its_fields_type_and_refuses_others_in_one_line(capsys):
    parse, configs = fast_recipe_networks.parse_change, fast_recipe_networks.configs
    assert parse("epochs=4") == ("epochs", 4) and parse("stretch=0.35") == ("stretch", 0.35)
    model_cfg, cfg = configs(64, 3, 2, {}, parse("hidden=256"))
    assert (model_cfg.hidden, model_cfg.conv3, cfg.seed, cfg.epochs) == (256, 64, 3, 3)  # the network changed
    model_cfg, cfg = configs(128, 0, 2, {}, parse("epochs=4"))
    assert (model_cfg.hidden, model_cfg.conv3, cfg.epochs, cfg.batch_size) == (128, 128, 4, 256)  # the recipe
    for bad, says in (("conv3=96", "other than conv3"), ("epochs=four", "epochs takes a whole number"),
                      ("nothing=1", "got 'nothing=1'"), ("epochs=0", "--epochs must be at least 1")):
        assert fast_recipe_networks.main(["--change", bad]) == 2
        err = capsys.readouterr().err
        assert says in err and err.count("\n") == 1, err


def test_late_agreement_ramps_the_agreement_weight_over_the_last_third_and_only_while_it_runs():
    from digitsum.config import recipe
    from digitsum.mixture import Batch
    from digitsum.model import Logits
    from digitsum.training import StepDone, loop
    from digitsum.training.objective import digitsum_loss

    weight = fast_recipe_networks.agreement_weight
    assert weight(0.5, None, 0.99) == 0.5  # no ramp: the recipe's weight throughout
    assert weight(0.5, 4.0, 0.0) == weight(0.5, 4.0, 2 / 3) == 0.5
    assert weight(0.5, 4.0, 5 / 6) == pytest.approx(2.25) and weight(0.5, 4.0, 1.0) == pytest.approx(4.0)
    g = torch.Generator().manual_seed(0)
    digits, numbers = torch.randint(0, 10, (8,), generator=g), torch.randint(0, 10, (8,), generator=g)
    batch = Batch(torch.zeros(8, 1, 28, 28), numbers, digits, digits + numbers)
    outputs = Logits(torch.randn(8, 10, generator=g), torch.randn(8, 19, generator=g), None)
    cfg, before = recipe("fast"), loop.digitsum_loss
    assert cfg.epochs == 3
    with fast_recipe_networks.late_agreement(4.0) as on_step:
        assert torch.equal(loop.digitsum_loss(outputs, batch, cfg), digitsum_loss(outputs, batch, cfg))  # step 0
        for _ in range(25):  # 25 of 3 x 10 steps: progress 5/6
            on_step(StepDone(step=1, steps=10, seconds=0.0, model=None))
        assert torch.allclose(loop.digitsum_loss(outputs, batch, cfg),
                              digitsum_loss(outputs, batch, replace(cfg, consistency=2.25)))
        assert not torch.allclose(loop.digitsum_loss(outputs, batch, cfg), digitsum_loss(outputs, batch, cfg))
    assert loop.digitsum_loss is before


def test_compositional_is_run_by_run_all_and_trains_one_real_run(mnist_dir):
    assert "compositional" in run_all.discover()
    figures = compositional.train_one("shift fusion (--fusion shift)", "sum:9", 0, True, str(mnist_dir))
    assert set(compositional.FIGURES) <= set(figures)
    section = compositional.render({("shift fusion (--fusion shift)", "sum:9"): [figures]}, "cmd", 1, True)
    assert "| shift fusion (--fusion shift) | `sum:9` |" in section and "`cmd`" in section


def test_writers_training_splits_become_extra_digits_files_of_every_row(tmp_path):
    from digitsum.extra import read_extra_digits

    files = writers.training_splits(tmp_path, quick=True)  # the first 300 of USPS train and optdigits .tra
    extra = read_extra_digits([files["usps"], files["optdigits"]])
    usps, opt = handwriting.usps(split="train"), handwriting.optdigits(files=("optdigits-orig.tra",))
    assert extra.labels.tolist() == usps.labels[:300].tolist() + opt.labels[:300].tolist()
    assert extra.images.shape == (600, 28, 28) and int(extra.images.amax()) == 255


def test_verdict_probe_adds_stretched_copies_of_some_digits_with_their_labels():
    from types import SimpleNamespace

    images = torch.zeros(40, 28, 28, dtype=torch.uint8)
    images[:, 10:18, 12:16] = 255  # a short bar, far from filling the 20x20 box
    labels = torch.arange(40) % 10
    out = verdict_weights.with_stretched(SimpleNamespace(images=images, labels=labels), 0.5,
                                         torch.Generator().manual_seed(0))
    added = len(out.labels) - len(labels)
    assert 0 < added < len(labels) and out.images.shape == (len(labels) + added, 28, 28)
    assert torch.equal(out.images[:40], images) and torch.equal(out.labels[:40], labels)
    ink = (out.images[40:] > 0).sum((1, 2))
    assert (ink >= 32).all() and (ink > 32).any()  # stretched toward the box: never less ink, mostly more


def test_verdict_training_variants_change_training_while_they_run_and_only_then(mnist):
    from digitsum import negatives
    from digitsum.training import loop, sources

    before = (negatives.BANK, negatives.draw_one, sources.BROAD_KINDS, loop.digitsum_loss)
    with verdict_training.variant("bank123+script+oe0.5"):
        assert negatives.BANK == 123 and loop.digitsum_loss is not before[3]
        assert sources.BROAD_KINDS == (*negatives.BROAD_KINDS[:-1], "script")  # one made-up-character slot
        train = mnist["train"]
        drawn = negatives.make_negatives(6, train.images[:500], train.labels[:500], seed=1, kinds=("script",))
    assert drawn.shape == (6, 28, 28) and all(int((d > 127).sum()) > 20 for d in drawn)  # ink, through to_mnist
    assert (negatives.BANK, negatives.draw_one, sources.BROAD_KINDS, loop.digitsum_loss) == before
    for wrong in ("script+scripts", "bank", "bank1.5", "bankinf", "oe", "oe-1", "bankx"):
        with pytest.raises(SystemExit, match="unknown variant"), verdict_training.variant(wrong):
            pass
    assert verdict_training.parse("base+bank500+oe0.25+script") == [("bank", 500), ("oe", 0.25), ("script", 0)]
    assert (negatives.BANK, negatives.draw_one, sources.BROAD_KINDS, loop.digitsum_loss) == before


def test_verdict_training_adds_the_embellished_kind_the_mlp_head_and_the_verdicts_weight_while_they_run(mnist):
    from digitsum import checkpoint, negatives
    from digitsum.config import ModelConfig
    from digitsum.training import loop, sources

    before = (negatives.draw_one, sources.BROAD_KINDS, loop.digitsum_loss, loop.build_model, checkpoint.build_model)
    assert verdict_training.parse("vw3+embellished+mlp") == [("vw", 3.0), ("embellished", 0), ("mlp", 0)]
    with verdict_training.variant("vw3+embellished+mlp"):
        assert sources.BROAD_KINDS == (*negatives.BROAD_KINDS, "embellished") and loop.digitsum_loss is not before[2]
        for build in (loop.build_model, checkpoint.build_model):  # trained and loaded with the same head
            head = build(ModelConfig(verdict=True)).verdict_head
            assert isinstance(head, torch.nn.Sequential) and head[0].out_features == verdict_training.MLP_HIDDEN
        assert build(ModelConfig(verdict=False)).verdict_head is None
        train = mnist["train"]
        drawn = negatives.make_negatives(6, train.images[:500], train.labels[:500], seed=1, kinds=("embellished",))
    assert drawn.shape == (6, 28, 28) and all(int((d > 127).sum()) > 20 for d in drawn)
    assert (negatives.draw_one, sources.BROAD_KINDS, loop.digitsum_loss, loop.build_model,
            checkpoint.build_model) == before
    for both in ("script+embellished", "embellished+script"):  # the same kinds in either order
        with verdict_training.variant(both):
            assert sources.BROAD_KINDS == (*negatives.BROAD_KINDS[:-1], "script", "embellished"), both
    for wrong in ("vw", "vw0", "mlp2", "embellish", "ls", "ls1", "ls-0.1"):
        with pytest.raises(SystemExit, match="unknown variant"), verdict_training.variant(wrong):
            pass


def test_verdict_training_chimera_joins_two_digits_of_other_classes_at_one_cut_while_it_runs(mnist):
    from digitsum import negatives
    from digitsum.training import sources

    train = mnist["train"]
    labels, images = train.labels[:500].numpy(), train.images[:500].numpy()
    rng = np.random.default_rng(0)
    for _ in range(200):
        first, second, cut, across = verdict_training.chimera_parts(labels, rng)
        assert labels[first] != labels[second] and 1 not in (labels[first], labels[second])
        assert cut in range(*verdict_training.CHIMERA_CUT)
    a, b = images[0], images[1]
    rows, columns = verdict_training.joined(a, b, 14, True), verdict_training.joined(a, b, 12, False)
    assert (rows[:14] == a[:14]).all() and (rows[14:] == b[14:]).all()
    assert (columns[:, :12] == a[:, :12]).all() and (columns[:, 12:] == b[:, 12:]).all()
    before = (negatives.draw_one, sources.BROAD_KINDS)
    with verdict_training.variant("chimera"):
        assert sources.BROAD_KINDS == (*negatives.BROAD_KINDS, "chimera")
        drawn = negatives.make_negatives(6, train.images[:500], train.labels[:500], seed=1, kinds=("chimera",))
    assert drawn.shape == (6, 28, 28) and all(int((d > 127).sum()) > 20 for d in drawn)
    assert (negatives.draw_one, sources.BROAD_KINDS) == before


def test_verdict_training_wide_builds_the_default_network_with_a_wider_third_convolution_only():
    from digitsum.config import TrainConfig, model_for

    cfg = TrainConfig(seed=3, threads=2)
    assert verdict_training.parse("wide128+bank500") == [("wide", 128), ("bank", 500)]
    assert verdict_training.network(cfg, "wide128+bank500") == replace(model_for(cfg), conv3=128)
    assert verdict_training.network(cfg, "base") == model_for(cfg) and model_for(cfg).conv3 == 64
    assert verdict_training.configured(cfg, "wide128") == cfg  # the recipe as it is
    for wrong in ("wide", "wide0", "wide96.5", "wide-8"):
        with pytest.raises(SystemExit, match="unknown variant"):
            verdict_training.parse(wrong)


def test_verdict_training_centre_pulls_each_digits_features_to_its_class_centre_while_it_runs(mnist):
    from digitsum.config import ModelConfig, TrainConfig
    from digitsum.mixture import Batch, normalize
    from digitsum.training import loop

    before = (loop.digitsum_loss, loop.build_model)
    assert verdict_training.parse("centre0.5") == [("centre", 0.5)]
    images = normalize(mnist["train"].images[:12])  # (12, 1, 28, 28)
    digits, numbers = mnist["train"].labels[:12], torch.arange(12) % 10
    real = torch.arange(12) < 10  # the last two as non-digits: the term reads the digits only
    batch = Batch(images, numbers, torch.where(real, digits, -100), torch.where(real, digits + numbers, -100), real)
    cfg = TrainConfig()
    with verdict_training.variant("centre0.5"):
        model = loop.build_model(ModelConfig(verdict=True))
        outputs = model(images, numbers)
        features = model.kept[:10]  # this forward pass's image features, kept by the hook
        assert torch.equal(features, model.features(images)[:10])
        extra = loop.digitsum_loss(outputs, batch, cfg) - before[0](outputs, batch, cfg)
        d = digits[:10]
        centres = torch.stack([features[d == k].mean(0) if (d == k).any() else torch.zeros(features.shape[1])
                               for k in range(10)])  # first step: the batch's class means
        assert torch.allclose(extra, 0.5 * (features - centres[d]).pow(2).mean(), atol=1e-5)
        assert float(extra.detach()) > 0
        extra.backward()
        assert model.image_branch[0][0].weight.grad.abs().sum() > 0  # the features learn from it
    assert (loop.digitsum_loss, loop.build_model) == before
    for wrong in ("centre", "centre0", "centre-1"):
        with pytest.raises(SystemExit, match="unknown variant"):
            verdict_training.parse(wrong)


def test_verdict_training_sphere_shrinks_the_non_digits_features_and_lifts_the_digits_while_it_runs(mnist):
    from digitsum.config import ModelConfig, TrainConfig
    from digitsum.mixture import Batch, normalize
    from digitsum.training import loop

    before = (loop.digitsum_loss, loop.build_model)
    assert verdict_training.parse("sphere0.5") == [("sphere", 0.5)]
    images = normalize(mnist["train"].images[:12])
    digits, numbers = mnist["train"].labels[:12], torch.arange(12) % 10
    real = torch.arange(12) < 9  # the last three as non-digits
    batch = Batch(images, numbers, torch.where(real, digits, -100), torch.where(real, digits + numbers, -100), real)
    cfg = TrainConfig()
    with verdict_training.variant("sphere0.5"):
        model = loop.build_model(ModelConfig(verdict=True))
        outputs = model(images, numbers)
        square = model.kept.pow(2).mean(1)
        extra = loop.digitsum_loss(outputs, batch, cfg) - before[0](outputs, batch, cfg)
        short = (verdict_training.SPHERE - square[:9].sqrt()).clamp_min(0).pow(2).mean()
        assert torch.allclose(extra, 0.5 * (square[9:].mean() + short), atol=1e-5) and float(extra.detach()) > 0
        all_digits = Batch(images, numbers, digits, digits + numbers, torch.ones(12, dtype=torch.bool))
        assert torch.equal(loop.digitsum_loss(outputs, all_digits, cfg), before[0](outputs, all_digits, cfg))
    assert (loop.digitsum_loss, loop.build_model) == before
    for wrong in ("sphere", "sphere0", "sphere-2"):
        with pytest.raises(SystemExit, match="unknown variant"):
            verdict_training.parse(wrong)


def test_verdict_training_rot_teaches_a_rotation_head_from_the_batchs_turned_digits(mnist):
    from digitsum import checkpoint
    from digitsum.config import ModelConfig, TrainConfig
    from digitsum.mixture import Batch, normalize
    from digitsum.training import loop

    before = (loop.digitsum_loss, loop.build_model, checkpoint.build_model)
    assert verdict_training.parse("rot0.5") == [("rot", 0.5)]
    images = normalize(mnist["train"].images[:8])  # (8, 1, 28, 28)
    digits, numbers = mnist["train"].labels[:8], torch.arange(8) % 10
    batch = Batch(images, numbers, digits, digits + numbers)
    cfg = TrainConfig()
    with verdict_training.variant("rot0.5"):
        model = loop.build_model(ModelConfig(verdict=True))  # training's network: the term reads this one
        assert model.rotation_head.out_features == 4
        assert checkpoint.build_model(ModelConfig(verdict=True)).rotation_head.out_features == 4  # loads it back
        outputs = model(images, numbers)
        extra = loop.digitsum_loss(outputs, batch, cfg) - before[0](outputs, batch, cfg)
        turns = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])  # items 0 4 | 1 5 | 2 6 | 3 7, each group turned t times
        turned = torch.cat([images[[t, t + 4]].rot90(t, dims=(2, 3)) for t in range(4)])
        expected = 0.5 * torch.nn.functional.cross_entropy(model.rotation_head(model.features(turned)), turns)
        assert torch.allclose(extra, expected, atol=1e-5) and float(extra.detach()) > 0
        extra.backward()
        assert model.rotation_head.weight.grad.abs().sum() > 0  # the head learns, and so do the features
        assert model.image_branch[0][0].weight.grad.abs().sum() > 0
    assert (loop.digitsum_loss, loop.build_model, checkpoint.build_model) == before
    for both in ("rot0.5+mlp", "mlp+rot0.5"):  # either order: trained and loaded with both heads
        with verdict_training.variant(both):
            for build in (loop.build_model, checkpoint.build_model):
                model = build(ModelConfig(verdict=True))
                assert model.rotation_head.out_features == 4 and isinstance(model.verdict_head, torch.nn.Sequential)
    for wrong in ("rot", "rot0", "rot-1"):
        with pytest.raises(SystemExit, match="unknown variant"), verdict_training.variant(wrong):
            pass


def test_verdict_training_scores_a_rot_runs_turns_alone_and_with_the_rule(mnist, mnist_dir, tmp_path):
    from digitsum.checkpoint import load_checkpoint
    from digitsum.config import TrainConfig, model_for
    from digitsum.mixture import normalize
    from digitsum.training import train

    cfg = TrainConfig(seed=0, threads=1, limit=1200, epochs=1, val_size=300)
    images = mnist["test"].images.numpy()
    noise = np.random.default_rng(0).integers(0, 256, (60, 28, 28), dtype=np.uint8)
    data = {"D:MNIST test": images[:200], "D:USPS test": images[200:300], "N:photographs, whole": noise[:20],
            "N:" + verdict_training.nondigits.SCRIBBLES: noise[20:40],
            "N:" + verdict_training.nondigits.OMNIGLOT: noise[40:]}
    with verdict_training.variant("rot0.5"):
        train(model_for(cfg), cfg, tmp_path, data_dir=str(mnist_dir))
        model = load_checkpoint(tmp_path).model.eval()
        scores = verdict_training.turns_score(model, images[:5])
        with torch.inference_mode():  # by hand: the log-probability of each turn, summed over the four
            x = normalize(torch.from_numpy(images[:5]))
            expected = sum(model.rotation_head(model.features(x.rot90(t, dims=(2, 3)))).log_softmax(1)[:, t]
                           for t in range(4))
        assert np.allclose(scores, expected.numpy(), atol=1e-5) and (scores < 0).all()
        rows = verdict_training.measure(str(tmp_path), data, mnist["train"].images[-300:].numpy())
    assert set(rows) == {"", ", turns' score", ", rule + turns' score"}  # the shipped verdict's, then the turns'
    for row in rows.values():
        assert list(row) == ["MNIST digit / sum", "MNIST test kept", "USPS test kept", "far from any digit, pooled",
                             "scribbles", "Omniglot non-Latin"]
        assert all(re.fullmatch(r"[\d.]+ / [\d.]+%", row[k]) for k in list(row)[3:])


def test_verdict_training_ls_changes_the_recipes_label_smoothing_and_nothing_else():
    from digitsum.config import TrainConfig
    from digitsum.training import loop

    base = TrainConfig(seed=3)
    assert verdict_training.parse("ls0") == [("ls", 0.0)]
    assert verdict_training.configured(base, "ls0") == replace(base, label_smoothing=0.0)
    assert verdict_training.configured(base, "bank500+ls0.05").label_smoothing == 0.05
    assert verdict_training.configured(base, "bank500") == base
    before = loop.digitsum_loss
    with verdict_training.variant("ls0"):  # a config value only: training's code is untouched
        assert loop.digitsum_loss is before


def test_an_embellished_digit_keeps_its_ink_and_adds_new_ink_away_from_it(mnist):
    from PIL import Image

    train = mnist["train"]
    three = int(np.flatnonzero(train.labels.numpy() == 3)[0])
    digits = (np.array([3, 1]), train.images[[three, three]].numpy())  # a 1 is never embellished
    own = np.asarray(Image.fromarray(digits[1][0]).resize((84, 84), Image.Resampling.BILINEAR)) > 127
    rng = np.random.default_rng(0)
    for _ in range(20):
        ink = np.asarray(verdict_training.embellished(digits, rng)) > 127
        assert (ink | ~own).all()  # every pixel of the digit's ink is still ink
        assert ink.sum() >= (1 + verdict_training.NEW_INK) * own.sum()  # and at least NEW_INK more


def test_verdict_scores_rank_a_point_far_from_every_class_below_the_classes_own_points():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(10, 80, generator=g) * 4  # ten classes' features, 80 dimensions (the top 64 and the rest)
    labels = torch.arange(10).repeat(60)  # (600,)

    strokes = (torch.rand(10, 784, generator=g) < 0.15).double()  # ten classes' pictures (784 pixels, 0 or 1)

    def outputs(features: torch.Tensor, pixels: torch.Tensor) -> dict:
        n = len(features)
        return {"features": features, "logits": torch.randn(n, 10, generator=g), "z": torch.randn(n, 6, generator=g),
                "pixels": pixels.clamp(0, 1)}

    def pictures(classes: torch.Tensor) -> torch.Tensor:
        return strokes[classes] + 0.05 * torch.randn(len(classes), 784, generator=g, dtype=torch.float64)

    train = outputs(centres[labels] + torch.randn(600, 80, generator=g), pictures(labels))
    val = outputs(centres[labels[:200]] + torch.randn(200, 80, generator=g), pictures(labels[:200]))
    near = outputs(centres[:10] + torch.randn(10, 80, generator=g), pictures(torch.arange(10)))
    far = outputs(torch.randn(10, 80, generator=g) * 4 + 30, torch.rand(10, 784, generator=g, dtype=torch.float64))
    scores = verdict_scores.fitted_scores(train, labels, val)
    assert {"rule (shipped)", "residual, top 32 directions kept", "class Gaussians", "relative Mahalanobis",
            "rule + energy", "kNN, bank 2,000, k 10", "per-class standardised",
            "pixels' residual, top 32 directions kept", "pixels' kNN, bank 10,000, k 10"} <= set(scores)
    for name in ("residual, top 32 directions kept", "class Gaussians", "relative Mahalanobis",
                 "kNN, bank 2,000, k 10", "kNN, bank 50,000, k 1", "pixels' residual, top 32 directions kept",
                 "pixels' residual, top 64 directions kept", "pixels' kNN, bank 10,000, k 10"):
        assert float(scores[name](far).max()) < float(scores[name](near).min()), name
    weights = torch.tensor([2.0, 1, 1, 1, 1, 1], dtype=torch.float64)
    assert torch.allclose(scores["rule (shipped)"](near), (near["z"].double() * weights).sum(1))


def test_verdict_scores_give_each_omniglot_alphabet_its_own_share_flagged():
    counts = {name: len(files) for name, files in handwriting.omniglot().items() if name != handwriting.LATIN}
    first, *others = counts
    values = torch.ones(sum(counts.values()))
    values[: counts[first]] = -1  # the first alphabet (in name order, as nondigits.py pools them) below the cut
    omniglot = {"v": values, "logits": torch.nn.functional.one_hot(torch.arange(len(values)) % 2 + 3, 10).float()}
    table = verdict_scores.by_alphabet(lambda o: o["v"], {"v": torch.zeros(1000)}, omniglot)
    rows = {line.split(" | ")[0][2:]: line for line in table.splitlines()[2:]}
    assert list(rows) == list(counts)
    assert rows[first].endswith(f" | {counts[first]:,} | 100.0% | - |")
    for name in others:  # every character passed, read as 3 or 4 in turn
        assert " | 0.0% | " in rows[name] and ("3 (" in rows[name] and "4 (" in rows[name])
    short = {"v": values[1:], "logits": omniglot["logits"][1:]}
    assert "1 characters refused" in verdict_scores.by_alphabet(lambda o: o["v"], {"v": torch.zeros(10)}, short)


def test_the_verdicts_weight_counts_its_binary_cross_entropy_that_many_times():
    from digitsum.mixture import Batch
    from digitsum.model import Logits
    from digitsum.training.objective import digitsum_loss

    g = torch.Generator().manual_seed(0)
    outputs = Logits(torch.randn(4, 10, generator=g), torch.randn(4, 19, generator=g), torch.randn(4, generator=g))
    real = torch.tensor([True, True, False, True])
    digits = torch.tensor([1, 2, -100, 4])
    batch = Batch(torch.zeros(4, 1, 28, 28), torch.arange(4), digits, digits.clamp_min(0) + 1, real)
    cfg = TrainConfig()
    bce = torch.nn.functional.binary_cross_entropy_with_logits(outputs.verdict, real.float())
    got = verdict_training.verdict_weight(3)(outputs, batch, cfg) - digitsum_loss(outputs, batch, cfg)
    assert float(got) == pytest.approx(2 * float(bce), rel=1e-5) and float(bce) > 0


def test_outlier_exposure_adds_the_digit_heads_cross_entropy_to_uniform_on_the_non_digits_only():
    from digitsum.mixture import Batch
    from digitsum.model import Logits
    from digitsum.training.objective import digitsum_loss

    g = torch.Generator().manual_seed(0)
    outputs = Logits(torch.randn(6, 10, generator=g), torch.randn(6, 19, generator=g), torch.randn(6, generator=g))
    real = torch.tensor([True, True, True, True, False, False])
    digits = torch.tensor([1, 2, 3, 4, -100, -100])
    batch = Batch(torch.zeros(6, 1, 28, 28), torch.arange(6) % 10, digits, digits.clamp_min(0) + 1, real)
    cfg = TrainConfig()
    uniform = torch.full((2, 10), 0.1)
    expected = torch.nn.functional.cross_entropy(outputs.digit[4:], uniform)
    got = verdict_training.outlier_exposure(0.5)(outputs, batch, cfg) - digitsum_loss(outputs, batch, cfg)
    assert float(got) == pytest.approx(0.5 * float(expected), rel=1e-5) and float(expected) > 0
    all_real = Batch(batch.images, batch.numbers, torch.tensor([1, 2, 3, 4, 5, 6]), batch.numbers + 1, None)
    assert float(verdict_training.outlier_exposure(0.5)(outputs, all_real, cfg)) == float(
        digitsum_loss(outputs, all_real, cfg))


def test_the_loop_batcher_probe_answers_as_the_predictor_and_fails_only_the_unreadable_image(mnist):
    import asyncio

    from digitsum.predict import load_model
    from helpers import encode

    predictor = load_model()
    images = mnist["test"].images[:5].numpy()
    drawing = encode(Image.fromarray(255 - images[0]).resize((140, 140)))  # dark on light, decoded by the batcher
    calls = []
    predict_arrays = predictor.predict_arrays
    predictor.predict_arrays = lambda x, n: calls.append(len(x)) or predict_arrays(x, n)
    batcher = bench_serve_profile.LoopBatcher(predictor, max_batch=4)

    async def all_at_once():
        jobs = [(drawing, 1), (b"not an image", 2), *[(images[i], i) for i in range(1, 5)]]
        return await asyncio.gather(*(batcher.predict_async(x, n) for x, n in jobs), return_exceptions=True)

    answers = asyncio.run(all_at_once())
    del predictor.predict_arrays
    assert isinstance(answers[1], ImageError)
    assert calls == [3, 2]  # six queued at once, at most four taken, the unreadable one dropped from its call
    expected = predictor.predict_batch([drawing, *images[1:5]], [1, 1, 2, 3, 4])
    assert [(a.digit, a.sum) for a in answers[:1] + answers[2:]] == [(e.digit, e.sum) for e in expected]


def test_passed_draws_what_the_shipped_verdict_reads_as_digits(tmp_path, capsys):
    from digitsum.predict import load_model

    assert passed.main([str(tmp_path / "sheets"), "--quick", "--sample", "4"]) == 0
    lines = capsys.readouterr().out.splitlines()
    sets = nondigits.nondigit_sets(nondigits.QUICK)
    assert len(lines) == len(sets)
    predictor, counts = load_model(), {}
    for line, name in zip(lines, sets, strict=True):
        match = re.fullmatch(re.escape(name) + r": (\d+) images \((\d+) refused by preprocessing\), (\d+) read as "
                             r"digits( \(is_digit_score: median [\d.]+, 10th-90th percentile [\d.]+-[\d.]+\))?, "
                             r"(\d+) of them in (\S+\.png)", line)
        assert match, line
        total, read, shown = int(match[1]), int(match[3]), int(match[5])
        assert shown == min(4, read) and match[6] == passed.file_name(name)
        assert (match[4] is None) == (read == 0)  # the scores' spread, where any pass
        with Image.open(tmp_path / "sheets" / match[6]) as sheet:  # one row of tiles, whatever it holds
            assert sheet.size == (passed.COLUMNS * (passed.TILE + 4), passed.TILE + passed.LABEL + 4)
            tiles = np.asarray(sheet)[2 : 2 + passed.TILE]
        inked = [bool(tiles[:, 2 + i * (passed.TILE + 4) :][:, : passed.TILE].max() > 40) for i in range(4)]
        assert inked == [i < shown for i in range(4)]  # a tile for each image shown, the rest background
        counts[name] = (total, read)
    arrays, _ = nondigits.preprocessed(sets[nondigits.OMNIGLOT])
    verdicts = [p.is_digit for p in predictor.predict_arrays(arrays, [0] * len(arrays))]
    assert counts[nondigits.OMNIGLOT] == (len(arrays), sum(verdicts))  # what predict says, counted
    assert 0 < sum(verdicts) < len(verdicts)
    assert passed.main([str(tmp_path / "x"), "--sample", "0"]) == 2
    assert "--sample must be at least 1" in capsys.readouterr().err


def test_preprocess_ab_runs_each_tree_on_every_kind_and_finds_a_tree_equal_to_itself(mnist_dir, capsys):
    src = str(Path(preprocess_ab.__file__).resolve().parents[1] / "src")
    assert preprocess_ab.main(["--before", src, "--after", src, "--limit", "3", "--data-dir", str(mnist_dir)]) == 0
    rows = [line.split(" | ") for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and
            not line.startswith(("| images", "| ---"))]
    assert [row[0][2:] for row in rows] == ["MNIST test, the page's ink box", "MNIST test, 28x28 PNG",
                                            "MNIST test, 280x280 dark on white", "MNIST test, the page's whole pad",
                                            "USPS test and optdigits, with a margin",
                                            "the non-digit sets of nondigits.py"]
    assert all(int(row[1]) >= 1 and row[2] == "0" and 0 < float(row[3]) < 100 and row[5].endswith("x |")
               for row in rows)
    assert int(rows[-1][1]) > 3 * 10  # at most 3 of each of the non-digit sets


def test_verdict_ensemble_combines_runs_and_a_run_with_itself_reads_as_the_run(small_run, capsys):
    run = str(small_run)
    assert verdict_ensemble.main([run, run, "bundled", "--quick"]) == 0
    table = capsys.readouterr().out
    rows = {line.split(" | ")[0][2:]: line.split(" | ")[1:] for line in table.splitlines() if line.startswith("| `")}
    assert set(rows) == {f"`{run}`", "`bundled`", f"`{run}` + `{run}`", f"`{run}` + `bundled`",
                         f"`{run}` + `{run}` + `bundled`"}
    alone, twice = rows[f"`{run}`"], rows[f"`{run}` + `{run}`"]
    # the same logits, a threshold fitted on the same validation digits as the run's own rule: the same verdicts
    assert twice[1:] == alone[1:], (twice, alone)
    pair = rows[f"`{run}` + `bundled`"]
    assert pair[1:] != alone[1:] and pair[1:] != rows["`bundled`"][1:]  # two networks: other figures
    digit, total = (float(x) for x in pair[0].split(" / "))
    assert 90 < digit <= 100 and 90 < total <= 100


def test_verdict_ensemble_refuses_one_run_or_an_unfinished_one_in_one_line(tmp_path, capsys):
    for argv, says in ((["bundled"], "give two runs or more"), (["bundled", str(tmp_path)], "not a finished run")):
        assert verdict_ensemble.main(argv) == 2
        err = capsys.readouterr().err
        assert says in err and err.count("\n") == 1, err
