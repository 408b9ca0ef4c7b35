"""What the verdict trains on: variants of the default recipe's non-digits, each scored by the verdict it ships.

Issue 19 asks for a verdict that flags most of what is no digit. For each variant this trains ``digitsum
train --seed S --threads 2`` with one change to its non-digits or its loss, fits the rule as ``digitsum train``
does (MNIST training and validation digits only), and reports the checkpoint's own verdict (``is_digit_score``
and ``is_digit``, as ``predict`` returns them) on the dev sets of benchmarks/nondigits.py, beside its MNIST test
accuracy. A probe for "How it got here" in benchmarks/nondigits.md, not in run_all (no variant was shipped).

Variants, joined by "+" (``bank30000+script``):

* ``base``: the default recipe as it is (seed 0: the bundled model's own run);
* ``bankN``: N distinct non-digits drawn for the run (``negatives.BANK``, 6,000: each epoch re-draws its
  6,875 from them, shifted anew);
* ``oeW``: outlier exposure (Hendrycks et al. 2019): the digit head also learns the uniform distribution on
  the non-digits, ``W`` times the mean cross-entropy to it added to the loss;
* ``script``: one of the two made-up-character slots of ``BROAD_KINDS`` draws ``script`` characters instead
  (below: connected strokes in one thin pen, as people write an alphabet's letters);
* ``embellished``: a kind added to ``BROAD_KINDS``: an MNIST 2 3 5 6 8 or 9 with one long stroke of its
  own width added (a bar across it, or a hook or bowl from its ink), as many characters of other alphabets
  are a digit-like shape with one stroke more (below);
* ``chimera``: a kind added to ``BROAD_KINDS``: the top (or left) part of one MNIST digit joined to the bottom
  (or right) part of a digit of another class, cut at the same random line, in the writers' own strokes: a
  character made of digits' strokes that is no digit, as many of the other alphabets' characters the verdict
  passes are (below);
* ``vwW``: the verdict's binary cross-entropy counted ``W`` times in the loss (1 in the recipe);
* ``mlp``: a verdict head with a hidden layer (image features -> ``MLP_HIDDEN`` ReLU units -> 1) in place of
  the recipe's one linear layer; the run is measured with the same network;
* ``rotW``: self-supervision (Hendrycks et al. 2019, "Using self-supervised learning can improve model robustness
  and uncertainty"): the network also learns which of four quarter turns each training digit was given, from its
  image features (a linear head of 4 outputs), the cross-entropy counted ``W`` times; it costs a second pass of
  the image branch over each batch's digits. The variant's row is its shipped verdict, which reads the network as
  always (what the head taught the features); two more rows use the head itself, as the paper detects with: the
  turns' score (``turns_score``, four passes of the image branch) alone, and added to the rule's logit;
* ``wideN``: the default network with a third convolution of ``N`` channels (``ModelConfig.conv3``, 64 in the
  recipe): more capacity in the features the rule reads, at the cost of a larger network to train and to serve;
* ``centreW``: centre loss (Wen et al. 2016): ``W`` times the mean squared distance, per feature, of each training
  digit's image features to its class's centre (a running mean of the batches' class means, not a weight), so
  that every class's features sit tighter around their mean: what the rule's Mahalanobis distances and
  neighbours measure (a non-digit between the classes then lies further from each);
* ``sphereW``: the objectosphere loss (Dhamija et al. 2018, "Reducing Network Agnostophobia"): ``W`` times the mean
  square of the non-digits' image features, plus the square of how far each digit's features fall short of
  ``SPHERE`` in root mean square, so that a non-digit's features shrink toward zero while a digit's stay large: a
  gap that the rule's distances, neighbours and head all read;
* ``lsX``: label smoothing ``X`` on both cross-entropies (``TrainConfig.label_smoothing``; 0.1 in the recipe):
  smoothing pulls every digit's features toward the same distance from each class, which can hide how far an
  image is from all of them.

    python benchmarks/verdict_training.py VARIANT [VARIANT ...] [--seed S]   (MNIST from $DIGITSUM_DATA)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter

import detectors
import nondigits
import verdict_weights
from digitsum import checkpoint, negatives
from digitsum.calibration import KEEP
from digitsum.config import ModelConfig, TrainConfig, model_for
from digitsum.data import load_mnist
from digitsum.mixture import normalize, split_train_val
from digitsum.predict import load_model
from digitsum.training import loop, sources, train


def script(rng: np.random.Generator) -> Image.Image:
    """A character of a made-up script, light on black: one to four strokes in one thin pen, each starting
    where the ink already is (an end, a point along a stroke) or, now and then, beside it; a stroke is a
    polyline turning at sharp angles, mostly near the horizontal, vertical and diagonals, or a bowl or hook."""
    canvas, lo, hi = negatives.CANVAS, 10.0, negatives.CANVAS - 10.0
    image = Image.new("L", (canvas, canvas), 0)
    draw = ImageDraw.Draw(image)
    width = int(rng.integers(2, 6))
    ink: list[np.ndarray] = []  # points along the strokes drawn so far
    ends: list[np.ndarray] = []
    for _ in range(int(rng.choice([1, 2, 3, 4], p=[0.15, 0.35, 0.3, 0.2]))):
        where = rng.random()
        if not ink:
            start = rng.uniform(30, 66, 2)
        elif where < 0.4:
            start = ends[rng.integers(len(ends))]
        elif where < 0.8:
            start = ink[rng.integers(len(ink))]
        else:
            start = np.clip(np.mean(ink, 0) + rng.uniform(-25, 25, 2), lo, hi)
        path = [start]
        if rng.random() < 0.65:  # a polyline of one to three segments
            heading = rng.uniform(0, 2 * np.pi)
            for _ in range(int(rng.integers(1, 4))):
                if rng.random() < 0.7:  # near a multiple of 45 degrees
                    heading = np.round(heading / (np.pi / 4)) * (np.pi / 4) + rng.normal(0, 0.15)
                step = rng.uniform(18, 46)
                path.append(np.clip(path[-1] + step * np.array([np.cos(heading), np.sin(heading)]), lo, hi))
                heading += rng.choice([-1, 1]) * rng.uniform(np.pi / 3, 3 * np.pi / 4)
        else:  # part of an ellipse through the start point
            radii = rng.uniform(8, 24, 2)
            phase = rng.uniform(0, 2 * np.pi)
            t = phase + np.linspace(0, rng.uniform(np.pi / 2, 1.7 * np.pi) * rng.choice([-1, 1]), 24)
            centre = start - radii * np.array([np.cos(phase), np.sin(phase)])
            path = [np.clip(p, lo, hi) for p in centre + radii * np.stack([np.cos(t), np.sin(t)], 1)]
        draw.line([tuple(p) for p in path], fill=255, width=width, joint="curve")
        ends += [path[0], path[-1]]
        ink += [a + (b - a) * f for a, b in zip(path[:-1], path[1:], strict=True) for f in (0.25, 0.5, 0.75)]
    return image


EMBELLISHED = (2, 3, 5, 6, 8, 9)  # digits that one stroke more does not make into another digit (a 7 with a bar is a 7)
NEW_INK = 0.2  # an embellished digit's new ink, away from its own strokes, as a share of the digit's


def embellished(digits: tuple[np.ndarray, np.ndarray], rng: np.random.Generator) -> Image.Image:
    """An MNIST digit of ``EMBELLISHED`` (labels (N,), images (N, 28, 28)) at three times its size, light on
    black, with one long stroke of about its pen's width added: a bar across it, or a hook or bowl that
    starts on its ink. The stroke is drawn again until at least ``NEW_INK`` of the digit's ink is new, away
    from the digit's own strokes (no specks: a digit with a mark beside or over it is still a digit)."""
    labels, images = digits
    pool = np.flatnonzero(np.isin(labels, EMBELLISHED))
    for attempt in range(10**6):
        if attempt % 20 == 0:  # twenty strokes on one digit, then another digit
            digit = Image.fromarray(images[pool[rng.integers(len(pool))]]).resize((84, 84), Image.Resampling.BILINEAR)
            own = np.asarray(digit) > 127
            near = np.asarray(Image.fromarray(own.astype(np.uint8) * 255).filter(ImageFilter.MaxFilter(7))) > 0
            ink = np.argwhere(own)[:, ::-1].astype(float)  # (K, 2) x, y of the ink
            width = int(np.clip(rng.normal(7, 1.2), 5, 10))
        image, at = digit.copy(), ink[rng.integers(len(ink))]
        draw = ImageDraw.Draw(image)
        if rng.random() < 0.55:  # a bar through a point of the ink, reaching past the digit
            heading, half = rng.uniform(0, np.pi), rng.uniform(22, 34)
            step = half * np.array([np.cos(heading), np.sin(heading)])
            draw.line([tuple(at - step * rng.uniform(0.4, 1)), tuple(at + step)], fill=255, width=width)
        else:  # a hook or bowl from the ink
            radius = rng.uniform(11, 20)
            start = float(rng.uniform(0, 360))
            centre = at - radius * np.array([np.cos(np.radians(start)), np.sin(np.radians(start))])
            draw.arc((*(centre - radius), *(centre + radius)), start, start + float(rng.uniform(150, 300)),
                     fill=255, width=width)
        if ((np.asarray(image) > 127) & ~near).sum() >= NEW_INK * own.sum():
            return image
    raise RuntimeError("embellished: no stroke added new ink to any of 50,000 digits tried")


