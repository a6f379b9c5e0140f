"""Turn a pytest-benchmark JSON from benchmarks/test_epoch.py into a report.

    python benchmarks/run.py --out bench.json
    python benchmarks/report.py bench.json [--out DIR] [--markdown FILE] [--overwrite]

Writes a markdown report (to stdout, or to --markdown FILE) with the machine,
the BLAS each NumPy process ran and each process's pinning; fastgd beside
NumPy, PyTorch and JAX at 1 thread and at every thread; every result with its
speed-ups; the busy-machine runs; the import and JIT-compile times; and the
performance targets checked against the data.  Plots go to --out (default:
the JSON's directory) when matplotlib is installed.

Every number is the median of the rounds of one benchmark run; nothing is
estimated: a comparison without data on both sides reads "not measured" or "—".
"""

import argparse
import json
import math
import os
import shlex
import sys
from datetime import datetime

EPOCH = 50_000  # examples in the book's training set: s/epoch is quoted for this many
MODES = ["online", "m=10", "m=100", "m=1000", "full batch"]
BATCH = {"online": 1, "m=10": 10, "m=100": 100, "m=1000": 1000, "full batch": EPOCH}
MODE_LABELS = {"online": "1 (online)", "m=10": "10", "m=100": "100", "m=1000": "1000",
               "full batch": "full"}
BOOK = (784, 30, 10)
WIDER = (784, 100, 10)
IMPLS = ["fastgd auto", "fastgd serial", "fastgd parallel",
         "numpy matrix", "network.py", "pytorch", "jax"]
BASELINES = ["numpy matrix", "network.py", "pytorch", "jax"]
# What a user would pick instead of fastgd: the fastest of these is its rival.
RIVALS = {"numpy matrix": "NumPy", "pytorch": "PyTorch", "jax": "JAX"}
SIDE_BY_SIDE = [("float32", BOOK), ("float64", BOOK), ("float32", WIDER)]
BUSY_MODES = ["m=100", "m=1000"]
DASH = "—"
NOT_MEASURED = "not measured"


# ---------------------------------------------------------------- formatting

def fmt_sig(x, digits=3):
    """x with `digits` significant digits, thousands separators, no exponent."""
    x = float(f"{x:.{digits}g}")  # round first: 0.9996 -> 1.00, not 1.000
    if x == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(x))))
    return f"{x:,.{decimals}f}"


def fmt_ratio(r, digits=2):
    """A speed ratio such as 2.4x; DASH when there is none."""
    return DASH if r is None else fmt_sig(r, digits) + "x"


def fmt_rate(rate):
    """Examples per second with thousands separators."""
    return f"{rate:,.0f}" if rate >= 100 else fmt_sig(rate, 3)


def fmt_sizes(sizes):
    return "x".join(map(str, sizes))


# ---------------------------------------------------------------- loading

def load(path):
    """The pytest-benchmark JSON as a dict."""
    with open(path) as f:
        return json.load(f)


def results(data, busy=False):
    """One dict per training benchmark: what was run, and its examples/s.

    The rate is extra_info["examples"] / median seconds per round, so baselines
    timed on a slice of the epoch compare fairly with whole-epoch runs.  The
    busy-machine runs (busy=True) are kept apart: they repeat the keys of the
    unloaded runs and measure something else."""
    rows = []
    for bench in data.get("benchmarks", []):
        info = bench.get("extra_info", {})
        if "mode" not in info or "impl" not in info or bool(info.get("busy")) != busy:
            continue  # the import+compile entries, the other kind of run, or something foreign
        median = bench["stats"]["median"]
        rows.append({
            "impl": info["impl"],
            "mode": info["mode"],
            "dtype": info.get("dtype", "float32"),
            "threads": int(info.get("threads", 1)),
            "sizes": tuple(info.get("sizes", BOOK)),
            "kernel": info.get("kernel_in_use") or info.get("kernel", ""),  # what auto ran
            "examples": info["examples"],
            "median": median,
            "rounds": bench["stats"].get("rounds"),
            "rate": info["examples"] / median,
        })
    return rows


