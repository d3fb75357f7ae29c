"""Best-of-N (SPEC §5): sample N responses per prompt, score them with reward models, measure win rate.

runs.py keeps runs, prompts and candidates in the workspace (and imports them
from JSONL); job.py samples and scores as a background job; winrate.py is the
win-rate arithmetic and its judging; pairs.py turns candidates into pairs for
labelling.
"""