CHIMERA_CUT = (11, 18)  # rows (or columns) of the 28x28 where a chimera's two halves meet, the upper bound excluded


def chimera_parts(labels: np.ndarray, rng: np.random.Generator) -> tuple[int, int, int, bool]:
    """A chimera's two digits (indices into ``labels`` (N,): of different classes, neither a 1), its cut (a row or
    column of ``CHIMERA_CUT``) and whether the cut is a row (top and bottom) rather than a column."""
    pool = np.flatnonzero(labels != 1)
    first = int(pool[rng.integers(len(pool))])
    others = pool[labels[pool] != labels[first]]
    return first, int(others[rng.integers(len(others))]), int(rng.integers(*CHIMERA_CUT)), bool(rng.random() < 0.5)


def joined(first: np.ndarray, second: np.ndarray, cut: int, across: bool) -> np.ndarray:
    """The (28, 28) of ``first`` above (left of) the cut and ``second`` from it on."""
    out = first.copy()
    if across:
        out[cut:] = second[cut:]
    else:
        out[:, cut:] = second[:, cut:]
    return out


def chimera(digits: tuple[np.ndarray, np.ndarray], rng: np.random.Generator) -> Image.Image:
    """Two MNIST digits (labels (N,), images (N, 28, 28)) of ``chimera_parts``, ``joined`` at its cut, at three
    times MNIST's size, light on black."""
    labels, images = digits
    first, second, cut, across = chimera_parts(labels, rng)
    return Image.fromarray(joined(images[first], images[second], cut, across)).resize((84, 84),
                                                                                    Image.Resampling.BILINEAR)


