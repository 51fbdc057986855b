"""Long runs in units that land: run a named part of a run, keep its evidence, put it back later.

A run too long for one sitting (the CPU run of ``config/cifar-cpu.yaml``, say) is cut into
*units*, each a list of Snakemake targets that finishes in under an hour
(``config/units/RUN.yaml``). :func:`run_unit` runs one and writes its evidence under
``docs/runs/DATE-RUN/UNIT/``: the config, the commit, the exact command, the machine, wall and
CPU seconds, the manifest of the data it read (checksums), and every file its jobs made
(weights, tables, figures, logs, benchmarks) with Snakemake's record of each job (its params,
its inputs and their checksums). Only the prepared data is left out: it is large, and
:func:`restore` prepares it again from the raw data and checks it against the unit's checksums.

:func:`restore` puts the landed units of a run back into ``results/`` so that Snakemake counts
their jobs as done: a dry run then plans only the units not yet run. It refuses every output
whose job would not compute the same thing in this checkout (the rerun contract of README.md):
a code input (the job's script or a package module it runs) whose content differs, a different
set of code inputs, or other params. Units landed from different commits combine when the code
they ran is unchanged.

    python -m nnprobe.units run cifar-cpu resnet-seed0      # make unit RUN=cifar-cpu UNIT=resnet-seed0
    python -m nnprobe.units restore cifar-cpu               # make restore RUN=cifar-cpu
    python -m nnprobe.units status cifar-cpu                # which units have landed, which remain
    python -m nnprobe.units readme cifar-cpu                # docs/runs/DATE-cifar-cpu/README.md from the units
"""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .core.io import sha256_file

__all__ = ["Run", "load_run", "landed_units", "run_unit", "restore", "run_readme", "record_path", "main"]

#: Rules whose outputs a unit does not keep: the prepared data, made again by :func:`restore`
#: from the raw data (its checksums compared with the unit's) before any output is put back.
REBUILT_RULES = ("prepare_dataset", "check_dataset", "prepare_adversarial_dataset", "check_adversarial_dataset")
#: A unit's evidence larger than this is reported (the issue's budget is ~60 MB for a whole run).
UNIT_BYTES_WARNING = 30 * 2**20


@dataclass(frozen=True)
class Run:
    """A run: its name, its config files (merged in order) and its units (name -> Snakemake
    targets), in order."""

    name: str
    config: tuple[str, ...]
    units: dict[str, list[str]]
    snakemake: str = "snakemake"

    def command(self, targets: Sequence[str], *extra: str) -> list[str]:
        """The Snakemake command line that makes ``targets`` with this run's config."""
        return [self.snakemake, *targets, "--configfile", *self.config, "--replace-workflow-config", *extra]


def load_run(name: str, root: str | Path = ".", snakemake: str | None = None) -> Run:
    """The run ``config/units/NAME.yaml`` describes (relative to the checkout ``root``)."""
    path = Path(root) / "config" / "units" / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (Path(root) / "config" / "units").glob("*.yaml"))
        raise SystemExit(f"no run {name!r}: {path} does not exist (runs: {', '.join(known) or 'none'})")
    spec = yaml.safe_load(path.read_text())
    units = spec.get("units") or {}
    if not isinstance(units, dict) or not units or not all(isinstance(t, list) and t for t in units.values()):
        raise SystemExit(f"{path}: 'units' must map each unit name to a non-empty list of Snakemake targets")
    exe = snakemake or str(Path(sys.executable).with_name("snakemake"))
    configs = spec["config"] if isinstance(spec["config"], list) else [spec["config"]]
    return Run(name=name, config=tuple(configs), units={k: list(v) for k, v in units.items()}, snakemake=exe)


def record_path(output: str, metadata: str | Path = ".snakemake/metadata") -> Path:
    """Where Snakemake's file persistence keeps the record of ``output`` (base64 of its path,
    split into parts of at most NAME_MAX - 1 characters, as ``snakemake.persistence.file``)."""
    metadata = Path(metadata)
    try:
        limit = os.pathconf(metadata if metadata.exists() else ".", "PC_NAME_MAX") or 255
    except (OSError, ValueError):
        limit = 255
    encoded = base64.urlsafe_b64encode(output.encode()).decode()
    parts = [encoded[i : i + limit - 1] for i in range(0, len(encoded), limit - 1)]
    return metadata.joinpath(*(["@" + p for p in parts[:-1]] + [parts[-1]]))


def _relative(arg: str) -> str:
    """A path below the working directory as a relative path (a command line that reads the same
    in any clone), anything else as it is."""
    return os.path.relpath(arg) if os.path.isabs(arg) and Path(arg).is_relative_to(Path.cwd()) else arg


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else ""