def compile_entries(data):
    """The import+compile benchmarks (cold cache first)."""
    entries = [b for b in data.get("benchmarks", [])
               if "cache" in b.get("extra_info", {})]
    return sorted(entries, key=lambda b: b["extra_info"]["cache"])


def machine(data):
    """Machine facts recorded next to the results: those of the first entry from a
    process that could use the most threads (a process pinned to one core sees a
    1-thread numba)."""
    found = [b.get("extra_info", {}) for b in data.get("benchmarks", [])]
    found = [info for info in found if "cpu" in info]
    return max(found, key=lambda info: info.get("numba_max_threads") or 0, default={})


def index(rows):
    """Rows by (impl, mode, dtype, threads, sizes)."""
    return {(r["impl"], r["mode"], r["dtype"], r["threads"], r["sizes"]): r for r in rows}


def rate(idx, impl, mode, dtype, threads, sizes=BOOK):
    """Examples/s of one measurement, or None when it was not measured."""
    row = idx.get((impl, mode, dtype, threads, tuple(sizes)))
    return None if row is None else row["rate"]


def seconds(idx, impl, mode, dtype, threads, sizes=BOOK):
    """Seconds per 50,000-example epoch of one measurement, or None."""
    r = rate(idx, impl, mode, dtype, threads, sizes)
    return None if r is None else EPOCH / r


def ratio(a, b):
    return None if a is None or b is None else a / b


def most_threads(rows, facts):
    """The thread count of the all-threads columns and checks: the most any result
    used, else the machine's cores."""
    counts = [r["threads"] for r in rows if r["threads"] > 1]
    return max(counts) if counts else int(facts.get("cores") or 1)


def fastest_rival(idx, mode, dtype, threads, sizes=BOOK):
    """(name, s/epoch) of the fastest of NumPy, PyTorch and JAX measured here (None
    when none was), and the names of those not measured."""
    measured, missing = [], []
    for impl, name in RIVALS.items():
        s = seconds(idx, impl, mode, dtype, threads, sizes)
        (missing.append(name) if s is None else measured.append((s, name)))
    if not measured:
        return None, missing
    s, name = min(measured)
    return (name, s), missing


# ---------------------------------------------------------------- machine and processes

def cpu_list(cpus):
    """[0, 1, 2, 5] -> "0-2,5"."""
    runs = []
    for cpu in sorted(cpus):
        if runs and cpu == runs[-1][1] + 1:
            runs[-1][1] = cpu
        else:
            runs.append([cpu, cpu])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def processes(data):
    """{process label: its entries' extra_info}, in the order the processes ran.

    benchmarks/run.py runs one process per implementation and thread count; a
    plain pytest run is one process for everything.  Files from before the
    runner record no process: they read as one."""
    found = {}
    for bench in data.get("benchmarks", []):
        info = bench.get("extra_info", {})
        found.setdefault(info.get("process", "one process"), []).append(info)
    return found


def pinning(infos, cores):
    """Where a process ran: pinned to some CPUs, or free on all of them."""
    cpus = next((info["affinity"] for info in infos if info.get("affinity")), None)
    if cpus is None:
        return "CPUs not recorded"
    if cores and len(cpus) < int(cores):
        return f"pinned to CPU{'s' if len(cpus) > 1 else ''} {cpu_list(cpus)}"
    return f"CPUs {cpu_list(cpus)} (not pinned)"


