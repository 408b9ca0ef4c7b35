"""The figure of what the number branch learns: its ten embeddings on their first two principal components.

Drawn apart from figures.py's test-set figures, from ``embedding.components`` and ``embedding.describe``.
"""

from __future__ import annotations

import numpy as np

from .figures import Drawn, new_figure, to_png


def draw_embeddings(points: np.ndarray, readout: dict) -> bytes:
    """(10, 2) principal-component scores of the number embeddings, each labelled with its number and joined
    in order 0-9: an ordered line means "how much to add" is linear in the embedding."""
    fig = new_figure(6.4, 5.2)
    ax = fig.subplots()
    ax.plot(points[:, 0], points[:, 1], color="0.75", linewidth=1, zorder=1)
    ax.scatter(points[:, 0], points[:, 1], c=np.arange(len(points)), cmap="viridis", s=120, zorder=2)
    for n, (x, y) in enumerate(points):
        ax.annotate(str(n), (x, y), textcoords="offset points", xytext=(7, 5), fontsize=12, weight="bold")
    ax.set(xlabel="first principal component", ylabel="second principal component",
           title=f"The ten number embeddings ({readout['embedding_size']} values each)\n"
                 f"linear read-out {100 * readout['readout_accuracy']:.0f}% right, "
                 f"PC1 R² {readout['pc1_r2']:.2f}")
    return to_png(fig)


def embedding_figure(points: np.ndarray, readout: dict) -> Drawn:
    """The page's entry for ``draw_embeddings``."""
    return Drawn("embeddings.png", "What the number branch learns", "The ten rows of the number embedding, "
                 "centred and projected on their first two principal components, joined in order 0-9. Linear "
                 "read-out: for each number, a least-squares line fitted on the other nine embeddings' first two "
                 "components predicts it; the share of the ten read right (about 10% by chance). PC1 R²: how "
                 "much of the number the first component's score explains.", draw_embeddings(points, readout))