MLP_HIDDEN = 128


def with_mlp_verdict(build):
    """``model.build_model`` whose verdict head, where it has one, has a hidden layer of ``MLP_HIDDEN`` units."""
    def build_mlp(cfg):
        model = build(cfg)
        if model.verdict_head is not None:
            features = model.verdict_head.in_features
            model.verdict_head = torch.nn.Sequential(torch.nn.Linear(features, MLP_HIDDEN), torch.nn.ReLU(),
                                                     torch.nn.Linear(MLP_HIDDEN, 1))
        return model
    return build_mlp


def with_rotation_head(build, built: list | None = None):
    """``model.build_model`` whose networks also have ``rotation_head`` (image features -> 4 quarter turns); each
    network it builds is appended to ``built`` when given (training's, for the loss to reach)."""
    def build_rotating(cfg):
        model = build(cfg)
        model.rotation_head = torch.nn.Linear(cfg.hidden, 4)
        if built is not None:
            built.append(model)
        return model
    return build_rotating


def rotation_term(weight: float, built: list):
    """``weight`` times the cross-entropy of the last-built network's ``rotation_head`` on the batch's digits,
    item ``i`` turned by ``i % 4`` quarter turns (the batch's order is already drawn at random)."""
    def term(outputs, batch):
        model = built[-1]
        images = batch.images if batch.real is None else batch.images[batch.real]  # (B, 1, 28, 28)
        turns = torch.arange(len(images)) % 4
        turned = torch.cat([images[turns == t].rot90(int(t), dims=(2, 3)) for t in range(4)])
        labels = torch.cat([turns[turns == t] for t in range(4)])
        logits = model.rotation_head(model.features(turned.contiguous(memory_format=torch.channels_last)))
        return weight * torch.nn.functional.cross_entropy(logits, labels)
    return with_term(term)


