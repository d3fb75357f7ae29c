"""Train a job folder with the real loop (tests/test_sharding.py):

    python tests/fsdp_check.py JOB_DIR union
        one process whose every batch is the union of the two batches two processes would take at that
        step, per source (rank 0's pairs, then rank 1's): the curve two processes must give.
    torchrun --standalone --nproc_per_node 2 tests/fsdp_check.py JOB_DIR run
        two processes, from start to end.
    torchrun --standalone --nproc_per_node 2 tests/fsdp_check.py JOB_DIR stop-resume STEPS
        two processes (gloo; an fsdp job shards itself): stopped after STEPS steps, then resumed from the
        checkpoint the stop saved, in the same processes.
"""

import itertools
import sys
from pathlib import Path

from prefstudio.jobs.layout import CONFIG
from prefstudio.train import loop
from prefstudio.train.config import load_config


def union_of_two_ranks(plan):
    """plan_batches, with batches 2s and 2s+1 (ranks 0 and 1 at step s) merged source by source."""
    def planned(*args, **kwargs):
        batches, k = plan(*args, **kwargs), len(kwargs["sources"])
        merged = []
        for a, b in zip(batches[0::2], batches[1::2]):
            sub = len(a) // k
            merged.append([p for i in range(k) for p in a[i * sub:(i + 1) * sub] + b[i * sub:(i + 1) * sub]])
        return merged
    return planned


def main() -> None:
    job, mode = Path(sys.argv[1]), sys.argv[2]
    config = load_config(job / CONFIG)
    if mode in ("union", "run"):
        if mode == "union":
            loop.plan_batches = union_of_two_ranks(loop.plan_batches)
        loop.train(job, config)
        return
    calls = itertools.count()  # should_stop is asked before every batch: the (STEPS+1)-th ask stops it
    stop_after = int(sys.argv[3])
    stopped = loop.train(job, config, should_stop=lambda: next(calls) >= stop_after)
    assert stopped.name == f"step-{stop_after}", stopped  # else the resume below would prove nothing
    loop.train(job, config)


if __name__ == "__main__":
    main()
