"""The failed jobs' own error lines printed by the Snakefile's onerror (srlrfr/failed_jobs.py).

The log below is the shape of a real one: a job failed on tools/slurm_local.sh's
cluster, Snakemake's block for it ("Reason: Unknown"), then, from
show-failed-logs, the rule's log and the SLURM log holding the node's own
Snakemake output with a second block for the same rule. The SLURM run itself:
tests/test_slurm.py.
"""
from __future__ import annotations

from pathlib import Path

from srlrfr import failed_jobs as fj

ERROR = ("srlrfr evaluate: error: results/features/lfw/dlib_resnet34/hr.npz is damaged "
         "(File is not a zip file): delete it and rerun step features")
RUN_LOG = f"""\
Job 1 has been submitted with SLURM jobid 22 (log: /r/.snakemake/slurm_logs/rule_evaluate/x/22.log).
[Thu Dec  3 07:40:01 2026]
Error in rule evaluate:
    message: SLURM-job '22' failed, SLURM status is: 'FAILED'. Reason: Unknown.
    jobid: 1
    output: results/eval/lfw/dlib_resnet34/bicubic/10x10/metrics.json
    log: logs/evaluate_lfw.log, /r/.snakemake/slurm_logs/rule_evaluate/x/22.log (check log file(s) for error details)
    external_jobid: 22
Logfile logs/evaluate_lfw.log:
========
{ERROR}
========
Logfile /r/.snakemake/slurm_logs/rule_evaluate/x/22.log:
========
Error in rule evaluate:
    message: None
    jobid: 0
    log: logs/evaluate_lfw.log (check log file(s) for error details)
========
Error in rule train:
    jobid: 3
    log: logs/train_0.5.log (check log file(s) for error details)
Shutting down, this might take some time.
"""


def test_each_failed_job_once_without_slurm_logs():
    assert fj.failed_jobs(RUN_LOG) == [("evaluate", ["logs/evaluate_lfw.log"]), ("train", ["logs/train_0.5.log"])]
    assert fj.failed_jobs("Building DAG of jobs...\nFinished jobid: 1\n") == []


def test_the_cause_is_the_steps_last_error_line(tmp_path: Path):
    log = tmp_path / "evaluate.log"
    log.write_text("INFO srlrfr.steps.evaluate: loading features\nan earlier error: retried\n" + ERROR + "\n\n")
    assert fj.cause(log) == ERROR
    log.write_text("Traceback (most recent call last):\n  File x\nKilled\n")
    assert fj.cause(log) == "Killed"  # no line says error: the last one
    log.write_text("")
    assert fj.cause(log) == "(log is empty)"
    assert fj.cause(tmp_path / "absent.log").startswith("(log not readable")


def test_summary_names_rule_log_and_cause(tmp_path: Path):
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "evaluate_lfw.log").write_text(ERROR + "\n")
    (tmp_path / "logs" / "train_0.5.log").write_text("srlrfr train: error: out of memory\n")
    text = fj.summary(RUN_LOG, tmp_path)
    assert text.splitlines() == ["srlrfr: why the 2 jobs failed (from each rule's log):",
                                 f"  evaluate (logs/evaluate_lfw.log): {ERROR}",
                                 "  train (logs/train_0.5.log): srlrfr train: error: out of memory"]
    assert fj.summary("no errors here") == ""