def with_kept_features(build, built: list):
    """``model.build_model`` whose networks keep their last image features (``model.kept``, (B, F), a forward
    hook on the image branch); each network it builds is appended to ``built``."""
    def build_keeping(cfg):
        model = build(cfg)
        model.image_branch.register_forward_hook(lambda module, args, out: setattr(model, "kept", out))
        built.append(model)
        return model
    return build_keeping


def centre_term(weight: float, built: list):
    """``weight`` times the mean squared distance per feature of the batch's digits' image features (kept by
    ``with_kept_features`` in this step's forward pass) to their class centres; the centres, one (F,) per digit,
    move toward each batch's class means by ``1 - CENTRE_MOMENTUM`` (no gradient flows into them)."""
    centres: list[torch.Tensor] = []  # (10, F), made at the first step from its class means

    def term(outputs, batch):
        model = built[-1]
        features = model.kept if batch.real is None else model.kept[batch.real]  # (B, F)
        digits = batch.digits if batch.real is None else batch.digits[batch.real]  # (B,)
        with torch.no_grad():
            counts = torch.bincount(digits, minlength=10)  # (10,)
            means = features.new_zeros(10, features.shape[1]).index_add_(0, digits, features.detach())
            means /= counts.clamp_min(1)[:, None]  # a class absent from the batch: zeros
            if not centres:  # the first step: the batch's class means
                centres.append(means)
            present = (counts > 0)[:, None]
            centres[0] = torch.where(present, CENTRE_MOMENTUM * centres[0] + (1 - CENTRE_MOMENTUM) * means, centres[0])
        return weight * (features - centres[0][digits]).pow(2).mean()
    return with_term(term)


def sphere_term(weight: float, built: list):
    """``weight`` times the objectosphere terms on this step's image features (kept by ``with_kept_features``): the
    non-digits' mean square, and the digits' mean of (``SPHERE`` - their root mean square)^2 where it is positive."""
    def term(outputs, batch):
        if batch.real is None or bool(batch.real.all()):
            return 0.0
        square = built[-1].kept.pow(2).mean(1)  # (B,) each item's mean square feature
        digits, others = square[batch.real], square[~batch.real]
        return weight * (others.mean() + (SPHERE - digits.clamp_min(1e-12).sqrt()).clamp_min(0).pow(2).mean())
    return with_term(term)


def with_term(term):
    """digitsum's loss (``loop.digitsum_loss`` as it is when called) plus ``term(outputs, batch)``."""
    base = loop.digitsum_loss
    return lambda outputs, batch, cfg: base(outputs, batch, cfg) + term(outputs, batch)