def _summary(run: Run, targets: Sequence[str]) -> list[dict[str, str]]:
    """Snakemake's summary of every output in the DAG of ``targets`` (file, rule, logs, status)."""
    done = subprocess.run(run.command(targets, "--summary", "--quiet", "all"), capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"snakemake --summary failed:\n{done.stderr[-3000:]}")
    lines = [line.split("\t") for line in done.stdout.splitlines() if "\t" in line]
    header, rows = lines[0], lines[1:]
    return [dict(zip(header, row)) for row in rows]


def _machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{platform.node()}: {cpu}, {os.cpu_count()} cores, {memory:.0f} GiB, {platform.platform()}"


def _unit_files(run: Run, targets: Sequence[str], since: float) -> tuple[list[dict[str, Any]], list[str]]:
    """The jobs of the DAG of ``targets`` that finished after ``since``, one entry per output
    with Snakemake's record, and the outputs of the rebuilt rules the unit read."""
    jobs, prepared = [], []
    for row in _summary(run, targets):
        output = row["output_file"]
        if row["rule"] in REBUILT_RULES:
            prepared.append(output)
            continue
        path = record_path(output)
        if not path.is_file() or not Path(output).is_file():
            continue
        record = json.loads(path.read_text())
        if (record.get("endtime") or 0) >= since and not record.get("incomplete"):
            jobs.append({"output": output, "record": record})
    return jobs, prepared


def _companions(log: str) -> list[str]:
    """The files a job writes beside its log by convention: its benchmark
    (results/benchmarks/..., .tsv) and files named after the log (a population's history)."""
    path = Path(log)
    found = [p for p in path.parent.glob(f"{path.stem}.*") if p.is_file()]
    parts = path.parts
    if len(parts) > 2 and parts[:2] == ("results", "logs"):
        bench = Path("results", "benchmarks", *parts[2:]).with_suffix(".tsv")
        found += [bench] if bench.is_file() else []
    return sorted({str(p) for p in found})


def run_unit(run: Run, unit: str, cores: int = 1, docs: str | Path = "docs/runs", date: str | None = None,
             extra: Sequence[str] = (), since: float | None = None) -> Path:
    """Run ``unit`` of ``run`` (its targets, ``cores`` cores) and write its evidence folder.

    The unit keeps the outputs of its DAG's jobs that finished after it started, or after
    ``since`` (a Unix time; 0 keeps every output of its DAG, e.g. of a run finished before).

    The folder is ``docs/runs/DATE-RUN/UNIT/``: ``unit.json`` (command, commit, machine, times,
    the jobs with Snakemake's records, the prepared data's checksums), ``results/`` (every file
    the unit's jobs made, at its path under the checkout), ``config.yaml`` (the run's config).
    """
    if unit not in run.units:
        raise SystemExit(f"run {run.name!r} has no unit {unit!r}; its units: {', '.join(run.units)}")
    targets = run.units[unit]
    command = run.command(targets, "--cores", str(cores), "--rerun-incomplete", "--nolock", *extra)
    date = date or datetime.date.today().isoformat()
    out = Path(docs) / f"{date}-{run.name}" / unit
    commit, dirty = _git("rev-parse", "HEAD"), bool(_git("status", "--porcelain", "--untracked-files=no"))
    started, before = time.time(), resource.getrusage(resource.RUSAGE_CHILDREN)
    log_path = Path("results", "units", run.name, f"{unit}.log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    print(f"unit {run.name}/{unit}: {' '.join(command)}  (log {log_path})", flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(cores))}
    with open(log_path, "w") as log:
        status = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env).returncode
    wall, after = time.time() - started, resource.getrusage(resource.RUSAGE_CHILDREN)
    if status != 0:
        raise SystemExit(f"unit {unit} failed (snakemake exit {status}); its log: {log_path}")
    jobs, prepared = _unit_files(run, targets, started if since is None else since)
    if out.exists():
        shutil.rmtree(out)
    files: dict[str, str] = {}
    for job in jobs:
        logs = job["record"].get("log") or []
        for name in [job["output"], *(kept for log in logs for kept in [log, *_companions(log)])]:
            if Path(name).is_file() and name not in files:
                target = out / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(name, target)
                files[name] = sha256_file(Path(name))
    for i, config in enumerate(run.config):
        shutil.copy2(config, out / (f"config-{i}-{Path(config).name}" if len(run.config) > 1 else "config.yaml"))
    shutil.copy2(log_path, out / "snakemake.log")
    record = {
        "run": run.name, "unit": unit, "targets": targets, "command": " ".join(_relative(a) for a in command),
        "config": list(run.config), "commit": commit, "dirty": dirty, "machine": _machine(),
        "python": platform.python_version(), "started": datetime.datetime.fromtimestamp(started).isoformat(timespec="seconds"),
        "wall_seconds": round(wall, 1), "kept_jobs_finished_after": since if since is not None else started,
        "cpu_seconds": round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 1),
        "load_average_at_end": os.getloadavg(),
        "prepared": {p: sha256_file(Path(p)) for p in prepared if Path(p).is_file() and not p.endswith("checks.json")},
        "jobs": jobs, "files": files,
    }
    (out / "unit.json").write_text(json.dumps(record, indent=1, default=str) + "\n")
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"unit {run.name}/{unit} done in {wall:.0f} s wall, {record['cpu_seconds']:.0f} s CPU: "
          f"{len(jobs)} outputs, {len(files)} files, {size / 2**20:.1f} MiB in {out}", flush=True)
    if size > UNIT_BYTES_WARNING:
        print(f"warning: {out} holds {size / 2**20:.1f} MiB (a whole run should stay under ~60 MB)", flush=True)
    return out


