"""Export benchmark: judged pairs in PostgreSQL -> JSONL and Parquet, peak memory per process.

    .venv/bin/python bench/export/run.py --pairs 1000000 --image-pairs 10000

Builds a separate bench database (default `bench_export`; --reuse keeps a loaded one), loads
the pairs with COPY (bench/export/load.py), freezes three versions (all pairs, a 10% subset,
and the pairs with real 256x256 PNGs) with the real freeze service, then runs each export in a
fresh child process (the export service, as a `cpu` worker would), which reports its own peak
RSS (VmHWM) and CPU. Prints a Markdown table. `--refreeze` (with --reuse) freezes and times a
new version of each dataset it exports; `--drop-stored-votes` deletes the version's stored votes
before each export (the path of a version frozen before the freeze stored them).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def _env(args: argparse.Namespace) -> dict[str, str]:
    return {
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{args.database}",
        "MEDIA_ROOT": str(Path(args.media_root).resolve()),
        "STORAGE_BACKEND": "local",
        "CELERY_BROKER_URL": "memory://",
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }


def _setup(args: argparse.Namespace) -> None:
    os.environ.update(_env(args))
    import django

    django.setup()


def _database_fresh(name: str) -> None:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as db:
        db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        db.execute(f'CREATE DATABASE "{name}"')


def _load(args: argparse.Namespace) -> dict[str, float]:
    from django.core.management import call_command

    from annotation.models import AnnotatorProfile
    from annotation.services.annotators import user_create
    from bench.export.load import load
    from config.roles import Role

    call_command("migrate", "--noinput", verbosity=0)
    annotators = []
    for index in range(args.annotators):
        user = user_create(
            username=f"bench-rater-{index}", password="bench-pass-1", role=Role.ANNOTATOR
        )
        AnnotatorProfile.objects.get_or_create(user=user)
        annotators.append(user.pk)
    media = Path(args.media_root)
    timings = {}
    small = args.pairs // 10
    for name, pairs, images, first in (
        ("bench-keys-small", small, False, 0),
        ("bench-keys-large", args.pairs - small, False, small // 4),
        ("bench-images", args.image_pairs, True, args.pairs // 4),
    ):
        started = time.perf_counter()
        counts = load(
            pairs=pairs,
            queue_name=name,
            annotator_ids=annotators,
            media_root=media if images else None,
            first_group=first,
        )
        timings[name] = time.perf_counter() - started
        print(f"loaded {name}: {counts} in {timings[name]:.1f} s", flush=True)
    return timings


def _freeze(args: argparse.Namespace, needed: set[str]) -> list[dict]:
    """Freeze each bench dataset (with --reuse, only those without a frozen version, or with
    --refreeze a new version of each dataset in `needed`), timing each freeze with its CPU (this
    process and its PostgreSQL backend) and this process's peak RSS after it."""
    from django.db import connection

    from training_bridge.datasets.services.datasets import (
        dataset_get_or_create,
        dataset_version_create,
    )
    from training_bridge.datasets.services.freezing import dataset_version_freeze
    from training_bridge.models import DatasetVersion

    results = []
    for name, queues in (
        ("bench-all", ["bench-keys-small", "bench-keys-large"]),
        ("bench-tenth", ["bench-keys-small"]),
        ("bench-images", ["bench-images"]),
    ):
        dataset = dataset_get_or_create(name=name)
        frozen = DatasetVersion.objects.filter(dataset=dataset, status="frozen").first()
        fresh = args.refreeze and name in needed
        if frozen is not None and args.reuse and not fresh:
            results.append({"dataset": name, "version": frozen.pk, "seconds": None})
            continue
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            backend = cursor.fetchone()[0]
        client, server = _cpu_seconds(), _cpu_seconds(backend)
        started = time.perf_counter()
        version = dataset_version_create(dataset_id=dataset.pk, filter_spec={"queues": queues})
        version = dataset_version_freeze(version_id=version.pk)
        seconds = time.perf_counter() - started
        client, server = _cpu_seconds() - client, _cpu_seconds(backend) - server
        rss = _peak_rss_kb() / 1024
        print(
            f"froze {name} v{version.number}: {version.record_count} records in {seconds:.1f} s, "
            f"CPU {client:.1f} s (PostgreSQL {server:.1f} s), peak RSS so far {rss:.0f} MB",
            flush=True,
        )
        results.append(
            {
                "dataset": name,
                "version": version.pk,
                "records": version.record_count,
                "seconds": seconds,
            }
        )
    return results