def verdict_weight(weight: float):
    """digitsum's loss with the verdict's binary cross-entropy counted ``weight`` times."""
    def term(outputs, batch):
        verdict = outputs.verdict
        if verdict is None:
            return 0.0
        target = batch.real.to(verdict.dtype) if batch.real is not None else torch.ones_like(verdict)
        return (weight - 1) * torch.nn.functional.binary_cross_entropy_with_logits(verdict, target)
    return with_term(term)


def outlier_exposure(weight: float):
    """digitsum's loss plus ``weight`` times the digit head's mean cross-entropy to uniform on the non-digits."""
    def term(outputs, batch):
        if batch.real is None or bool(batch.real.all()):
            return 0.0
        return -weight * outputs.digit[~batch.real].log_softmax(1).mean(1).mean()
    return with_term(term)


def with_kinds(draw_one):
    """``negatives.draw_one`` that also draws the ``script``, ``embellished`` and ``chimera`` kinds."""
    def draw(kind, digits, rng):
        if kind == "script":
            return script(rng)
        if kind == "chimera":
            return chimera(digits, rng)
        return embellished(digits, rng) if kind == "embellished" else draw_one(kind, digits, rng)
    return draw


def with_script(kinds: tuple[str, ...]) -> tuple[str, ...]:
    """``kinds`` with their last made-up-character slot drawing ``script`` characters instead."""
    last = len(kinds) - 1 - kinds[::-1].index("character")
    return (*kinds[:last], "script", *kinds[last + 1:])


WEIGHTED = ("bank", "oe", "vw", "ls", "rot", "wide", "centre", "sphere")  # variants with a number
SPHERE = 1.5  # the root mean square of a digit's image features below which sphereW pulls them up (the bundled
#               model's MNIST test digits: 1.50)
CENTRE_MOMENTUM = 0.9  # the share of a class centre kept at each batch (the rest: the batch's class mean)


def parse(name: str) -> list[tuple[str, float]]:
    """A variant's changes, ("bank", N) ("oe", W) ("vw", W) ("ls", X) ("rot", W) ("wide", N) ("centre", W)
    ("sphere", W) ("script", 0) ("embellished", 0) ("chimera", 0) ("mlp", 0), or one line saying what is wrong."""
    changes = []
    for part in name.split("+"):
        kind = next((k for k in WEIGHTED if part.startswith(k)), part)
        try:
            value = float(part[len(kind):]) if kind in WEIGHTED else 0.0
        except ValueError:
            value = -1.0
        wellformed = {"bank": value > 0 and value.is_integer(), "oe": value > 0, "vw": value > 0,
                      "ls": 0 <= value < 1, "rot": value > 0, "wide": value > 0 and value.is_integer(),
                      "centre": value > 0, "sphere": value > 0, "script": True,
                      "embellished": True, "chimera": True, "mlp": True, "base": True}
        if not wellformed.get(kind, False):
            raise SystemExit(f"verdict_training: unknown variant {part!r} (base, bankN, oeW, vwW, lsX, rotW, "
                             "wideN, centreW, sphereW, script, embellished, chimera, mlp; joined by +)")
        if kind != "base":
            changes.append((kind, value))
    return changes


def configured(cfg: TrainConfig, name: str) -> TrainConfig:
    """The recipe with the variant's TrainConfig changes (``lsX``)."""
    for kind, value in parse(name):
        if kind == "ls":
            cfg = replace(cfg, label_smoothing=value)
    return cfg


def network(cfg: TrainConfig, name: str) -> ModelConfig:
    """The network ``digitsum train`` builds for ``cfg``, with the variant's ModelConfig changes (``wideN``)."""
    model_cfg = model_for(cfg)
    for kind, value in parse(name):
        if kind == "wide":
            model_cfg = replace(model_cfg, conv3=int(value))
    return model_cfg