def blas_summary(infos):
    """What one process's NumPy ran: BLAS library, version, kernel, threads, and
    the OpenBLAS variables that can force a kernel; None when it ran no NumPy
    baseline."""
    infos = [info for info in infos if "openblas_env" in info]
    if not infos:
        return None
    libraries, threads = set(), set()
    for info in infos:
        for pool in info.get("blas") or []:
            if pool.get("user_api") not in (None, "blas"):
                continue  # OpenMP runtimes: not a BLAS
            threads.add(pool.get("num_threads"))
            path = "/".join(filter(None, (pool.get("folder"), pool.get("library"))))
            libraries.add(f"{pool.get('internal_api', '?')} {pool.get('version', '?')} "
                          f"({pool.get('architecture') or 'unknown'} kernel, {path or '?'})")
    if not libraries:
        what = ("library not recorded (threadpoolctl not installed)"
                if any(info.get("blas") is None for info in infos) else "no BLAS found")
    else:
        counts = sorted(t for t in threads if t is not None)
        what = " and ".join(sorted(libraries))
        if counts:
            what += f" at {' or '.join(map(str, counts))} thread{'s' if counts != [1] else ''}"
    env, removed = {}, []
    for info in infos:
        env.update({k: v for k, v in info["openblas_env"].items() if v is not None})
        removed += [name for name in info.get("removed_env", []) if name not in removed]
    if env:
        what += "; set: " + ", ".join(f"{k}={v}" for k, v in sorted(env.items()))
    else:
        what += "; OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset"
    if removed:
        what += f" (benchmarks/run.py removed {', '.join(removed)})"
    return what


def process_lines(data, facts):
    """The header's BLAS and process lines."""
    found = processes(data)
    blas = {}  # what ran -> the processes it ran in: one line names each BLAS once
    for label, infos in found.items():
        what = blas_summary(infos)
        if what is not None:
            blas.setdefault(what, []).append(label)
    blas = [f"{' and '.join(labels)}: {what}" for what, labels in blas.items()]
    cores = facts.get("cores")
    where = [f"{label}: {pinning(infos, cores)}" for label, infos in found.items()]
    return [f"- BLAS (NumPy and network.py): {'; '.join(blas) if blas else NOT_MEASURED}",
            f"- Processes: {'; '.join(where) if where else 'none recorded'}"]


# ---------------------------------------------------------------- tables

def table_rows(rows):
    """Rows of the all-results table, sorted, each with its speed-ups.

    Baselines are compared at the same mode, dtype, threads and network sizes;
    fastgd rows are also compared with fastgd auto at 1 thread."""
    idx = index(rows)
    mode_order = {m: i for i, m in enumerate(MODES)}
    impl_order = {m: i for i, m in enumerate(IMPLS)}
    table = []
    for r in rows:
        key = (r["mode"], r["dtype"], r["threads"], r["sizes"])
        vs = {}
        for base in BASELINES:
            other = None if base == r["impl"] else rate(idx, base, *key)
            vs[base] = ratio(r["rate"], other)
        own = None
        if r["impl"].startswith("fastgd") and (r["impl"], r["threads"]) != ("fastgd auto", 1):
            own = ratio(r["rate"], rate(idx, "fastgd auto", r["mode"], r["dtype"], 1, r["sizes"]))
        table.append(dict(r, vs=vs, own=own))
    table.sort(key=lambda r: (mode_order.get(r["mode"], len(MODES)), r["mode"], r["dtype"],
                              r["sizes"] != BOOK, r["sizes"],
                              impl_order.get(r["impl"], len(IMPLS)), r["impl"], r["threads"]))
    return table


def main_table(rows):
    """Every result, with its speed-ups over each baseline."""
    lines = ["| Mode | dtype | Network | Implementation | Threads | Kernel | examples/s "
             "| s/epoch | vs numpy matrix | vs network.py | vs pytorch | vs jax "
             "| vs fastgd auto 1 thread |",
             "|---|---|---|---|--:|---|--:|--:|--:|--:|--:|--:|--:|"]
    for r in table_rows(rows):
        cells = [r["mode"], r["dtype"], fmt_sizes(r["sizes"]), r["impl"], str(r["threads"]),
                 r["kernel"] or "", fmt_rate(r["rate"]), fmt_sig(EPOCH / r["rate"]),
                 *(fmt_ratio(r["vs"][b]) for b in BASELINES), fmt_ratio(r["own"])]
        lines.append("| " + " | ".join(cells) + " |")
    if len(lines) == 2:
        return ["No training benchmarks in this file."]
    return lines


def fmt_seconds(s):
    return NOT_MEASURED if s is None else fmt_sig(s)