def _stored_votes_drop(version_id: int) -> None:
    """Delete a version's stored votes (as for a version frozen before the freeze stored them):
    its next export reads them from the database."""
    from training_bridge.datasets.services.artifacts import artifact_storage, version_prefix
    from training_bridge.models import DatasetVersion

    version = DatasetVersion.objects.select_related("dataset").get(pk=version_id)
    key = f"{version_prefix(dataset_name=version.dataset.name, number=version.number)}/cache/"
    key += "votes.parquet"
    if artifact_storage().exists(key):
        artifact_storage().delete(key)


def _child(args: argparse.Namespace, *child_args: str) -> tuple[dict, float]:
    """Run this script's `_child` mode in a new process; returns its JSON and peak RSS (MB)."""
    env = {**os.environ, **_env(args)}
    proc = subprocess.Popen(
        [
            sys.executable,
            __file__,
            *child_args,
            "--database",
            args.database,
            "--media-root",
            args.media_root,
        ],  # fmt: skip
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    output = proc.stdout.read()
    _, status, _ = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"child {child_args} failed with {proc.returncode}")
    result = json.loads(output.strip().splitlines()[-1])
    return result, result["peak_rss_kb"] / 1024


def _peak_rss_kb() -> int:
    """This process's peak RSS since its exec (VmHWM). `ru_maxrss` from wait4 is not used: it
    keeps the high-water mark of the forked copy of the parent before exec, so after a fresh
    load and freeze (a parent of ~270 MB) every child read as at least that much."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def _cpu_seconds(pid: int | None = None) -> float:
    """user + system CPU seconds of a process (this one by default), from /proc."""
    user, system, _ = _cpu_split(pid)
    return user + system


def _cpu_split(pid: int | None = None) -> tuple[float, float, int]:
    """(user CPU s, system CPU s, minor page faults) of a process, from /proc."""
    fields = Path(f"/proc/{pid or 'self'}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick, int(fields[7])


def _child_export(version_id: int, format: str, include_images: bool) -> dict:
    from django.db import connection

    from training_bridge.datasets.services.exports import dataset_export_request, dataset_export_run

    export = dataset_export_request(
        version_id=version_id, format=format, include_images=include_images, force=True,
        enqueue=False,
    )  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    client_before, server_before = _cpu_split(), _cpu_seconds(backend)
    started = time.perf_counter()
    export = dataset_export_run(export_id=export.pk)
    seconds = time.perf_counter() - started
    client_after = _cpu_split()
    return {
        "records": export.records_done,
        "seconds": seconds,
        # CPU actually spent, by this process and by its PostgreSQL backend: on a machine
        # shared with other work, wall time stretches but these do not.
        "client_cpu": sum(client_after[:2]) - sum(client_before[:2]),
        "client_system": client_after[1] - client_before[1],
        "client_page_faults": client_after[2] - client_before[2],
        "server_cpu": _cpu_seconds(backend) - server_before,
        "files": len(export.artifacts),
        "bytes": sum(a["size"] for a in export.artifacts),
        "status": export.status,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=1_000_000)
    parser.add_argument("--image-pairs", type=int, default=10_000)
    parser.add_argument("--annotators", type=int, default=60)
    parser.add_argument("--database", default="bench_export")
    parser.add_argument("--media-root", default=str(ROOT / "bench/out/export/media"))
    parser.add_argument("--reuse", action="store_true", help="keep the loaded database")
    parser.add_argument("--extra", action="store_true", help="also HPS and WebDataset")
    parser.add_argument(
        "--only", help="comma-separated dataset:format[:images] runs, e.g. bench-all:parquet"
    )
    parser.add_argument(
        "--refreeze",
        action="store_true",
        help="with --reuse: freeze a new version of each dataset the runs export, and time it",
    )
    parser.add_argument(
        "--drop-stored-votes",
        action="store_true",
        help="delete the version's stored votes before each export (its first-export path)",
    )
    parser.add_argument("--child", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child is not None:
        _setup(args)
        if args.child[0] == "baseline":
            import pyarrow.parquet  # noqa: F401

            import training_bridge.datasets.services.exports  # noqa: F401

            print(json.dumps({"ok": True, "peak_rss_kb": _peak_rss_kb()}))
        else:
            version_id, format, images = args.child
            result = _child_export(int(version_id), format, images == "1")
            print(json.dumps({**result, "peak_rss_kb": _peak_rss_kb()}))
        return

    if not args.reuse:
        _database_fresh(args.database)
    _setup(args)
    load_times = {} if args.reuse else _load(args)

    runs = [
        ("bench-all", "jsonl", False),
        ("bench-all", "parquet", False),
        ("bench-tenth", "jsonl", False),
        ("bench-tenth", "parquet", False),
        ("bench-images", "parquet", True),
    ]
    if args.only:
        runs = [
            (item.split(":")[0], item.split(":")[1], item.endswith(":images"))
            for item in args.only.split(",")
        ]
    elif args.extra:
        runs += [
            ("bench-all", "webdataset", False),
            ("bench-all", "hps", False),
            ("bench-images", "webdataset", True),
        ]
    frozen = {row["dataset"]: row for row in _freeze(args, {dataset for dataset, _, _ in runs})}
    _, baseline_rss = _child(args, "--child", "baseline")
    rows = []
    for dataset, format, images in runs:
        if args.drop_stored_votes:
            _stored_votes_drop(frozen[dataset]["version"])
        result, rss = _child(
            args, "--child", str(frozen[dataset]["version"]), format, "1" if images else "0"
        )
        rate = result["records"] / result["seconds"]
        rows.append((dataset, format, images, result, rss, rate))
        print(
            f"exported {dataset} {format} images={images}: {result['records']} records "
            f"in {result['seconds']:.1f} s ({rate:,.0f}/s), peak RSS {rss:.0f} MB; export CPU "
            f"{result['client_cpu']:.1f} s ({result['client_system']:.1f} s system, "
            f"{result['client_page_faults']:,} page faults)",
            flush=True,
        )

    print()
    print(f"load: {json.dumps({k: round(v, 1) for k, v in load_times.items()})}")
    for row in frozen.values():
        if row.get("seconds"):
            print(
                f"freeze {row['dataset']}: {row['records']} records in {row['seconds']:.1f} s "
                f"({row['records'] / row['seconds']:,.0f}/s)"
            )
    print(f"baseline RSS of an export process (Django + pyarrow imported): {baseline_rss:.0f} MB")
    print()
    print(
        "| dataset | format | image bytes | pairs | wall s | pairs/s (wall) | export CPU s | "
        "PostgreSQL CPU s | pairs per CPU-s | peak RSS MB | output MB |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for dataset, format, images, result, rss, rate in rows:
        cpu = result["client_cpu"] + result["server_cpu"]
        print(
            f"| {dataset} | {format} | {'yes' if images else 'no'} | {result['records']:,} | "
            f"{result['seconds']:.1f} | {rate:,.0f} | {result['client_cpu']:.1f} | "
            f"{result['server_cpu']:.1f} | {result['records'] / cpu:,.0f} | {rss:.0f} | "
            f"{result['bytes'] / 2**20:,.0f} |"
        )


if __name__ == "__main__":
    main()
