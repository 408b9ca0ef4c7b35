"""Resuming: a run killed or stopped mid-epoch and resumed ends bitwise where an uninterrupted one does."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from digitsum.cli import main
from digitsum.config import ModelConfig, TrainConfig
from digitsum.model import build_model
from digitsum.training import Hooks, store, train
from digitsum.training import state as resume_state
from digitsum.training.objective import make_optimizer

RECIPE = {"limit": 3000, "epochs": 3, "batch_size": 64, "val_size": 1000, "threads": 1, "seed": 0}
STEPS = 3000 // 64  # optimizer steps per epoch


def recipe_flags(mnist_dir) -> list[str]:
    flags = ["--data-dir", str(mnist_dir)]
    for name, value in RECIPE.items():
        flags += [f"--{name.replace('_', '-')}", str(value)]
    return flags


def history(run: Path) -> list[dict]:
    """metrics.jsonl without the wall times."""
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in lines]


def final_figures(run: Path) -> dict:
    return {k: v for k, v in json.loads((run / "metrics.json").read_text()).items() if k != "train_seconds"}


def assert_same_run(run: Path, reference: Path) -> None:
    assert (run / "model.safetensors").read_bytes() == (reference / "model.safetensors").read_bytes()
    assert history(run) == history(reference)
    assert final_figures(run) == final_figures(reference)
    assert not (run / "resume").exists()  # a finished run keeps no resumable state


@pytest.fixture(scope="module")
def uninterrupted(mnist_dir, tmp_path_factory):
    """The reference run, in this process, with every epoch's final weights and buffers."""
    out = tmp_path_factory.mktemp("resume") / "uninterrupted"
    weights = {}
    keep = Hooks(on_epoch=lambda record, model: weights.update({record.epoch: {k: v.clone() for k, v in
                                                                                model.state_dict().items()}}))
    train(ModelConfig(), TrainConfig(**RECIPE), out, data_dir=str(mnist_dir), hooks=keep)
    # Which epoch validates best, and so which one model.safetensors holds, depends on the weights this CPU's
    # kernels train (epoch 3 on AVX-512, epoch 2 on an AVX2 EPYC); every epoch's figures are in the history
    # that assert_same_run compares, so a resumed run is checked whichever it is.
    best = json.loads((out / "metrics.json").read_text())["best_epoch"]
    saved = load_file(out / "model.safetensors")
    assert saved.keys() == weights[best].keys()
    assert all(torch.equal(saved[name], tensor) for name, tensor in weights[best].items())
    return out, weights


# The child runs the real command line, and signals itself when training has done AT_STEP steps in all
# (so many steps into epoch 2): the signal lands at the same point however busy the machine is.
CHILD = """
import os, signal, sys
from digitsum.cli import main
from digitsum.training import loop
loss, calls = loop.digitsum_loss, [0]
def counted(*args):
    calls[0] += 1
    if calls[0] == {at_step}:
        os.kill(os.getpid(), signal.{signal})
    return loss(*args)
loop.digitsum_loss = counted
sys.exit(main(sys.argv[1:]))
"""
AT_STEP = STEPS + STEPS // 3  # a third of the way into epoch 2