def versus_rival(idx, mode, dtype, threads, sizes):
    """The cell "fastgd vs best": the fastest rival's s/epoch ÷ fastgd auto's."""
    mine = seconds(idx, "fastgd auto", mode, dtype, threads, sizes)
    best, _ = fastest_rival(idx, mode, dtype, threads, sizes)
    if mine is None or best is None:
        return NOT_MEASURED
    return f"{fmt_ratio(best[1] / mine)} ({best[0]})"


def side_by_side(rows, dtype, sizes, n):
    """fastgd auto beside NumPy, PyTorch and JAX, s/epoch at 1 and at n threads,
    one row per mini-batch size."""
    idx = index(rows)
    head, rule = ["m"], ["---"]
    for t in (1, n):
        head += [f"fastgd {t} thr", *(f"{name} {t}" for name in RIVALS.values()),
                 "fastgd vs best"]
        rule += ["--:"] * (len(RIVALS) + 2)
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(rule) + "|"]
    for mode in MODES:
        cells = [MODE_LABELS[mode]]
        for t in (1, n):
            cells.append(fmt_seconds(seconds(idx, "fastgd auto", mode, dtype, t, sizes)))
            cells += [fmt_seconds(seconds(idx, impl, mode, dtype, t, sizes)) for impl in RIVALS]
            cells.append(versus_rival(idx, mode, dtype, t, sizes))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def side_by_side_section(rows, n):
    lines = ["## fastgd beside NumPy, PyTorch and JAX", "",
             f"Seconds per {EPOCH:,}-example epoch (medians); fastgd is its auto kernel. "
             "\"fastgd vs best\": the fastest of NumPy, PyTorch and JAX at that thread count, "
             "its s/epoch ÷ fastgd's (above 1x: fastgd is faster)."]
    for dtype, sizes in SIDE_BY_SIDE:
        lines += ["", f"### {fmt_sizes(sizes)}, {dtype}", ""] + side_by_side(rows, dtype, sizes, n)
    return lines


def busy_table(busy, rows):
    """Auto and serial with another process spinning on a core, beside the same
    kernels on the idle machine."""
    if not busy:
        return [f"Busy machine: {NOT_MEASURED}."]
    lines = ["| m | auto under load (s/epoch) | threads | auto chose | serial under load "
             "(s/epoch) | auto ÷ serial (time) | idle: auto | idle: serial |",
             "|---|--:|--:|---|--:|--:|--:|--:|"]
    idle = index(rows)
    loaded = index(busy)
    for mode in MODES:
        auto = [r for r in busy if r["impl"] == "fastgd auto" and r["mode"] == mode]
        serial = seconds(loaded, "fastgd serial", mode, "float32", 1)
        if not auto and serial is None:
            continue
        threads = auto[0]["threads"] if auto else None
        auto_s = EPOCH / auto[0]["rate"] if auto else None
        cells = [MODE_LABELS[mode], fmt_seconds(auto_s), str(threads or DASH),
                 (auto[0]["kernel"] or "?") if auto else DASH, fmt_seconds(serial),
                 fmt_ratio(ratio(auto_s, serial), 3),
                 fmt_seconds(seconds(idle, "fastgd auto", mode, "float32", threads or 0)),
                 fmt_seconds(seconds(idle, "fastgd serial", mode, "float32", 1))]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def compile_table(entries):
    """Import and first-call (JIT compile or cache load) times, in seconds."""
    if not entries:
        return [f"Import and compile: {NOT_MEASURED}."]
    lines = ["| Numba cache | import fastgd (s) | first serial call (s) | first parallel call (s) "
             "| whole fresh process (s) |",
             "|---|--:|--:|--:|--:|"]
    for b in entries:
        info = b["extra_info"]
        cells = [info["cache"]]
        for field in ("import_s", "first_serial_s", "first_parallel_s"):
            cells.append(fmt_sig(info[field]) if field in info else NOT_MEASURED)
        cells.append(fmt_sig(b["stats"]["median"]))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


# ---------------------------------------------------------------- targets

def meets(r, goal, at_most=False):
    return r <= goal if at_most else r >= goal


def shown(r, digits):
    """r as a reader sees it with `digits` significant digits."""
    return float(fmt_sig(r, digits).replace(",", ""))


