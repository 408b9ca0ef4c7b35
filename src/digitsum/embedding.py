"""What the number branch learns: the ten number embeddings, their principal components, a linear read-out.

Every network here embeds the number with ``number_branch`` (an ``nn.Embedding`` of 10 rows: the
product fusion's per-unit scales, the concat and seed networks' vectors, the shift fusion's kernels
over offsets). If the network adds, "how much to add" should be a linear function of the embedding:

* ``components``: the ten embeddings centred and projected on their first two principal
  components (10, 2), to draw, each point labelled with its number;
* ``pc1_r2``: R^2 of the least-squares line predicting the number (0-9) from its score on the
  first principal component (1: the ten embeddings lie in order along one line);
* ``readout_accuracy``: leave-one-out linear read-out. For each number n, the other nine
  embeddings are centred, projected on *their* first two principal components, and a least-squares
  fit (with intercept) of their numbers on those two scores predicts n from its own embedding;
  the share of the ten numbers whose prediction rounds to n (a number never seen by its own fit,
  so an embedding that only memorises cannot score by chance more than about 1 in 10).
"""

from __future__ import annotations

import torch

from .config import NUM_NUMBERS


def number_embeddings(model: torch.nn.Module) -> torch.Tensor:
    """The ten rows of the model's number embedding -> (10, E) float64."""
    return model.number_branch.weight.detach().to("cpu", torch.float64).clone()


def _principal(points: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean (E,), the first ``k`` principal directions (E, k)) of ``points`` (M, E)."""
    mean = points.mean(0)
    _, _, vh = torch.linalg.svd(points - mean, full_matrices=False)  # vh: (min(M, E), E)
    return mean, vh[:k].T


def components(embeddings: torch.Tensor) -> torch.Tensor:
    """(10, E) -> (10, 2) scores on the first two principal components (zeros where E is 1).

    Each direction's sign is chosen so that the number's score rises with the number (on average)."""
    mean, directions = _principal(embeddings, 2)
    scores = (embeddings - mean) @ directions  # (10, k), k <= 2
    numbers = torch.arange(len(embeddings), dtype=scores.dtype)
    signs = torch.where((scores * (numbers - numbers.mean())[:, None]).sum(0) < 0, -1.0, 1.0)
    scores = scores * signs
    return torch.cat([scores, scores.new_zeros(len(scores), 2 - scores.shape[1])], 1)


def pc1_r2(embeddings: torch.Tensor) -> float:
    """R^2 of the best line from the first principal component's score to the number 0-9."""
    x = components(embeddings)[:, 0]
    y = torch.arange(len(x), dtype=x.dtype)
    if float(x.var()) == 0:
        return 0.0
    r = torch.corrcoef(torch.stack([x, y]))[0, 1]
    return float(r * r)


def readout_accuracy(embeddings: torch.Tensor) -> float:
    """Leave-one-out linear read-out of the number from its embedding (module docstring): the share right."""
    numbers = torch.arange(len(embeddings), dtype=torch.float64)
    right = 0
    for n in range(len(embeddings)):
        others = torch.cat([embeddings[:n], embeddings[n + 1:]])  # (9, E)
        mean, directions = _principal(others, 2)

        def design(points: torch.Tensor, mean=mean, directions=directions) -> torch.Tensor:
            scores = (points - mean) @ directions  # (M, k)
            return torch.cat([scores, torch.ones(len(points), 1, dtype=scores.dtype)], 1)  # (M, k + 1)

        target = torch.cat([numbers[:n], numbers[n + 1:]])  # (9,)
        weights = torch.linalg.pinv(design(others)) @ target  # (k + 1,)
        guess = float(design(embeddings[n : n + 1]) @ weights)
        right += int(min(max(round(guess), 0), NUM_NUMBERS - 1) == n)
    return right / len(embeddings)


def describe(model: torch.nn.Module) -> dict:
    """``{"embedding_size", "pc1_r2", "readout_accuracy"}`` of a model's number embedding."""
    embeddings = number_embeddings(model)
    return {"embedding_size": embeddings.shape[1], "pc1_r2": pc1_r2(embeddings),
            "readout_accuracy": readout_accuracy(embeddings)}
