"""Held-out (digit, number) combinations: the ``--hold-out-pairs`` spec, its mask, and numbers that avoid it.

Does the sum head *add*, or memorise a 10 x 10 table? To tell, a run may hold some
combinations of a digit and a number out of training and validation, and the evaluation
scores them apart (evaluate.py). A spec is one of:

* ``7+5,3+9``: a comma list of ``D+N``, a digit 0-9 and a number 0-9;
* ``random:K``: K combinations drawn by HOLD_OUT_SEED, a seed of their own, so every model
  given the same K holds out the same ones;
* ``sum:S``: every combination whose sum is S (0-18): a sum the head never sees as a target.

Every digit keeps at least one number to train with, and at least one combination is seen.
"""

from __future__ import annotations

import torch

from .config import NUM_DIGITS, NUM_NUMBERS
from .errors import ConfigError

HOLD_OUT_SEED = 3_000_017  # draws ``random:K``: the same K combinations for every model
Pair = tuple[int, int]  # (digit, number)


def _fail(spec: str, why: str) -> ConfigError:
    return ConfigError(f"--hold-out-pairs {spec!r}: {why}")


def _integer(text: str, spec: str, what: str) -> int:
    text = text.strip()
    if not text.isdigit():
        raise _fail(spec, f"{what} must be a whole number, got {text!r}")
    return int(text)


def _pair(text: str, spec: str) -> Pair:
    digit, plus, number = text.partition("+")
    d, n = digit.strip(), number.strip()
    if not plus or not (d.isdigit() and n.isdigit()) or int(d) >= NUM_DIGITS or int(n) >= NUM_NUMBERS:
        raise _fail(spec, f"{text.strip()!r} is not D+N, a digit 0-9 plus a number 0-9")
    return int(d), int(n)


def parse_pairs(spec: str) -> tuple[Pair, ...]:
    """The combinations ``spec`` holds out, sorted (``""``: none); a bad spec raises ConfigError."""
    spec = spec.strip()
    if not spec:
        return ()
    cells = NUM_DIGITS * NUM_NUMBERS
    kind, colon, value = spec.partition(":")
    if colon and kind.strip() == "random":
        k = _integer(value, spec, "K of random:K")
        if not 1 <= k < cells:
            raise _fail(spec, f"random:K holds out 1 to {cells - 1} of the {cells} combinations, got {k}")
        cells_drawn = torch.randperm(cells, generator=torch.Generator().manual_seed(HOLD_OUT_SEED))[:k]
        pairs = {(int(c) // NUM_NUMBERS, int(c) % NUM_NUMBERS) for c in cells_drawn}
    elif colon and kind.strip() == "sum":
        s = _integer(value, spec, "S of sum:S")
        if s > NUM_DIGITS + NUM_NUMBERS - 2:
            raise _fail(spec, f"a sum is 0-{NUM_DIGITS + NUM_NUMBERS - 2}, got {s}")
        pairs = {(d, s - d) for d in range(NUM_DIGITS) if 0 <= s - d < NUM_NUMBERS}
    elif colon:
        raise _fail(spec, "give D+N pairs (7+5,3+9), random:K or sum:S")
    else:
        pairs = {_pair(part, spec) for part in spec.split(",")}
    if len(pairs) == cells:
        raise _fail(spec, f"holds out all {cells} combinations: nothing would be left to train on")
    mask = pair_mask(tuple(pairs))
    starved = [str(d) for d in range(NUM_DIGITS) if bool(mask[d].all())]
    if starved:
        raise _fail(spec, f"holds out every number for digit {', '.join(starved)}: nothing left to pair it with")
    return tuple(sorted(pairs))


def pair_names(pairs: tuple[Pair, ...]) -> list[str]:
    """``[(7, 5), (3, 9)]`` -> ``["7+5", "3+9"]``: how metrics.json lists them."""
    return [f"{d}+{n}" for d, n in pairs]


def pair_mask(pairs: tuple[Pair, ...]) -> torch.Tensor:
    """(10, 10) bool, rows digit, columns number: True where a combination is held out."""
    mask = torch.zeros(NUM_DIGITS, NUM_NUMBERS, dtype=torch.bool)
    for d, n in pairs:
        mask[d, n] = True
    return mask


def avoid_pairs(digits: torch.Tensor, numbers: torch.Tensor, mask: torch.Tensor,
                generator: torch.Generator) -> torch.Tensor:
    """``numbers`` (N,) paired with ``digits`` (N,), with each held-out one (``mask``) redrawn uniformly from
    the numbers its digit may meet. One uniform per item is drawn from ``generator`` whatever the items are,
    so every process that draws the same items redraws them the same way."""
    allowed = ~mask  # (10, 10)
    counts = allowed.sum(1)  # (10,) numbers each digit may meet
    table = torch.sort((~allowed).to(torch.int8), dim=1, stable=True).indices  # (10, 10): allowed numbers first
    u = torch.rand(len(numbers), generator=generator)  # (N,)
    pick = torch.minimum((u * counts[digits]).long(), counts[digits] - 1)  # (N,) which allowed number
    redrawn = table[digits, pick]  # (N,)
    return torch.where(mask[digits, numbers], redrawn, numbers)