def fmt_close(r, goals, at_most=False):
    """r to 3 significant digits, more where rounding would move it across a goal
    (1.6977 would read 1.70x, as if it met 1.7x: it reads 1.698x)."""
    digits = 3
    while digits < 6 and any(meets(shown(r, digits), g, at_most) != meets(r, g, at_most)
                             for g in goals):
        digits += 1
    return fmt_ratio(r, digits)


def check(name, a, b, goal, at_most=False, note=""):
    """One target: is a's s/epoch ÷ b's at least (at_most: at most) goal?
    (a's time over b's time is b's speed-up over a.)

    a and b are (label, s/epoch or None); note is appended to the measurement."""
    r = ratio(a[1], b[1])
    if r is None:
        missing = [label for label, value in (a, b) if value is None]
        measured, result = f"{NOT_MEASURED} ({', '.join(missing)})", NOT_MEASURED
    else:
        measured = (f"{fmt_close(r, [goal], at_most)} ({a[0]} {fmt_sig(a[1])} s vs "
                    f"{b[0]} {fmt_sig(b[1])} s per epoch{note})")
        result = "MET" if meets(r, goal, at_most) else "MISS"
    target = f"{'≤' if at_most else '≥'} {goal:g}x"
    return {"name": name, "measured": measured, "target": target, "result": result, "ratio": r}


def thread_words(t):
    return f"{t} thread{'s' if t > 1 else ''}"


def speed_targets(idx, n):
    """Targets (a)-(c), on float32 784x30x10: fastgd auto against the fastest
    rival at every m, against JAX at m=10, and against itself at 1 thread."""
    def fastgd(mode, threads):
        return f"fastgd auto {threads}t", seconds(idx, "fastgd auto", mode, "float32", threads)

    checks = []
    for mode in MODES:
        for t in (1, n):
            best, missing = fastest_rival(idx, mode, "float32", t)
            rival = best or ("NumPy/PyTorch/JAX", None)
            note = f"; {', '.join(missing)} not measured" if best and missing else ""
            checks.append(check(f"(a) {mode}, {thread_words(t)}, float32 784x30x10: fastgd auto's "
                                "speed-up over the fastest of NumPy/PyTorch/JAX",
                                (f"{rival[0]} {t}t", rival[1]), fastgd(mode, t), 1.5, note=note))
    checks.append(check("(b) m=10, 1 thread, float32 784x30x10: fastgd auto's speed-up over JAX",
                        ("JAX 1t", seconds(idx, "jax", "m=10", "float32", 1)),
                        fastgd("m=10", 1), 2))
    for mode in ("m=1000", "full batch"):
        checks.append(check(f"(c) {mode}, float32 784x30x10: fastgd auto's speed-up from 1 "
                            f"thread to {n}", fastgd(mode, 1), fastgd(mode, n), 1.7))
    return checks


def busy_targets(busy):
    """Target (d): under load, auto on every thread takes at most 1.2x the time of
    serial on one, at each m measured (m=100 and m=1000 always listed)."""
    loaded = index(busy)
    modes = [m for m in MODES if m in BUSY_MODES or any(r["mode"] == m for r in busy)]
    checks = []
    for mode in modes:
        auto = next((r for r in busy if r["impl"] == "fastgd auto" and r["mode"] == mode), None)
        label = f"fastgd auto {auto['threads']}t" if auto else "fastgd auto"
        checks.append(check(f"(d) busy machine, {mode}, float32 784x30x10: fastgd auto's time "
                            "(all threads) ÷ fastgd serial's (1 thread), under load",
                            (label, EPOCH / auto["rate"] if auto else None),
                            ("fastgd serial 1t", seconds(loaded, "fastgd serial", mode,
                                                         "float32", 1)),
                            1.2, at_most=True))
    return checks