def landed_units(run: Run, docs: str | Path = "docs/runs") -> dict[str, Path]:
    """The landed units of ``run`` (name -> folder), from every ``docs/runs/*-RUN/`` folder; a unit
    landed twice counts by its newest folder."""
    found: dict[str, Path] = {}
    for folder in sorted(Path(docs).glob(f"*-{run.name}")):
        for unit_json in sorted(folder.glob("*/unit.json")):
            found[unit_json.parent.name] = unit_json.parent
    return found


def _code_differences(job: Mapping[str, Any]) -> list[str]:
    """The code inputs (scripts/, src/) of a packed job whose content here differs from the
    checksum Snakemake recorded when the job ran."""
    record = job["record"]
    problems = []
    for path, checksum in sorted((record.get("input_checksums") or {}).items()):
        if not path.startswith(("scripts/", "src/")):
            continue
        expected = checksum.split(":", 1)[-1]
        if not Path(path).is_file():
            problems.append(f"{path} is gone")
        elif sha256_file(Path(path)) != expected:
            problems.append(f"{path} differs from the code the unit ran")
    return problems


def _changed_outputs(run: Run, targets: Sequence[str]) -> dict[str, str]:
    """The outputs in the DAG of ``targets`` whose recorded set of inputs or params differ from
    what this checkout would run, with Snakemake's word for it (its ``--summary`` status: the
    per-file check; ``--list-changes params`` also lists unchanged files in Snakemake 9.27)."""
    changes = ("set of input files changed", "params changed")
    return {row["output_file"]: row["status"] for row in _summary(run, targets) if row["status"] in changes}


