"""Every performance goal, measured side by side in one run, as a table of medians and ratios.

    python bench/run.py [--quick] [--repeat N] [--out bench/out]

Runs the installed `supervisor` (so that bytecode is compiled, as users get it) from the same
Python. Generates the synthetic labs it needs under --out (kept between runs). Shared machines
are noisy: compare the ratios, which are measured in the same run with the runs interleaved.
`--quick` uses a 10x smaller scale lab, for a smoke test of the script itself.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PYTHON = sys.executable
SUPERVISOR = str(Path(PYTHON).parent / "supervisor")


def timed(argv: list[str]) -> float:
    """Wall seconds of one child process, which must succeed (exit 1 is --fail-on's)."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, err = process.communicate()
    elapsed = time.perf_counter() - started
    if process.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(argv)} failed ({process.returncode}): {err.decode()[-400:]}")
    return elapsed


def median_of(repeat: int, *commands: Callable[[], float]) -> list[float]:
    """Runs the commands interleaved `repeat` times; the median of each."""
    samples: list[list[float]] = [[] for _ in commands]
    for _ in range(repeat):
        for index, command in enumerate(commands):
            samples[index].append(command())
    return [statistics.median(values) for values in samples]


def peak_rss_kib(argv: list[str], env: dict[str, str] | None = None) -> int:
    """Peak resident memory of a child process, from the kernel's accounting."""
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=env)
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        raise SystemExit(f"{' '.join(argv)} failed")
    return int(usage.ru_maxrss)


def wall(argv: list[str]) -> Callable[[], float]:
    def run() -> float:
        return timed(argv)

    return run


def generate(out: Path, nodes: int, services: int) -> Path:
    lab = out / f"lab-{nodes}x{services}"
    if not (lab / "world" / "world.json").exists():
        shutil.rmtree(lab, ignore_errors=True)
        subprocess.run([PYTHON, str(HERE / "generate.py"), str(lab), "--nodes", str(nodes),
                        "--services", str(services)], check=True, stdout=subprocess.DEVNULL)
    return lab


class Table:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, str]] = []

    def add(self, goal: str, measured: str, target: str, met: bool | None) -> None:
        verdict = "n/a" if met is None else ("met" if met else "NOT MET")
        self.rows.append((goal, measured, target, verdict))
        print(f"  {goal}: {measured} (target {target}) {verdict}", file=sys.stderr, flush=True)

    def render(self) -> str:
        header = ("goal", "measured", "target", "")
        widths = [max(len(row[i]) for row in [header, *self.rows]) for i in range(4)]
        lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(header, widths, strict=True)) + " |",
                 "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
        lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
                  for row in self.rows]
        return "\n".join(lines)


def machine() -> str:
    model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return (f"{platform.system()} {platform.machine()}, {model}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, load average {load}")


def settle(lab: Path) -> None:
    """Waits until the lab's files, and the installed default rules (new after an install), are
    older than the cache's racy window (see supervisor/cache.py), then runs eval twice, so that
    timed runs find a warm cache."""
    where = "from supervisor.rules import default_rules_dir; print(default_rules_dir())"
    rules = subprocess.run([PYTHON, "-P", "-c", where], capture_output=True, text=True,
                           check=True).stdout.strip()
    newest = max(os.stat(os.path.join(directory, name)).st_ctime
                 for root in (lab, Path(rules))
                 for directory, _, names in os.walk(root) for name in names)
    time.sleep(max(0.0, newest + 2.1 - time.time()))
    for _ in range(2):
        timed([SUPERVISOR, "eval", str(lab), "--format", "json"])


def cold_start(table: Table, repeat: int, out: Path) -> None:
    tiny = generate(out, 1, 2)
    settle(tiny)
    bare, evaluation, helping = median_of(
        repeat, wall([PYTHON, "-c", "pass"]), wall([SUPERVISOR, "eval", str(tiny)]),
        wall([SUPERVISOR, "--help"]))
    table.add("goal 4: cold start, eval of a 2-service lab / `python -c pass`",
              f"{evaluation / bare:.1f}x ({evaluation * 1000:.0f} ms vs {bare * 1000:.0f} ms, "
              f"median of {repeat})", "<= 7x", evaluation / bare <= 7)
    table.add("goal 5: cold start, eval of a 2-service lab", f"{evaluation * 1000:.0f} ms",
              "<= 250 ms", evaluation <= 0.250)
    table.add("goal 5: cold start, --help", f"{helping * 1000:.0f} ms", "<= 150 ms",
              helping <= 0.150)