@contextlib.contextmanager
def variant(name: str):
    """Training as ``digitsum train`` does, with the variant's changes while the block runs."""
    changes = parse(name)
    patched = [(negatives, "BANK"), (negatives, "draw_one"), (sources, "BROAD_KINDS"), (loop, "digitsum_loss"),
               (loop, "build_model"), (checkpoint, "build_model")]
    saved = [(module, attr, getattr(module, attr)) for module, attr in patched]
    try:
        if any(kind in ("script", "embellished", "chimera") for kind, _ in changes):
            negatives.draw_one = with_kinds(negatives.draw_one)  # once, whichever of these kinds come
        for kind, value in changes:
            if kind == "bank":
                negatives.BANK = int(value)
            elif kind == "oe":
                loop.digitsum_loss = outlier_exposure(value)
            elif kind == "vw":
                loop.digitsum_loss = verdict_weight(value)
            elif kind in ("centre", "sphere"):
                kept: list = []
                loop.build_model = with_kept_features(loop.build_model, kept)
                loop.digitsum_loss = (centre_term if kind == "centre" else sphere_term)(value, kept)
            elif kind in ("ls", "wide"):
                continue  # a TrainConfig or ModelConfig value: configured(), network()
            elif kind == "mlp":
                loop.build_model = with_mlp_verdict(loop.build_model)  # each wrapped as it is: rot may be there
                checkpoint.build_model = with_mlp_verdict(checkpoint.build_model)
            elif kind == "rot":
                built: list = []
                loop.build_model = with_rotation_head(loop.build_model, built)
                checkpoint.build_model = with_rotation_head(checkpoint.build_model)
                loop.digitsum_loss = rotation_term(value, built)
            else:
                sources.BROAD_KINDS = (with_script(sources.BROAD_KINDS) if kind == "script"
                                       else (*sources.BROAD_KINDS, kind))  # embellished, chimera
        yield
    finally:
        for module, attr, value in saved:
            setattr(module, attr, value)


def measure(run: str, data: dict[str, np.ndarray], val_images: np.ndarray | None = None) -> dict[str, dict]:
    """Table rows, each named by what it adds to the variant's name: "" the run's test accuracy, digits kept, and
    AUROC / share flagged of its shipped verdict on the dev sets; with the validation digits (a ``rot`` run), the
    rows of ``turns_rows`` too."""
    metrics = json.loads((Path(run) / "metrics.json").read_text())
    predictor = load_model(run)
    shipped = {k: nondigits.shipped(predictor, v) for k, v in data.items()}  # (score, is_digit)
    rows = {"": figures(metrics, shipped, data)}
    if val_images is not None:
        model = checkpoint.load_checkpoint(run).model.eval()
        turns = turns_rows(model, nondigits.shipped(predictor, val_images)[0], val_images,
                           {k: score for k, (score, _) in shipped.items()}, data)
        rows.update({f", {name}": figures(metrics, scored, data) for name, scored in turns.items()})
    return rows


def turns_score(model, images28: np.ndarray, batch: int = 2000) -> np.ndarray:
    """How surely a ``rot`` variant's network tells each of four quarter turns of each image (uint8 (N, 28, 28))
    apart: the sum over the turns t of log P(t | the image turned t times) from its ``rotation_head``, the score
    Hendrycks et al. 2019 detect with (higher: more like its training digits)."""
    out = []
    with torch.inference_mode():
        for i in range(0, len(images28), batch):
            x = normalize(torch.from_numpy(np.ascontiguousarray(images28[i:i + batch])))  # (B, 1, 28, 28)
            out.append(sum(model.rotation_head(model.features(x.rot90(t, dims=(2, 3)))).log_softmax(1)[:, t]
                           for t in range(4)))
    return torch.cat(out).double().numpy()


def logit(score: np.ndarray) -> np.ndarray:
    """The rule's logit back from ``is_digit_score`` (clipped; a refused image's -1 reads as a sure non-digit)."""
    score = np.clip(score, 1e-12, 1 - 1e-12)
    return np.log(score) - np.log1p(-score)


