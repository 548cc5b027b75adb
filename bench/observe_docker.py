"""`supervisor observe docker` on a real engine holding 200 containers, and `eval` of the world
it writes, as medians.

    python bench/observe_docker.py [--containers 200] [--running 40] [--repeat 5]

Starts a private dockerd with networking off (tests/support/dockerd.py; needs root, docker.io
and busybox-static, and pytest from the dev extra), creates the containers from the offline
busybox image (`--running` of them sleeping, the rest exited: 0 for most, 1 for every
twentieth; exited containers cost the engine no process, so 200 fit on a small machine), and
declares them in an inventory with 10 more that do not run. Then it times, each as a child
process of the installed command:

- observe into an empty world directory (every record written);
- observe again into the same directory (records unchanged, only node and world.json written);
- eval of that world against the inventory, as it runs after each observation (the cache of
  parsed inputs holds the records that did not change), and with the cache off;
- eval of a 2-service lab, for the cold-start goal's baseline, in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SUPERVISOR = str(Path(sys.executable).parent / "supervisor")
COLD_START_GOAL = 0.250  # seconds, docs/performance.md: eval of a small lab
sys.path.insert(0, str(ROOT / "tests"))


def timed(argv: list[str], **environment: str) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False,
                          env={**os.environ, **environment})
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr[-400:]}")
    return elapsed, done.stdout


def create_containers(engine: object, count: int, running: int) -> None:
    from support.dockerd import Dockerd

    assert isinstance(engine, Dockerd)

    def one(index: int) -> None:
        if index < running:
            command = ["sleep", "86400"]
        elif index % 20 == 19:
            command = ["sh", "-c", "exit 1"]
        else:
            command = ["true"]
        engine.run(f"svc-{index:03d}", *command, labels={
            "com.docker.compose.project": f"stack{index % 10}",
            "com.docker.compose.service": f"svc-{index:03d}"})

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(count)))
    for index in range(running, count):
        engine.wait_state(f"svc-{index:03d}", "exited", timeout=120)


def write_inventory(hosts: Path, count: int, running: int) -> None:
    lines = ["services:"]
    for index in range(count + 10):
        lines.append(f"  svc-{index:03d}:")
        lines.append("    one_shot: true" if running <= index < count else "    critical: false")
    (hosts / "nas01").mkdir(parents=True)
    (hosts / "nas01" / "services.yaml").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--containers", type=int, default=200)
    parser.add_argument("--running", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args()
    from support.dockerd import start_dockerd, stop_dockerd

    work = Path(tempfile.mkdtemp(prefix="bench-observe-"))
    engine_root = Path(tempfile.mkdtemp(prefix="dockerd-", dir="/tmp"))
    engine = start_dockerd(engine_root)
    try:
        started = time.perf_counter()
        create_containers(engine, options.containers, options.running)
        print(f"{options.containers} containers ({options.running} running) created in "
              f"{time.perf_counter() - started:.1f} s", file=sys.stderr)
        write_inventory(work / "hosts", options.containers, options.running)
        observe = [SUPERVISOR, "observe", "docker", "--node", f"nas01={engine.host}", "--once",
                   "--world"]
        fresh, steady, evaluation, cold, small = [], [], [], [], []
        world = work / "world"
        timed([*observe, str(world)])  # warm the engine's and the OS's caches once
        output = ""
        for attempt in range(options.repeat):
            fresh.append(timed([*observe, str(work / f"fresh{attempt}")])[0])
            steady.append(timed([*observe, str(world)])[0])
            seconds, output = timed([SUPERVISOR, "eval", "--inventory", str(work / "hosts"),
                                     "--world", str(world), "--format", "json"])
            evaluation.append(seconds)
            cold.append(timed([SUPERVISOR, "eval", "--inventory", str(work / "hosts"),
                               "--world", str(world)], SUPERVISOR_CACHE="off")[0])
            small.append(timed([SUPERVISOR, "eval", str(ROOT / "fixtures" / "missing-service")])[0])
        result = json.loads(output)
        records = len(list((world / "services" / "nas01").glob("*.json")))
        conditions: dict[str, int] = {}
        for recommendation in result["recommendations"]:
            conditions[recommendation["condition"]] = conditions.get(
                recommendation["condition"], 0) + 1

        def ms(values: list[float]) -> str:
            return f"{statistics.median(values) * 1000:.0f} ms"

        print(f"| what ({options.containers} containers, {options.running} running; median of "
              f"{options.repeat}) | time |")
        print("| --- | --- |")
        print(f"| observe docker into an empty world ({records} service records written) | "
              f"{ms(fresh)} |")
        print(f"| observe docker again, records unchanged | {ms(steady)} |")
        print(f"| eval of that world ({len(result['recommendations'])} recommendations: "
              f"{', '.join(f'{n} {c}' for c, n in sorted(conditions.items()))}) | "
              f"{ms(evaluation)} |")
        print(f"| the same eval without the cache of parsed inputs (SUPERVISOR_CACHE=off) | "
              f"{ms(cold)} |")
        print(f"| eval of a 2-service lab, same run | {ms(small)} |")
        ratio = statistics.median(cold) / statistics.median(small)
        within = statistics.median(cold) <= COLD_START_GOAL
        print(f"\neval of the observed world, no cache / eval of a 2-service lab: {ratio:.2f}x")
        print(f"eval of the observed world, no cache, within the {COLD_START_GOAL * 1000:.0f} ms "
              f"cold-start goal: {'yes' if within else 'no'} (the 2-service lab: {ms(small)} "
              "in this run)")
    finally:
        stop_dockerd(engine)
        shutil.rmtree(engine_root, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