def targets_section(rows, busy, n):
    """The Targets section: one line per check with measured value, target, MET/MISS."""
    checks = speed_targets(index(rows), n) + busy_targets(busy)
    lines = ["## Targets", "",
             "Ratios of seconds per epoch (medians): a speed-up is the other side's time ÷ "
             "fastgd's; (d) is auto's time ÷ serial's, so lower is better. "
             "\"not measured\": the run has no data for it.", "",
             "| Check | Measured | Target | Result |", "|---|---|---|---|"]
    for c in checks:
        lines.append(f"| {c['name']} | {c['measured']} | {c['target']} | {c['result']} |")
    return lines


# ---------------------------------------------------------------- plots

def plot_rows(rows):
    """The float32 784x30x10 rows, which both plots show."""
    return [r for r in rows if r["dtype"] == "float32" and r["sizes"] == BOOK]


def plot_title(what, facts):
    cpu = facts.get("cpu", "unknown CPU")
    cores = facts.get("cores", "?")
    return f"{what}\n{cpu}, {cores} cores"


def plot_throughput(Figure, rows, facts, path):
    """examples/s against mini-batch size, one line per implementation x threads."""
    from matplotlib import ticker
    colors = {"fastgd auto": "tab:blue", "fastgd serial": "tab:green",
              "fastgd parallel": "tab:purple", "numpy matrix": "tab:orange",
              "network.py": "tab:brown", "pytorch": "tab:red", "jax": "tab:cyan"}
    markers = {"fastgd auto": "o", "fastgd serial": "s", "fastgd parallel": "D",
               "numpy matrix": "^", "network.py": "v", "pytorch": "P", "jax": "X"}
    styles = ["-", "--", ":", "-."]
    thread_counts = sorted({r["threads"] for r in rows})
    fig = Figure(figsize=(10, 6))
    ax = fig.subplots()
    impls = sorted({r["impl"] for r in rows},
                   key=lambda i: (IMPLS.index(i) if i in IMPLS else len(IMPLS), i))
    for impl in impls:
        for t in thread_counts:
            points = sorted((BATCH[r["mode"]], r["rate"]) for r in rows
                            if r["impl"] == impl and r["threads"] == t and r["mode"] in BATCH)
            if not points:
                continue
            x, y = zip(*points)
            # auto runs the serial or the parallel kernel, so its line lies on one of
            # theirs: draw it wide and pale underneath, where it stays visible.
            wide = dict(linewidth=6, alpha=0.35, markersize=11, zorder=1) \
                if impl == "fastgd auto" else dict(zorder=2)
            ax.plot(x, y, styles[thread_counts.index(t) % len(styles)],
                    color=colors.get(impl), marker=markers.get(impl, "o"),
                    label=f"{impl}, {thread_words(t)}", **wide)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(list(BATCH.values()))
    ax.set_xticklabels(["1\n(online)", "10", "100", "1000", "50,000\n(full batch)"])
    ax.minorticks_off()
    ax.yaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.set_xlabel("mini-batch size m")
    ax.set_ylabel("training examples per second (median)")
    ax.set_title(plot_title("Training throughput vs mini-batch size (float32, 784x30x10)", facts))
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    fig.savefig(path, dpi=120, bbox_inches="tight")


