"""`python -m prefstudio.jobs JOB_DIR`: run one job, alone or under `accelerate launch`."""

import sys

from prefstudio.jobs.process import main

raise SystemExit(main(sys.argv[1:]))
