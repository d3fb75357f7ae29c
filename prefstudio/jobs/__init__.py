"""Background jobs: a folder each, a process each, one after another; no torch needed to handle them.

layout     what is where in a job folder (config, status, log, metrics, checkpoints)
kinds      the kinds of job (train, eval, bon) and the code that runs and ingests each
queue      making, starting, cancelling and resuming jobs
status     what a folder says about its job; liveness, whether its process still runs (here, or by its heartbeat)
runner_lock  one runner per folder, on any host
process    the job process itself (`python -m prefstudio.jobs JOB_DIR`)
parts      numbered Parquet part files, each whole or absent
progress   what a runner reports; metrics_log, a training job's metrics read as they grow
sync       bringing finished jobs into the workspace database, done on every open
names      job names, taken wherever a job id is
retrain    a training job's settings trained again on the labels as they are now, linked to its parent

The front ends use the names below; the job process and the kinds' modules import
the submodules they need.
"""

from prefstudio.jobs.queue import cancel, new_job, resume, start_next
from prefstudio.jobs.status import JobStatus, list_jobs, read_status
from prefstudio.jobs.sync import bring_in

__all__ = ["JobStatus", "bring_in", "cancel", "list_jobs", "new_job", "read_status", "resume", "start_next"]