def plot_scaling(Figure, rows, facts, path):
    """fastgd auto's speed-up over its own 1-thread result, one line per mode."""
    auto = [r for r in rows if r["impl"] == "fastgd auto"]
    one = {r["mode"]: r["rate"] for r in auto if r["threads"] == 1}
    thread_counts = sorted({r["threads"] for r in auto})
    fig = Figure(figsize=(8, 6))
    ax = fig.subplots()
    ax.plot(thread_counts, thread_counts, "k--", linewidth=1, label="ideal (linear)")
    ends = []  # (y, x, text, colour) of each line's last point, labelled below
    for mode in MODES:
        points = sorted((r["threads"], r["rate"] / one[mode]) for r in auto
                        if r["mode"] == mode and mode in one)
        if points:
            x, y = zip(*points)
            line, = ax.plot(x, y, "-o", label=mode)
            ends.append((y[-1], x[-1], f"{y[-1]:.2f}x", line.get_color()))
    ax.set_xticks(thread_counts)
    span = max(thread_counts) - min(thread_counts) or 1
    ax.set_xlim(min(thread_counts) - 0.1 * span, max(thread_counts) + 0.2 * span)  # labels
    ax.set_xlabel("threads")
    ax.set_ylabel("speed-up over fastgd auto at 1 thread")
    ax.set_ylim(bottom=0)
    # Speed-ups that end close together (online and m=10 barely scale) would print
    # their labels on top of each other: push them apart, keeping their order, and
    # join each to its point.
    bottom, top = ax.get_ylim()
    gap = 0.045 * (top - bottom)
    placed = []
    for y, x, text, colour in sorted(ends):
        at = y if not placed or y >= placed[-1] + gap else placed[-1] + gap
        placed.append(at)
        ax.annotate(text, (x, y), xytext=(x + 0.04 * span, at), textcoords="data",
                    va="center", fontsize="small", color=colour,
                    arrowprops=dict(arrowstyle="-", color=colour, lw=0.6)
                    if abs(at - y) > 0.2 * gap else None)
    ax.set_title(plot_title("fastgd auto: scaling with threads (float32, 784x30x10)", facts))
    ax.grid(True, alpha=0.3)
    ax.legend(title="mode", fontsize="small")
    fig.savefig(path, dpi=120, bbox_inches="tight")


def plots(rows, facts, out):
    """Write the PNGs into out. Returns (paths written, notes about what was skipped).

    Figures are made with matplotlib's Figure class, not pyplot: no backend is
    chosen or changed for whoever imported this module."""
    try:
        import matplotlib  # noqa: F401  (fails first when matplotlib is blocked or absent)
        from matplotlib.figure import Figure
    except ImportError:
        return [], ["matplotlib is not installed: plots skipped "
                    "(pip install 'fastgd[plot]' to get them)."]
    data = plot_rows(rows)
    written, notes = [], []
    os.makedirs(out, exist_ok=True)
    if data:
        path = os.path.join(out, "throughput_vs_batch.png")
        plot_throughput(Figure, data, facts, path)
        written.append(path)
    else:
        notes.append("throughput_vs_batch.png skipped: no float32 784x30x10 results.")
    if any(r["impl"] == "fastgd auto" and r["threads"] == 1 for r in data):
        path = os.path.join(out, "scaling_vs_threads.png")
        plot_scaling(Figure, data, facts, path)
        written.append(path)
    else:
        notes.append("scaling_vs_threads.png skipped: no 1-thread fastgd auto results.")
    return written, notes


# ---------------------------------------------------------------- report

def versions(data, key):
    return sorted({b["extra_info"][key] for b in data.get("benchmarks", [])
                   if key in b.get("extra_info", {})})


def header(data, facts, json_path, argv):
    """Title, machine, BLAS, processes, provenance and how to read the numbers."""
    when = data.get("datetime", "")
    try:
        when = datetime.fromisoformat(when).strftime("%Y-%m-%d %H:%M %Z").strip()
    except ValueError:
        pass
    mi, ci = data.get("machine_info", {}), data.get("commit_info", {})
    rounds = sorted({r["rounds"] for r in results(data) + results(data, busy=True)
                     if r["rounds"] is not None})
    others = "".join(f"; {name} {', '.join(versions(data, name))}"
                     for name in ("torch", "jax") if versions(data, name))
    if facts.get("command"):
        command = facts["command"]
        how = "benchmarks/run.py: one process per implementation and thread count"
    else:
        command = "pytest benchmarks/ --benchmark-json=" + os.path.basename(json_path)
        if facts.get("smoke"):
            command = "FASTGD_BENCH_SMOKE=1 " + command
        how = ("as in benchmarks/test_epoch.py: pytest-benchmark does not record the "
               "command line, so any -k filter or other option is not known")
    lines = [
        "# fastgd benchmark report", "",
        f"- CPU: {facts.get('cpu', 'unknown')}, {facts.get('cores', '?')} cores "
        f"(numba may use {facts.get('numba_max_threads', '?')} threads)",
        f"- numba {facts.get('numba', '?')}, threading layer {facts.get('threading_layer', '?')}; "
        f"numpy {facts.get('numpy', '?')}{others}",
        *process_lines(data, facts),
        f"- Python {mi.get('python_version', '?')} ({mi.get('python_implementation', '?')}), "
        f"{mi.get('system', '?')} {mi.get('release', '')}".rstrip(),
        f"- Run: {when or 'date not recorded'}; commit {ci.get('id', '?')} "
        f"on {ci.get('branch', '?')}{' (uncommitted changes)' if ci.get('dirty') else ''}",
        f"- Benchmark command: `{command}` ({how})",
        f"- Produced by: `python benchmarks/report.py {shlex.join(argv)}`", "",
        "Numbers are medians of the rounds (" +
        ("–".join(map(str, sorted({rounds[0], rounds[-1]}))) if rounds else "?") +
        " per benchmark, after a warm-up round) of one run on this machine. "
        f"s/epoch is for {EPOCH:,} examples; the slow baselines time a slice of the epoch "
        "and are scaled by examples/s. Speed-ups are ratios of examples/s at the same mode, "
        "dtype, threads and network; \"—\": no counterpart was measured.",
    ]
    if facts.get("smoke"):
        lines += ["", "**Smoke run**: a few hundred examples, one round. "
                  "It checks that the benchmarks run; its numbers measure nothing."]
    return lines


