"""Best-of-N: sample N responses per prompt, score them with reward models, measure win rate.

The method is in docs/methods.md, "Best-of-N"; the choices in docs/bon.md.

runs.py keeps runs, prompts and candidates in the workspace (and imports them
from JSONL); job.py samples and scores as a background job; winrate.py is the
win-rate arithmetic and its judging; pairs.py turns candidates into pairs for
labelling.
"""