def turns_rows(model, val_rule: np.ndarray, val_images: np.ndarray, rule: dict[str, np.ndarray],
               data: dict[str, np.ndarray]) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """A ``rot`` run's (score, passed) of every set with the turns' score as the verdict, alone and added to the
    rule's logit (each standardised on the validation digits), each threshold keeping ``KEEP`` of them, as the
    rule's does. ``rule``: each set's shipped ``is_digit_score``; ``val_rule``: the validation digits'."""
    val = logit(val_rule), turns_score(model, val_images)
    mean, sd = val[1].mean(), val[1].std()
    by_set = {k: (logit(rule[k]), turns_score(model, v)) for k, v in data.items()}
    out = {}
    for name, combine in (("turns' score", lambda rule, turns: (turns - mean) / sd),
                          ("rule + turns' score", lambda rule, turns: rule + (turns - mean) / sd)):
        cut = np.quantile(combine(*val), 1 - KEEP)
        out[name] = {k: (score := combine(*v), score >= cut) for k, v in by_set.items()}
    return out


def figures(metrics: dict, scored: dict[str, tuple[np.ndarray, np.ndarray]], data: dict[str, np.ndarray]) -> dict:
    """A table row: test accuracy, digits kept, AUROC / share flagged from (score, passed) of every set."""
    return {"MNIST digit / sum": f"{100 * metrics['digit_accuracy']:.2f} / {100 * metrics['sum_accuracy']:.2f}",
            **verdict_figures(scored, data)}


def verdict_figures(scored: dict[str, tuple[np.ndarray, np.ndarray]], data: dict[str, np.ndarray]) -> dict:
    """A row's verdict cells: digits kept, AUROC / share flagged from (score, passed) of every set."""
    mnist = scored["D:MNIST test"][0]
    groups = {"far from any digit, pooled": [k for k in data if k[2:].startswith(nondigits.FAR)],
              "scribbles": ["N:" + nondigits.SCRIBBLES], "Omniglot non-Latin": ["N:" + nondigits.OMNIGLOT]}
    row = {f"{name[2:]} kept": f"{100 * scored[name][1].mean():.2f}%" for name in ("D:MNIST test", "D:USPS test")}
    for name, keys in groups.items():
        score = np.concatenate([scored[k][0] for k in keys])
        flagged = np.concatenate([~scored[k][1] for k in keys])
        row[name] = f"{100 * detectors.auroc(mnist, score):.2f} / {100 * flagged.mean():.1f}%"
    return row


def table(first: str, rows: dict[str, dict]) -> str:
    """A Markdown table: a row per name of ``rows``, its first column headed ``first``, the others its cells'."""
    columns = list(next(iter(rows.values())))
    lines = [f"| {first} | " + " | ".join(columns) + " |", "| --- |" + " ---: |" * len(columns)]
    return "\n".join([*lines, *(f"| {name} | " + " | ".join(row.values()) + " |" for name, row in rows.items())])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="+")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for name in args.variants:
        parse(name)  # every name checked before the first run
    data = verdict_weights.sets()
    base = TrainConfig(seed=args.seed, threads=2)
    rotating = [any(kind == "rot" for kind, _ in parse(name)) for name in args.variants]
    val_images = (split_train_val(load_mnist(None, splits=("train",))["train"], base)[1].images.numpy()
                  if any(rotating) else None)  # for the rotation head's own score
    rows = {}
    for name, rot in zip(args.variants, rotating, strict=True):
        cfg = configured(base, name)
        with tempfile.TemporaryDirectory() as out:
            with variant(name):  # measured inside it too: the checkpoint loads into the variant's network
                train(network(cfg, name), cfg, out)
                rows.update({name + suffix: row for suffix, row in
                             measure(out, data, val_images if rot else None).items()})
        print(name, rows[name], flush=True, file=sys.stderr)
    print(f"seed {args.seed}; AUROC / flagged of the shipped verdict, % (the rule's own threshold)")
    print(table("variant", {f"`{name}`": row for name, row in rows.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
