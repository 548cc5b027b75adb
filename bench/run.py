"""Every performance goal, measured side by side in one run, as a table of medians and ratios.

    python bench/run.py [--quick] [--repeat N] [--out bench/out]

Runs the installed `supervisor` (so that bytecode is compiled, as users get it) from the same
Python. Generates the synthetic labs it needs under --out (kept between runs). Shared machines
are noisy: compare the ratios, which are measured in the same run with the runs interleaved.
`--quick` uses a 10x smaller scale lab, for a smoke test of the script itself.
"""

from __future__ import annotations

import argparse
import hashlib
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


def peak_rss_kib(argv: list[str]) -> int:
    """Peak resident memory of a child process, from the kernel's accounting."""
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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


def hash_files(lab: Path) -> None:
    """The baseline of an unchanged run: reading and hashing every input file."""
    digest = hashlib.sha256()
    for directory, subdirectories, names in os.walk(lab):
        subdirectories.sort()
        for name in sorted(names):
            with open(os.path.join(directory, name), "rb") as handle:
                digest.update(handle.read())


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


def cold_start(table: Table, repeat: int, out: Path) -> None:
    tiny = generate(out, 1, 2)
    bare, evaluation, helping = median_of(
        repeat, wall([PYTHON, "-c", "pass"]), wall([SUPERVISOR, "eval", str(tiny)]),
        wall([SUPERVISOR, "--help"]))
    table.add("cold start: eval of a 2-service lab", f"{evaluation * 1000:.0f} ms", "<= 250 ms",
              evaluation <= 0.250)
    table.add("cold start: eval / `python -c pass`", f"{evaluation / bare:.1f}x "
              f"({bare * 1000:.0f} ms bare)", "<= 10x", evaluation / bare <= 10)
    table.add("cold start: --help", f"{helping * 1000:.0f} ms", "<= 150 ms", helping <= 0.150)


def scale(table: Table, repeat: int, out: Path, quick: bool) -> None:
    nodes = 100 if quick else 1000
    small = generate(out, nodes // 10, 100)
    large = generate(out, nodes, 100)
    label = f"{nodes * 100:,} services"
    floor, evaluation = median_of(
        repeat, wall([PYTHON, str(HERE / "floor.py"), str(large)]),
        wall([SUPERVISOR, "eval", str(large), "--format", "json"]))
    table.add(f"scale: eval of {label}", f"{evaluation:.2f} s", "-", None)
    table.add(f"scale: eval / parse floor ({floor:.2f} s)", f"{evaluation / floor:.2f}x",
              "<= 2x", evaluation / floor <= 2)
    rss = peak_rss_kib([SUPERVISOR, "eval", str(large), "--format", "json"])
    table.add(f"scale: peak RSS of eval, {label}", f"{rss / 1024:.0f} MiB", "<= 1024 MiB",
              rss <= 1024 * 1024)
    (small_time,) = median_of(repeat, wall([SUPERVISOR, "eval", str(small), "--format", "json"]))
    ratio = evaluation / small_time
    table.add(f"scale: {nodes * 10:,} -> {nodes * 100:,} services", f"{ratio:.1f}x "
              f"({small_time:.2f} s -> {evaluation:.2f} s)", "<= 11x", ratio <= 11)


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
    except Exception as error:  # noqa: BLE001 - regorus is optional; report, do not crash
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
    state = out / "run-state"
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir()
    argv = [SUPERVISOR, "run", str(lab), "--once", "--quiet", "--now", "2026-11-26T10:00:30Z",
            "--events", str(state / "events.log"), "--checkpoint", str(state / "checkpoint.json")]
    subprocess.run(argv, check=True)  # the first run evaluates; the next ones find no change
    first_run_lines = len((state / "events.log").read_text().splitlines())
    hashing = [PYTHON, "-c", (f"import sys; sys.path.insert(0, {str(HERE)!r}); "
               f"import run; run.hash_files(__import__('pathlib').Path({str(lab)!r}))")]
    baseline, unchanged = median_of(repeat, wall(hashing), wall(argv))
    table.add("unchanged run / hashing the inputs", f"{unchanged / baseline:.2f}x "
              f"({unchanged:.2f} s vs {baseline:.2f} s)", "<= 2x", unchanged / baseline <= 2)
    lines = len((state / "events.log").read_text().splitlines())
    table.add("unchanged runs append nothing", f"{lines} lines after {repeat + 1} runs, "
              f"{first_run_lines} after the first", "no new line", lines == first_run_lines)


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
    parser.add_argument("--only", choices=["cold", "everyday", "scale", "rego", "run"],
                        action="append")
    options = parser.parse_args()
    options.out.mkdir(parents=True, exist_ok=True)
    if not Path(SUPERVISOR).exists():
        raise SystemExit(f"no installed supervisor beside {PYTHON}; pip install . first")
    table = Table()
    chosen = options.only or ["cold", "everyday", "scale", "rego", "run"]
    print(f"machine: {machine()}", file=sys.stderr)
    if "cold" in chosen:
        cold_start(table, options.repeat * 2, options.out)
    if "everyday" in chosen:
        everyday(table, options.repeat, options.out)
    if "scale" in chosen:
        scale(table, max(3, options.repeat // 2), options.out, options.quick)
    if "rego" in chosen:
        rego(table, options.repeat, options.out, options.quick)
    if "run" in chosen:
        unchanged_run(table, options.repeat, options.out, options.quick)
    print(f"machine: {machine()}")
    print(f"repeat: {options.repeat}; medians; {'quick' if options.quick else 'full'} sizes")
    print(table.render())


if __name__ == "__main__":
    main()
