"""How long Snakemake takes to decide what to do, on the demo and at paper scale.

1. no-op rerun: `snakemake --cores 2` on a finished demo run (goal <= 3 s);
2. dry run of config/config.yaml: full sweeps, 64 shards per layer (goal <= 10 s).

Both run on a private copy of the workflow. The baseline, timed in the same process, is the
same command on a one-rule workflow: Python and Snakemake's own start-up, which no change
to this workflow can remove. Usage:

    python benchmarks/bench_workflow.py [--quick] [--finished DIR] [--repeats 3]

`--finished DIR` reuses a copy where the demo already ran (made by an earlier call with
`--keep`); otherwise the demo runs first (a few minutes on 2 CPUs). `--quick` (make bench)
does not run the demo: it times a dry run of the demo's whole DAG on a fresh copy instead of
the no-op rerun (unless `--finished` is given), one repeat each.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
from workflow_runs import copy_workflow  # noqa: E402

TRIVIAL = 'rule all:\n    output: "done.txt"\n    shell: "touch {output}"\n'


def run(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if done.returncode != 0:
        raise SystemExit(f"snakemake {' '.join(args)} failed in {workdir}:\n{done.stderr[-4000:]}")
    return done


def timed(workdir: Path, *args: str, repeats: int) -> float:
    """Median wall time of `snakemake ARGS` over `repeats` runs (one untimed warm-up)."""
    run(workdir, *args)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(workdir, *args)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def report(what: str, seconds: float, goal: float, baseline: float) -> bool:
    verdict = "ok" if seconds <= goal else "OVER GOAL"
    print(
        f"{what:<42} {seconds:6.2f} s   goal <= {goal:4.1f} s   "
        f"{seconds / baseline:5.1f}x baseline   {verdict}"
    )
    return seconds <= goal


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="no demo run, one repeat each")
    parser.add_argument("--finished", type=Path, help="a copy where the demo already ran")
    parser.add_argument("--repeats", type=int, help="timed runs of each command (quick 1, full 3)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copies")
    args = parser.parse_args()
    args.repeats = args.repeats or (1 if args.quick else 3)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")

    scratch = Path(tempfile.mkdtemp(prefix="bench-workflow-"))
    try:
        trivial = scratch / "trivial"
        trivial.mkdir()
        (trivial / "Snakefile").write_text(TRIVIAL)
        run(trivial, "--cores", "1")
        baseline_noop = timed(trivial, "--cores", "1", repeats=args.repeats)
        baseline_dry = timed(trivial, "--cores", "1", "--dry-run", "--forceall", repeats=1)
        print(f"{'baseline: one-rule workflow, no-op':<42} {baseline_noop:6.2f} s")

        finished = args.finished
        if finished is None and args.quick:
            fresh = copy_workflow(scratch / "demo")
            demo_dry = timed(fresh, "--cores", "2", "--dry-run", repeats=args.repeats)
            report("dry run of the whole demo (--quick)", demo_dry, 10.0, baseline_dry)
        else:
            if finished is None:
                finished = copy_workflow(scratch / "demo")
                start = time.perf_counter()
                run(finished, "--cores", "2")
                elapsed = time.perf_counter() - start
                print(f"{'(demo run to finish, not a goal)':<42} {elapsed:6.2f} s")
            noop = timed(finished, "--cores", "2", repeats=args.repeats)
            status = run(finished, "--cores", "2", "--dry-run")
            if "Nothing to be done" not in status.stdout + status.stderr:
                raise SystemExit(
                    f"{finished}: the demo is not finished; a no-op rerun would run jobs"
                )

        paper = copy_workflow(scratch / "paper")
        dry = timed(paper, "--configfile", "config/config.yaml", "--dry-run", repeats=args.repeats)
        jobs = run(paper, "--configfile", "config/config.yaml", "--dry-run", "--quiet", "rules")
        total = [line for line in (jobs.stdout + jobs.stderr).splitlines() if "total" in line]

        ok = finished is None or report(
            "no-op rerun of the finished demo", noop, 3.0, baseline_noop
        )
        label = f"dry run, config/config.yaml ({total[-1].split()[-1] if total else '?'} jobs)"
        ok &= report(label, dry, 10.0, baseline_dry)
        if not ok:
            print("at least one goal missed")
    finally:
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