def render(data, json_path, argv, plot_paths, plot_notes, markdown_path=None):
    """The whole markdown report as a string."""
    rows = results(data)
    busy = results(data, busy=True)
    facts = machine(data)
    n = most_threads(rows, facts)
    lines = header(data, facts, json_path, argv)
    lines += [""] + side_by_side_section(rows, n)
    lines += ["", "## Seconds per epoch and speed-ups: every result", ""] + main_table(rows)
    lines += ["", "## Busy machine", "",
              "Another process spins on one core (not pinned) while fastgd auto trains on "
              "every thread and fastgd serial on one; each Trainer was made under the load. "
              "float32, 784x30x10; the idle columns are the same kernels without the load.",
              ""] + busy_table(busy, rows)
    lines += ["", "## Import and JIT compile", "",
              "A fresh process: import fastgd, then the first serial and the first parallel "
              "training call; cold: empty numba cache, warm: cache filled by an earlier process.",
              ""] + compile_table(compile_entries(data))
    lines += [""] + targets_section(rows, busy, n)
    lines += ["", "## Plots", ""]
    base = os.path.dirname(os.path.abspath(markdown_path)) if markdown_path else None
    for path in plot_paths:
        shown = os.path.relpath(path, base) if base else path
        lines.append(f"![{os.path.basename(path)}]({shown})")
    lines += [f"- {note}" for note in plot_notes]
    return "\n".join(lines) + "\n"


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python benchmarks/report.py",
        description="Markdown report and plots from a pytest-benchmark JSON of benchmarks/.")
    parser.add_argument("json", help="file written by benchmarks/run.py --out FILE "
                                     "(or pytest benchmarks/ --benchmark-json=FILE)")
    parser.add_argument("--out", help="folder for the PNG plots (default: the JSON's folder)")
    parser.add_argument("--markdown", metavar="FILE",
                        help="write the report to FILE instead of printing it")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing --markdown FILE")
    args = parser.parse_args(argv)
    if args.markdown and os.path.exists(args.markdown) and not args.overwrite:
        parser.error(f"{args.markdown} exists: pass --overwrite to replace it")
    return args


def main(argv=None):
    """Command line entry point; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    data = load(args.json)
    out = args.out or os.path.dirname(os.path.abspath(args.json))
    plot_paths, plot_notes = plots(results(data), machine(data), out)
    for note in plot_notes:
        print(f"report.py: {note}", file=sys.stderr)
    text = render(data, args.json, argv, plot_paths, plot_notes, args.markdown)
    if args.markdown:
        folder = os.path.dirname(os.path.abspath(args.markdown))
        os.makedirs(folder, exist_ok=True)
        with open(args.markdown, "w") as f:
            f.write(text)
        print(f"report.py: wrote {args.markdown}" +
              "".join(f", {p}" for p in plot_paths), file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