def restore(run: Run, docs: str | Path = "docs/runs", cores: int = 1) -> tuple[list[str], dict[str, list[str]]]:
    """Put every landed unit of ``run`` back into ``results/``; return the outputs restored and
    the refused ones with their reasons.

    First the prepared data is made again (Snakemake, the run's config) and compared with the
    checksums each unit recorded; a unit that read other data is refused whole. Then each unit's
    files are copied back with Snakemake's records of their jobs, all with one modification
    time after the prepared data's, so that Snakemake counts them as done. Last, an output is
    refused (removed again, with its record) when its job's code inputs differ here, or when
    Snakemake finds that the set of its inputs or its params differ from what this checkout
    would run (the status column of ``snakemake --summary``).
    """
    units = landed_units(run, docs)
    records = {name: json.loads((folder / "unit.json").read_text()) for name, folder in units.items()}
    prepared = sorted({p for r in records.values() for p in r.get("prepared", {})})
    refused: dict[str, list[str]] = {}
    if prepared:
        needed = sorted({str(Path(p).parent / "checks.json") for p in prepared})
        print(f"restore {run.name}: preparing the data again ({', '.join(needed)})", flush=True)
        done = subprocess.run(run.command(needed, "--cores", str(cores), "--quiet", "all"), capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"preparing the data failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    checksums = {p: sha256_file(Path(p)) for p in prepared if Path(p).is_file()}
    placed: set[str] = set()
    stamp = time.time()
    for name, record in records.items():
        wrong = [p for p, c in record.get("prepared", {}).items() if checksums.get(p) != c]
        if wrong:
            for job in record["jobs"]:
                refused[job["output"]] = [f"unit {name} read other prepared data ({', '.join(wrong)})"]
            continue
        folder = units[name]
        for path in record["files"]:
            target = Path(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(folder / path, target)
            os.utime(target, (stamp, stamp))
        for job in record["jobs"]:
            path = record_path(job["output"])
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(job["record"]))
            # a job of this output killed here before is no longer incomplete: its output is back
            record_path(job["output"], ".snakemake/incomplete").unlink(missing_ok=True)
            placed.add(job["output"])
            problems = _code_differences(job)
            if problems:
                refused[job["output"]] = problems
    targets = sorted({t for r in records.values() for t in r["targets"]})
    if placed:
        for output, status in _changed_outputs(run, targets).items():
            if output in placed:
                refused.setdefault(output, []).append(f"Snakemake: {status} (--summary)")
    for output in refused:
        if output in placed:
            Path(output).unlink(missing_ok=True)
            record_path(output).unlink(missing_ok=True)
    restored = sorted(placed - set(refused))
    return restored, refused


def status(run: Run, docs: str | Path = "docs/runs") -> list[tuple[str, str]]:
    """Each unit of ``run`` with where it landed (or ``not landed``)."""
    landed = landed_units(run, docs)
    return [(unit, str(landed[unit]) if unit in landed else "not landed") for unit in run.units]


def run_readme(run: Run, docs: str | Path = "docs/runs") -> list[Path]:
    """Write ``README.md`` of every ``docs/runs/DATE-RUN/`` folder from its units' records: what
    each unit ran, where, how long (wall and CPU seconds), from which commit, and how big its
    evidence is; and which units of the run have not landed anywhere yet."""
    landed = landed_units(run, docs)
    written = []
    for folder in sorted(Path(docs).glob(f"*-{run.name}")):
        lines = [f"# {folder.name}", "",
                 f"Units of the run `{run.name}` (`config/units/{run.name}.yaml`, config "
                 f"{' + '.join(f'`{c}`' for c in run.config)}), landed by `make unit RUN={run.name} UNIT=...` "
                 f"(`python -m nnprobe.units`); `make restore RUN={run.name}` puts them back into `results/`. "
                 "Each unit's folder holds `unit.json` (its command, commit, machine, times, the checksums of the "
                 "prepared data and Snakemake's record of every job), its config, `snakemake.log` and every file "
                 "its jobs made, under their `results/` paths. This README is written by "
                 f"`python -m nnprobe.units readme {run.name}`.", "",
                 "| unit | targets | started | wall s | CPU s | load at end | commit | MiB |",
                 "|---|---|---|---:|---:|---|---|---:|"]
        for unit_json in sorted(folder.glob("*/unit.json"), key=lambda p: json.loads(p.read_text())["started"]):
            r = json.loads(unit_json.read_text())
            size = sum(p.stat().st_size for p in unit_json.parent.rglob("*") if p.is_file()) / 2**20
            load = ", ".join(f"{x:.1f}" for x in r.get("load_average_at_end", []))
            targets = "<br>".join(f"`{t}`" for t in r["targets"])
            commit = r["commit"][:7] + (" (dirty)" if r.get("dirty") else "")
            lines.append(f"| {r['unit']} | {targets} | {r['started']} | {r['wall_seconds']:.0f} | "
                         f"{r['cpu_seconds']:.0f} | {load} | {commit} | {size:.1f} |")
        machines = sorted({json.loads(p.read_text())["machine"] for p in folder.glob("*/unit.json")})
        missing = [u for u in run.units if u not in landed]
        lines += ["", "Machine: " + "; ".join(machines) + ". One core a unit (`--cores 1`, OMP_NUM_THREADS=1, "
                  "nice 5); units ran two at a time beside other work, so wall seconds are times under load.", "",
                  "Not landed yet: " + (", ".join(f"`{u}`" for u in missing) if missing else "none") + ".", ""]
        path = folder / "README.md"
        path.write_text("\n".join(lines))
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nnprobe.units", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "restore", "status", "readme"):
        p = sub.add_parser(name)
        p.add_argument("run", help="the run's name (config/units/RUN.yaml)")
        if name == "run":
            p.add_argument("unit")
            p.add_argument("--cores", type=int, default=1)
            p.add_argument("--date", help="the evidence folder's date (default: today)")
            p.add_argument("--since", type=float, help="keep the outputs of the unit's jobs that finished after this "
                           "Unix time (default: the unit's start; 0: every output of its DAG, made earlier too)")
        if name == "restore":
            p.add_argument("--cores", type=int, default=1)
        p.add_argument("--docs", default="docs/runs")
        p.add_argument("--snakemake", help="the snakemake executable (default: beside this Python)")
    args = parser.parse_args(argv)
    run = load_run(args.run, snakemake=args.snakemake)
    if args.command == "run":
        run_unit(run, args.unit, cores=args.cores, docs=args.docs, date=args.date, since=args.since)
    elif args.command == "readme":
        for path in run_readme(run, args.docs):
            print(f"wrote {path}")
    elif args.command == "status":
        for unit, where in status(run, args.docs):
            print(f"{unit:32s} {where}")
    else:
        restored, refused = restore(run, args.docs, cores=args.cores)
        print(f"restore {run.name}: {len(restored)} outputs restored from "
              f"{len(landed_units(run, args.docs))} landed units", flush=True)
        if refused:
            print(f"refused {len(refused)} outputs: this checkout would not compute them as the unit did, "
                  f"so Snakemake will run their jobs again:", file=sys.stderr)
            for output, why in sorted(refused.items()):
                print(f"  {output}: {'; '.join(why)}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