def start_and_interrupt(out: Path, mnist_dir, sig: signal.Signals) -> subprocess.CompletedProcess:
    """Run ``digitsum train`` in a child that sends itself ``sig`` a third of the way into epoch 2."""
    code = CHILD.format(at_step=AT_STEP, signal=sig.name)
    return subprocess.run([sys.executable, "-c", code, "train", *recipe_flags(mnist_dir), "--out", str(out)],
                          capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def stopped(mnist_dir, tmp_path_factory):
    """A run stopped by Ctrl-C (SIGINT) during epoch 2, and what the command said."""
    out = tmp_path_factory.mktemp("resume") / "stopped"
    return out, start_and_interrupt(out, mnist_dir, signal.SIGINT)


def resume_cli(capsys, run: Path, mnist_dir) -> tuple[int, str, str]:
    code = main(["train", "--resume", str(run), "--data-dir", str(mnist_dir)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.one_cpu  # what kernels could change here, the resume after Ctrl-C checks as another CPU
def test_killed_mid_epoch_then_resumed_ends_bitwise_equal(uninterrupted, mnist_dir, tmp_path, capsys):
    reference, weights = uninterrupted
    killed = start_and_interrupt(tmp_path / "killed", mnist_dir, signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    run = tmp_path / "killed"
    assert len(history(run)) == 1  # killed during epoch 2
    assert [p.name for p in store.complete_states(run)] == [f"step-{STEPS:07d}"]
    saved = load_file(run / "resume" / f"step-{STEPS:07d}" / "state.safetensors")
    for name, tensor in weights[1].items():  # weights and batch-norm buffers, num_batches_tracked included
        assert torch.equal(saved[f"model.{name}"], tensor), name

    code, out, _ = resume_cli(capsys, run, mnist_dir)
    assert code == 0
    assert "resuming" in out and "at epoch 2, step 0" in out
    assert_same_run(run, reference)


def test_ctrl_c_stops_between_steps_and_says_how_to_resume(stopped):
    run, result = stopped
    assert result.returncode == 130
    assert "Traceback" not in result.stderr
    assert f"Resume with: digitsum train --resume {run}" in result.stderr
    newest = store.complete_states(run)[0]
    step = json.loads((newest / "state.json").read_text())["step"]
    assert int(newest.name.removeprefix("step-")) == AT_STEP and step == AT_STEP - STEPS  # stopped after that step
    assert len(history(run)) == 1


def test_resumed_after_ctrl_c_ends_bitwise_equal(stopped, uninterrupted, mnist_dir, tmp_path, capsys):
    run = Path(shutil.copytree(stopped[0], tmp_path / "run"))
    # What a kill between writing an epoch's files and its state would leave: the state wins.
    with (run / "metrics.jsonl").open("a") as history_file:
        history_file.write(json.dumps({"epoch": 2, "train_loss": 0.0}) + "\n")
    (run / "model.safetensors").write_bytes(b"weights of an epoch the state does not know")
    code, out, _ = resume_cli(capsys, run, mnist_dir)
    assert code == 0 and "at epoch 2, step" in out
    assert_same_run(run, uninterrupted[0])


@pytest.mark.one_cpu  # what kernels could change here, the resume after Ctrl-C checks as another CPU
def test_damaged_state_is_one_line_error_and_the_previous_one_still_resumes(stopped, uninterrupted, mnist_dir,
                                                                            tmp_path, capsys):
    run = Path(shutil.copytree(stopped[0], tmp_path / "run"))
    newest, previous = store.complete_states(run)
    blob = newest / "state.safetensors"
    blob.write_bytes(blob.read_bytes()[: blob.stat().st_size // 2])  # truncated
    code, _, err = resume_cli(capsys, run, mnist_dir)
    assert code == 1
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "damaged" in err and "truncated or altered" in err and previous.name in err

    (newest / "state.json").write_text("{not json")
    code, _, err = resume_cli(capsys, run, mnist_dir)
    assert code == 1 and "not valid JSON" in err

    shutil.rmtree(newest)  # as the message says: resume from the state before it
    code, out, _ = resume_cli(capsys, run, mnist_dir)
    assert code == 0 and "at epoch 2, step 0" in out
    assert_same_run(run, uninterrupted[0])


def test_a_folder_left_half_written_is_ignored(stopped, tmp_path):
    run = Path(shutil.copytree(stopped[0], tmp_path / "run"))
    newest = store.complete_states(run)[0]
    partial = run / "resume" / ".step-9999999.x1y2.tmp"  # what a kill during a write leaves
    partial.mkdir()
    (partial / "state.safetensors").write_bytes((newest / "state.safetensors").read_bytes()[:1000])
    folder, meta, blob = store.read_newest(run)
    assert folder == newest
    assert store.parse_state(folder, meta, blob).meta["step"] > 0


def tiny_state(tmp_path: Path, step: int):
    """A real model, optimizer and schedule, encoded as the state after ``step`` steps."""
    model = build_model(ModelConfig())
    opt, sched = make_optimizer(model, TrainConfig(), 10)
    state = resume_state.RunState(tally=resume_state.EpochTally.start(torch.device("cpu"), step))
    return resume_state.encode(resume_state.TrainState(model, opt, sched, state), step, {"model": {}})


def test_a_failed_write_leaves_the_previous_states_intact(tmp_path, monkeypatch):
    for step in (1, 2, 3):
        store.save_state(tmp_path, *tiny_state(tmp_path, step))
    assert [p.name for p in store.complete_states(tmp_path)] == ["step-0000003", "step-0000002"]  # two kept
    before = {p.name: (p / "state.safetensors").read_bytes() for p in store.complete_states(tmp_path)}

    def disk_full(path, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store, "atomic_write_bytes", disk_full)
    with pytest.raises(OSError):
        store.save_state(tmp_path, *tiny_state(tmp_path, 4))
    assert {p.name: (p / "state.safetensors").read_bytes() for p in store.complete_states(tmp_path)} == before
    assert not [p for p in (tmp_path / "resume").iterdir() if p.name.startswith(".")]  # no temporary folder left


def assert_one_line_error(err: str, *fragments: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_resume_without_a_state_is_one_line_error(capsys, tmp_path, mnist_dir):
    (tmp_path / "empty").mkdir()
    code, _, err = resume_cli(capsys, tmp_path / "empty", mnist_dir)
    assert code == 1
    assert_one_line_error(err, "holds no resumable state")
    code, _, err = resume_cli(capsys, tmp_path / "nowhere", mnist_dir)
    assert code == 1
    assert_one_line_error(err, "not found")
    (tmp_path / "finished").mkdir()
    (tmp_path / "finished" / "metrics.json").write_text("{}")
    code, _, err = resume_cli(capsys, tmp_path / "finished", mnist_dir)
    assert code == 1
    assert_one_line_error(err, "is a finished run", "nothing to resume")


def test_resume_refuses_flags_that_would_change_the_run(capsys, tmp_path):
    code = main(["train", "--resume", str(tmp_path), "--lr", "0.1", "--epochs", "5", "--fusion", "concat",
                 "--overwrite"])
    _, err = capsys.readouterr()
    assert code == 2
    assert_one_line_error(err, "with the config it was started with", "--lr", "--epochs", "--fusion", "--overwrite")


def test_edited_config_is_refused(stopped, tmp_path, mnist_dir, capsys):
    run = Path(shutil.copytree(stopped[0], tmp_path / "run"))
    config = json.loads((run / "config.json").read_text())
    config["train"]["lr"] *= 2
    (run / "config.json").write_text(json.dumps(config))
    code, _, err = resume_cli(capsys, run, mnist_dir)
    assert code == 1
    assert_one_line_error(err, "config.json changed since")


def test_restored_moments_take_their_parameters_memory_layout(tmp_path):
    # Fused AdamW pairs elements by memory position: a contiguous moment of a channels-last
    # convolution would update the wrong weights.
    def channels_last_model():
        model = build_model(ModelConfig()).to(memory_format=torch.channels_last)
        return (model, *make_optimizer(model, TrainConfig(), 10, fused=True))

    model, opt, sched = channels_last_model()
    out = model(torch.randn(4, 1, 28, 28), torch.tensor([1, 2, 3, 4]))
    (out.digit.sum() + out.sum.sum()).backward()
    opt.step()
    state = resume_state.RunState(tally=resume_state.EpochTally.start(torch.device("cpu"), 1))
    store.save_state(tmp_path, *resume_state.encode(resume_state.TrainState(model, opt, sched, state), 1,
                                                    {"model": {}}))
    fresh = resume_state.TrainState(*channels_last_model(), resume_state.RunState())
    resume_state.restore(store.parse_state(*store.read_newest(tmp_path)), fresh)
    model, opt = fresh.model, fresh.opt
    conv = model.image_branch[1][0].weight  # 32 x 16 x 3 x 3: channels-last differs from contiguous
    assert not conv.is_contiguous()
    assert opt.state[conv]["exp_avg"].stride() == conv.stride() == opt.state[conv]["exp_avg_sq"].stride()


@pytest.mark.one_cpu  # what kernels could change here, the resume after Ctrl-C checks as another CPU
def test_a_state_written_with_random_generator_states_still_resumes(stopped, uninterrupted, mnist_dir, tmp_path,
                                                                    capsys):
    """States of earlier versions also saved torch's, Python's and NumPy's RNG states; they are ignored."""
    from safetensors.torch import load as load_tensors
    from safetensors.torch import save as save_tensors

    run = Path(shutil.copytree(stopped[0], tmp_path / "run"))
    newest = store.complete_states(run)[0]
    tensors = load_tensors((newest / "state.safetensors").read_bytes())
    tensors["rng.torch"] = torch.get_rng_state()
    blob = save_tensors(tensors)
    (newest / "state.safetensors").write_bytes(blob)
    meta = json.loads((newest / "state.json").read_text())
    meta.update(state_sha256=resume_state.sha256(blob), rng={"python": [3, [0] * 625, None], "numpy": ["MT19937"]})
    (newest / "state.json").write_text(json.dumps(meta))
    code, _, _ = resume_cli(capsys, run, mnist_dir)
    assert code == 0
    assert_same_run(run, uninterrupted[0])
