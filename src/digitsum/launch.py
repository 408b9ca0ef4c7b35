"""What ``torchrun`` tells each process it starts, through the environment: read here, and only here.

``RANK`` (this process's global rank), ``WORLD_SIZE`` (how many processes in all) and ``LOCAL_RANK``
(its rank on this machine). A process not launched by torchrun is rank 0 of a world of one.
No torch import: the command line asks before anything heavy loads.
"""

from __future__ import annotations

import os


def env_rank() -> int:
    """This process's global rank as torchrun set it (0 when not launched by torchrun)."""
    return int(os.environ.get("RANK", "0"))


def env_world_size() -> int:
    """How many processes torchrun started in all (1 when not launched by torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def env_local_rank() -> int:
    """This process's rank on its machine (its GPU under CUDA; 0 when not launched by torchrun)."""
    return int(os.environ.get("LOCAL_RANK", "0"))