def scale(table: Table, repeat: int, out: Path, quick: bool) -> None:
    nodes = 100 if quick else 1000
    small = generate(out, nodes // 10, 100)
    large = generate(out, nodes, 100)
    settle(small)
    settle(large)
    label = f"{nodes * 100:,} services"
    argv = [SUPERVISOR, "eval", str(large), "--format", "json"]
    uncached = {**os.environ, "SUPERVISOR_CACHE": "off"}

    def without_cache() -> float:
        started = time.perf_counter()
        subprocess.run(argv, env=uncached, stdout=subprocess.DEVNULL, check=False)
        return time.perf_counter() - started

    tight, floor, evaluation, cold = median_of(
        repeat, wall([PYTHON, str(HERE / "tight_floor.py"), str(large)]),
        wall([PYTHON, str(HERE / "floor.py"), str(large)]), wall(argv), without_cache)
    table.add(f"goal 3: eval of {label} (warm cache) / tight floor ({tight:.2f} s)",
              f"{evaluation / tight:.2f}x ({evaluation:.2f} s)", "<= 1.5x",
              evaluation / tight <= 1.5)
    table.add(f"goal 5: eval of {label} (warm cache) / parse floor ({floor:.2f} s)",
              f"{evaluation / floor:.2f}x", "<= 2x", evaluation / floor <= 2)
    table.add(f"goal 5: eval of {label} without a cache / parse floor",
              f"{cold / floor:.2f}x ({cold:.2f} s)", "<= 2x", cold / floor <= 2)
    rss = max(peak_rss_kib(argv), peak_rss_kib(argv, uncached))
    table.add(f"goal 5: peak RSS of eval, {label}", f"{rss / 1024:.0f} MiB", "<= 1024 MiB",
              rss <= 1024 * 1024)
    (small_time,) = median_of(repeat, wall([SUPERVISOR, "eval", str(small), "--format", "json"]))
    ratio = evaluation / small_time
    table.add(f"goal 5: {nodes * 10:,} -> {nodes * 100:,} services", f"{ratio:.1f}x "
              f"({small_time:.2f} s -> {evaluation:.2f} s)", "<= 11x", ratio <= 11)
    SCALE_RESULTS["eval"] = evaluation


SCALE_RESULTS: dict[str, float] = {}


def rego(table: Table, repeat: int, out: Path, quick: bool) -> None:
    sys.path.insert(0, str(HERE / "rego"))
    try:
        import compare  # type: ignore[import-not-found]
    except ImportError as error:
        table.add("rules engine vs regorus", f"not run ({error})", "faster", None)
        return
    lab = generate(out, 100 if quick else 1000, 100 if not quick else 20)
    try:
        result = compare.measure(lab, repeat)
    except (Exception, SystemExit) as error:  # noqa: BLE001 - regorus is optional: report it
        table.add("rules engine vs regorus", f"not run ({type(error).__name__}: {error})",
                  "faster", None)
        return
    ours, theirs = result["ours_s"], result["regorus_eval_s"]
    table.add(f"rules engine vs regorus, {result['subjects']:,} subjects",
              f"ours {ours:.3f} s, regorus {theirs:.3f} s eval + {result['regorus_load_s']:.3f} s "
              f"load ({theirs / ours:.1f}x)", "ours faster",
              bool(result["equivalent"]) and ours < theirs)


def unchanged_run(table: Table, repeat: int, out: Path, quick: bool) -> None:
    lab = generate(out, 100 if quick else 1000, 100)
    copy, state = out / "run-lab", out / "run-state"
    for directory in (copy, state):
        shutil.rmtree(directory, ignore_errors=True)
    shutil.copytree(lab, copy)
    state.mkdir()
    settle(copy)
    argv = [SUPERVISOR, "run", str(copy), "--once", "--quiet", "--now", "2026-11-26T10:00:30Z",
            "--events", str(state / "events.log"), "--checkpoint", str(state / "checkpoint.json")]
    subprocess.run(argv, check=True)  # the first run evaluates; the next ones find no change
    subprocess.run(argv, check=True)
    first_run_lines = len((state / "events.log").read_text().splitlines())
    walk = [PYTHON, str(HERE / "stat_walk.py"), str(copy)]
    baseline, unchanged, evaluation = median_of(
        repeat, wall(walk), wall(argv), wall([SUPERVISOR, "eval", str(copy), "--format", "json"]))
    table.add("goal 2: unchanged run --once / stat-only walk",
              f"{unchanged / baseline:.2f}x ({unchanged:.2f} s vs {baseline:.2f} s)", "<= 1.3x",
              unchanged / baseline <= 1.3)
    lines = len((state / "events.log").read_text().splitlines())
    table.add("goal 5: unchanged runs append nothing", f"{lines} lines after {repeat + 2} runs, "
              f"{first_run_lines} after the first two", "no new line", lines == first_run_lines)
    record = next(path for path in sorted((copy / "world" / "services").glob("*/*.json"))
                  if '"status": "ok"' in path.read_text())
    original = record.read_text()
    samples = []
    for index in range(repeat):
        changed = original.replace('"status": "ok"', '"status": "failed"')
        write_atomically(record, changed if index % 2 == 0 else original)
        samples.append(timed(argv))
    changed_run = statistics.median(samples)
    table.add("goal 2: run --once with one file changed / cold eval (warm cache)",
              f"{changed_run / evaluation:.2f}x ({changed_run:.2f} s vs {evaluation:.2f} s)",
              "<= 0.5x", changed_run / evaluation <= 0.5)


def write_atomically(path: Path, text: str) -> None:
    """As observers publish a record: a temporary file renamed over the old one."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def watching(table: Table, repeat: int, out: Path, quick: bool) -> None:
    """`run --watch` on the large lab: from an atomic rewrite of one service record to its
    event line in the log, and the CPU the process uses while nothing changes."""
    lab = generate(out, 100 if quick else 1000, 100)
    copy, state = out / "watch-lab", out / "watch-state"
    for directory in (copy, state):
        shutil.rmtree(directory, ignore_errors=True)
    shutil.copytree(lab, copy)
    state.mkdir()
    settle(copy)
    log = state / "events.log"
    process = subprocess.Popen(
        [SUPERVISOR, "run", str(copy), "--watch", "--interval", "60", "--now",
         "2026-11-26T10:00:30Z", "--events", str(log), "--checkpoint",
         str(state / "checkpoint.json")], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True)
    try:
        assert process.stdout is not None
        process.stdout.readline()  # the first run is done
        time.sleep(3)  # and the watcher is set up
        records = [path for path in sorted((copy / "world" / "services").glob("*/*.json"))
                   if '"status": "ok"' in path.read_text()][: max(repeat, 5)]
        latencies = []
        for index in range(max(repeat, 5) * 2):
            record = records[index // 2]
            text = record.read_text()
            subject = f"{record.parent.name}/{record.stem}"
            flipped = (text.replace('"status": "ok"', '"status": "failed"') if index % 2 == 0
                       else text.replace('"status": "failed"', '"status": "ok"'))
            size = log.stat().st_size
            started = time.perf_counter()
            write_atomically(record, flipped)
            latency = None
            while time.perf_counter() - started < 60:
                if log.stat().st_size > size:
                    with open(log, "rb") as handle:
                        handle.seek(size)
                        if subject.encode() in handle.read():
                            latency = time.perf_counter() - started
                            break
                time.sleep(0.005)
            latencies.append(latency if latency is not None else math.inf)
            time.sleep(2)  # let the run settle before the next change
        median = statistics.median(latencies)
        table.add(f"goal 1: watch, one record rewritten -> its event line ({len(latencies)} "
                  "changes)", f"median {median * 1000:.0f} ms", "<= 250 ms", median <= 0.25)
        window = 30 if quick else 90
        before = _cpu_seconds(process.pid)
        time.sleep(window)
        used = (_cpu_seconds(process.pid) - before) * 60 / window
        table.add(f"goal 1: watch, idle CPU with the 60 s heartbeat ({window} s)",
                  f"{used:.2f} CPU s/min", "< 0.1", used < 0.1)
    finally:
        process.terminate()
        process.wait(timeout=60)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def everyday(table: Table, repeat: int, out: Path) -> None:
    """What an operator waits for: eval of the example homelab and of 100 nodes x 20 services,
    and `run` on the latter, unchanged and with 1,000 changes (half opened, half resolved)."""
    lab = generate(out, 100, 20)
    homelab, hundred = median_of(repeat, wall([SUPERVISOR, "eval", str(ROOT / "fixtures" / "homelab")]),
                                 wall([SUPERVISOR, "eval", str(lab)]))
    table.add("eval of fixtures/homelab (27 services)", f"{homelab * 1000:.0f} ms", "-", None)
    table.add("eval of 100 nodes x 20 services", f"{hundred * 1000:.0f} ms", "-", None)
    copy, state = out / "changing-lab", out / "changing-state"
    for directory in (copy, state):
        shutil.rmtree(directory, ignore_errors=True)
    shutil.copytree(lab, copy)
    state.mkdir()
    argv = [SUPERVISOR, "run", str(copy), "--once", "--quiet", "--now", "2026-11-26T10:00:30Z",
            "--events", str(state / "events.log"), "--checkpoint", str(state / "checkpoint.json")]
    subprocess.run(argv, check=True)
    (unchanged,) = median_of(repeat, wall(argv))
    table.add("run, unchanged, 100 x 20", f"{unchanged * 1000:.0f} ms", "-", None)
    healthy = [path for path in sorted((copy / "world" / "services").glob("*/*.json"))
               if '"status": "ok"' in path.read_text()][:1000]
    originals = {path: path.read_text() for path in healthy}
    samples = []
    for index in range(repeat * 2):
        for path, text in originals.items():
            path.write_text(text.replace('"status": "ok"', '"status": "failed"')
                            if index % 2 == 0 else text)
        samples.append(timed(argv))
    lines = len((state / "events.log").read_text().splitlines())
    table.add(f"run with {len(originals):,} changes, 100 x 20",
              f"{statistics.median(samples) * 1000:.0f} ms ({lines:,} log lines after "
              f"{len(samples) + 1} runs)", "-", None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, default=HERE / "out")
    parser.add_argument("--only", choices=["cold", "everyday", "scale", "rego", "run", "watch"],
                        action="append")
    options = parser.parse_args()
    options.out.mkdir(parents=True, exist_ok=True)
    # The cache of parsed inputs lives with the labs, never in the user's cache.
    os.environ["SUPERVISOR_CACHE_DIR"] = str(options.out / "cache")
    os.environ.pop("SUPERVISOR_CACHE", None)
    # An installed program starts from cached bytecode; with PYTHONDONTWRITEBYTECODE set (some
    # shells and containers set it) an editable install recompiles every module on every start,
    # which measures the compiler, not the supervisor.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    if not Path(SUPERVISOR).exists():
        raise SystemExit(f"no installed supervisor beside {PYTHON}; pip install . first")
    table = Table()
    chosen = options.only or ["cold", "everyday", "scale", "rego", "run", "watch"]
    print(f"machine: {machine()}", file=sys.stderr)
    if "cold" in chosen:
        cold_start(table, 4 if options.quick else 20, options.out)
    if "everyday" in chosen:
        everyday(table, options.repeat, options.out)
    if "scale" in chosen:
        scale(table, max(3, options.repeat // 2), options.out, options.quick)
    if "rego" in chosen:
        rego(table, options.repeat, options.out, options.quick)
    if "run" in chosen:
        unchanged_run(table, options.repeat, options.out, options.quick)
    if "watch" in chosen:
        watching(table, options.repeat, options.out, options.quick)
    print(f"machine: {machine()}")
    print(f"repeat: {options.repeat}; medians; {'quick' if options.quick else 'full'} sizes")
    print(table.render())


if __name__ == "__main__":
    main()
