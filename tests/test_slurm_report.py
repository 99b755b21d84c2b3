"""srlrfr slurm-report on sacct text captured from tools/slurm_local.sh's cluster (SLURM 22.05).

The real sacct is read in tests/test_slurm.py; here the parsing, the per-rule
sums and the notes for a cluster that keeps no comments or no MaxRSS.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from srlrfr import slurm_report as sr

# `sacct --parsable2 --noheader -o <sr.FIELDS> -S now-1hours`, a smoke run through
# workflow/profiles/slurm: job 7 still running (sacct stores a comment only at
# the end), the others done; 9 failed.
CAPTURED = """\
6|srlrfr_284db7d6-13ab-4c32-bbf0-54b7fd3e6d98|rule_landmarks_wildcards_lfw|COMPLETED|72|3530M||2
6.batch|batch||COMPLETED|72||628.50M|2
6.0|python3.11||COMPLETED|56||1820764K|2
7|srlrfr_284db7d6-13ab-4c32-bbf0-54b7fd3e6d98||RUNNING|35|3411M||2
7.batch|batch||RUNNING|35|||2
7.0|python3.11||RUNNING|23|||2
8|srlrfr_284db7d6-13ab-4c32-bbf0-54b7fd3e6d98|rule_align_wildcards_lfw_dlib_160x160|COMPLETED|40|2900M||2
8.batch|batch||COMPLETED|40||640M|2
8.0|python3.11||COMPLETED|30||1.20G|2
9|srlrfr_284db7d6-13ab-4c32-bbf0-54b7fd3e6d98|rule_align_wildcards_celeba_dlib_160x160|FAILED|21|2900M||2
9.batch|batch||FAILED|21||600M|2
9.0|python3.11||FAILED|12||700M|2
"""


def test_steps_fold_into_their_job_and_memory_is_summed_over_steps():
    jobs = {j.job_id: j for j in sr.parse(CAPTURED)}
    assert sorted(jobs) == ["6", "7", "8", "9"]
    six = jobs["6"]
    assert (six.rule, six.wildcards, six.state, six.elapsed_s) == ("landmarks", "lfw", "COMPLETED", 72)
    assert six.req_mb == 3530
    assert six.max_rss_mb == pytest.approx(628.5 + 1820764 / 1024)  # batch + srun step, both alive at once
    assert jobs["8"].max_rss_mb == pytest.approx(640 + 1.2 * 1024)
    assert six.steps == ["batch", "0"]
    assert jobs["7"].rule == sr.NO_COMMENT and jobs["7"].max_rss_mb is None


def test_per_rule_summary_and_running_jobs_named_from_squeue():
    jobs = sr.with_live_comments(sr.parse(CAPTURED), {"7": "rule_landmarks_wildcards_celeba"})
    rows = {r["rule"]: r for r in sr.summary(jobs)}
    assert sorted(rows) == ["align", "landmarks"]
    align = rows["align"]
    assert align["jobs"] == 2 and align["states"] == "1 COMPLETED, 1 FAILED"
    assert (align["elapsed"], align["longest"]) == (61, 40)
    assert align["requested"] == 2900 and align["max_rss"] == pytest.approx(640 + 1228.8)
    assert align["used"] == pytest.approx((640 + 1228.8) / 2900)
    text = sr.render(jobs, per_job=True)
    assert "landmarks" in text and "1 COMPLETED, 1 RUNNING" in text
    assert "celeba_dlib_160x160" in text and "note:" not in text


@pytest.mark.parametrize("text, cpus, mb", [("3926M", 1, 3926), ("1.20G", 1, 1228.8), ("210260K", 1, 210260 / 1024),
                                            ("4Gc", 2, 8192), ("16Gn", 4, 16384), ("0", 1, 0), ("", 1, None)])
def test_sacct_memory_units(text, cpus, mb):
    assert sr.memory_mb(text, cpus) == (pytest.approx(mb) if mb is not None else None)


def test_a_cluster_without_comments_or_memory_sampling_is_named_not_blank():
    bare = "12|run1||COMPLETED|30|2000M||1\n12.batch|batch||COMPLETED|30|||1\n"
    text = sr.render(sr.parse(bare))
    assert "AccountingStoreFlags=job_comment" in text and "JobAcctGatherType" in text
    assert sr.render([]) == "no SLURM jobs found"


def test_a_line_of_other_columns_is_refused_naming_them():
    with pytest.raises(ValueError, match="JobID,JobName,Comment"):
        sr.parse("12|run1|COMPLETED\n")


def test_latest_run_id_is_read_from_the_newest_snakemake_log(tmp_path: Path):
    log_dir = tmp_path / ".snakemake" / "log"
    with pytest.raises(FileNotFoundError, match="SLURM run ID"):
        sr.latest_run_id(log_dir)
    log_dir.mkdir(parents=True)
    (log_dir / "2026-12-03T070000.1.snakemake.log").write_text("SLURM run ID: srlrfr_old\n")
    newer = log_dir / "2026-12-03T080000.1.snakemake.log"
    newer.write_text("Building DAG of jobs...\nSLURM run ID: srlrfr_new\nJob 1 has been submitted\n")
    (log_dir / "2026-12-03T090000.1.snakemake.log").write_text("a local run: no SLURM run ID\n")
    os.utime(newer, (2e9, 2e9))
    os.utime(log_dir / "2026-12-03T090000.1.snakemake.log", (2.1e9, 2.1e9))
    assert sr.latest_run_id(log_dir) == "srlrfr_new"
