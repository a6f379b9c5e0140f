"""Turn a pytest-benchmark JSON from benchmarks/test_epoch.py into a report.

    pytest benchmarks/ --benchmark-json=bench.json
    python benchmarks/report.py bench.json [--out DIR] [--markdown FILE] [--overwrite]

Writes a markdown report (to stdout, or to --markdown FILE) with the machine,
a table of examples/s and s/epoch with speed-ups over the baselines, the import
and JIT-compile times, and the performance targets checked against the data.
Plots go to --out (default: the JSON's directory) when matplotlib is installed.

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
BOOK = (784, 30, 10)
IMPLS = ["fastgd auto", "fastgd serial", "fastgd parallel",
         "numpy matrix", "network.py", "pytorch"]
BASELINES = ["numpy matrix", "network.py", "pytorch"]
NOISE = 0.05  # auto may be this much slower than serial and still count as noise
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


def results(data):
    """One dict per training benchmark: what was run, and its examples/s.

    The rate is extra_info["examples"] / median seconds per round, so baselines
    timed on a slice of the epoch compare fairly with whole-epoch runs."""
    rows = []
    for bench in data.get("benchmarks", []):
        info = bench.get("extra_info", {})
        if "mode" not in info or "impl" not in info:
            continue  # the import+compile entries, or something foreign
        median = bench["stats"]["median"]
        rows.append({
            "impl": info["impl"],
            "mode": info["mode"],
            "dtype": info.get("dtype", "float32"),
            "threads": int(info.get("threads", 1)),
            "sizes": tuple(info.get("sizes", BOOK)),
            "kernel": info.get("kernel", ""),
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
    """Machine facts recorded next to the results (the first entry that has them)."""
    for bench in data.get("benchmarks", []):
        info = bench.get("extra_info", {})
        if "cpu" in info:
            return info
    return {}


def index(rows):
    """Rows by (impl, mode, dtype, threads, sizes)."""
    return {(r["impl"], r["mode"], r["dtype"], r["threads"], r["sizes"]): r for r in rows}


def rate(idx, impl, mode, dtype, threads, sizes=BOOK):
    """Examples/s of one measurement, or None when it was not measured."""
    row = idx.get((impl, mode, dtype, threads, tuple(sizes)))
    return None if row is None else row["rate"]


def ratio(a, b):
    return None if a is None or b is None else a / b


# ---------------------------------------------------------------- main table

def table_rows(rows):
    """Rows of the main table, sorted, each with its speed-ups.

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
    """The main markdown table."""
    lines = ["| Mode | dtype | Network | Implementation | Threads | Kernel | examples/s "
             "| s/epoch | vs numpy matrix | vs network.py | vs pytorch | vs fastgd auto 1 thread |",
             "|---|---|---|---|--:|---|--:|--:|--:|--:|--:|--:|"]
    for r in table_rows(rows):
        cells = [r["mode"], r["dtype"], fmt_sizes(r["sizes"]), r["impl"], str(r["threads"]),
                 r["kernel"] or "", fmt_rate(r["rate"]), fmt_sig(EPOCH / r["rate"]),
                 *(fmt_ratio(r["vs"][b]) for b in BASELINES), fmt_ratio(r["own"])]
        lines.append("| " + " | ".join(cells) + " |")
    if len(lines) == 2:
        return ["No training benchmarks in this file."]
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

def passes(r, goal, strict):
    return r > goal if strict else r >= goal


def shown(r, digits):
    """r as a reader sees it with `digits` significant digits."""
    return float(fmt_sig(r, digits).replace(",", ""))


def fmt_close(r, goals, strict=False):
    """r to 3 significant digits, more where rounding would move it across a goal
    (1.6977 would read 1.70x, as if it met 1.7x: it reads 1.698x)."""
    digits = 3
    while digits < 6 and any(passes(shown(r, digits), g, strict) != passes(r, g, strict)
                             for g in goals):
        digits += 1
    return fmt_ratio(r, digits)


def check(name, num, den, goal, strict=False):
    """One target: is num / den at least (or, strict, above) goal?

    num and den are (label, examples/s or None)."""
    r = ratio(num[1], den[1])
    if r is None:
        missing = [label for label, value in (num, den) if value is None]
        measured, result = f"{NOT_MEASURED} ({', '.join(missing)})", NOT_MEASURED
    else:
        measured = (f"{fmt_close(r, [goal], strict)} "
                    f"({fmt_rate(num[1])} vs {fmt_rate(den[1])} examples/s)")
        result = "PASS" if passes(r, goal, strict) else "MISS"
    target = f"{'>' if strict else '≥'} {goal:g}x"
    return {"name": name, "measured": measured, "target": target, "result": result, "ratio": r}


def speed_targets(idx):
    """Targets (a)-(c): fastgd auto against the baselines and against itself."""
    def m(impl, mode, threads):
        """(label, examples/s) of a float32 784x30x10 measurement."""
        return f"{impl} {threads}t", rate(idx, impl, mode, "float32", threads)

    checks = []
    auto = m("fastgd auto", "m=10", 1)
    for base, goal in (("numpy matrix", 2), ("network.py", 20), ("pytorch", 10)):
        checks.append(check(f"(a) m=10, 1 thread, float32: fastgd auto ÷ {base}",
                            auto, m(base, "m=10", 1), goal))
    auto = m("fastgd auto", "online", 1)
    for base, goal in (("numpy matrix", 15), ("pytorch", 50)):
        checks.append(check(f"(b) online, 1 thread, float32: fastgd auto ÷ {base}",
                            auto, m(base, "online", 1), goal))
    checks.append(check("(c) full batch, float32: fastgd auto 2 threads ÷ 1 thread",
                        m("fastgd auto", "full batch", 2), m("fastgd auto", "full batch", 1), 1.7))
    threads = sorted({t for impl, mode, dtype, t, sizes in idx
                      if impl in ("fastgd auto", "numpy matrix") and mode == "full batch"
                      and dtype == "float32" and sizes == BOOK})
    for t in threads or [1]:
        checks.append(check(f"(c) full batch, float32, {t} thread{'s' if t > 1 else ''}: "
                            "fastgd auto ÷ numpy matrix",
                            m("fastgd auto", "full batch", t), m("numpy matrix", "full batch", t),
                            1.0, strict=True))
    return checks


def auto_vs_serial(idx):
    """Target (d): fastgd auto ÷ fastgd serial for every mode/dtype/threads/sizes.

    The serial kernel uses one thread whatever the count, so it is measured at
    1 thread only; auto at t threads is compared with that measurement.  Where
    auto chose the serial kernel both sides ran the same code: those pairs show
    run-to-run noise and are listed, but only the pairs where auto chose the
    parallel kernel decide the check.
    Returns (comparisons sorted worst first, target dict)."""
    pairs = []
    for (impl, mode, dtype, threads, sizes), row in idx.items():
        if impl != "fastgd auto":
            continue
        serial = idx.get(("fastgd serial", mode, dtype, threads, sizes)) or \
            idx.get(("fastgd serial", mode, dtype, 1, sizes))
        if serial is not None:
            where = (f"{mode}, {dtype}, {threads}t, {fmt_sizes(sizes)}, "
                     f"auto chose {row['kernel'] or '?'}")
            pairs.append((row["rate"] / serial["rate"], where, row["kernel"]))
    pairs.sort()
    name = ("(d) every mode/dtype/threads/sizes where auto chose the parallel kernel: "
            "fastgd auto ÷ fastgd serial, worst case")
    target = f"≥ 1x (≥ {fmt_sig(1 - NOISE, 2)}x: within noise)"
    deciding = [(r, where) for r, where, kernel in pairs if kernel != "serial"]
    if not deciding:
        return pairs, {"name": name, "measured": NOT_MEASURED, "target": target,
                       "result": NOT_MEASURED, "ratio": None}
    worst, where = deciding[0]
    if worst >= 1:
        result = "PASS"
    elif worst >= 1 - NOISE:
        result = f"PASS (within noise: auto {fmt_sig(100 * (1 - worst), 2)}% slower)"
    else:
        result = "MISS"
    measured = f"{fmt_close(worst, [1, 1 - NOISE])} at {where} ({len(deciding)} comparisons)"
    return pairs, {"name": name, "measured": measured, "target": target, "result": result,
                   "ratio": worst}


def targets_section(rows):
    """The Targets section: one line per check with measured value, target, PASS/MISS."""
    idx = index(rows)
    pairs, worst = auto_vs_serial(idx)
    checks = speed_targets(idx) + [worst]
    lines = ["## Targets", "",
             "Ratios of examples/s (medians). \"not measured\": the run has no data for it. "
             "(d) compares fastgd auto at each thread count with fastgd serial at 1 thread "
             "(the serial kernel uses one thread whatever the count).", "",
             "| Check | Measured | Target | Result |", "|---|---|---|---|"]
    for c in checks:
        lines.append(f"| {c['name']} | {c['measured']} | {c['target']} | {c['result']} |")
    slower = [(r, where, kernel) for r, where, kernel in pairs if r < 1]
    if slower:
        lines += ["", "Where fastgd auto was slower than fastgd serial (where auto chose "
                  "serial, the same kernel ran twice: the gap is run-to-run noise):", ""]
        lines += [f"- {fmt_close(r, [1, 1 - NOISE])} at {where}" for r, where, _ in slower]
    return lines


# ---------------------------------------------------------------- plots

def plot_rows(rows):
    """The float32 784x30x10 rows, which both plots show."""
    return [r for r in rows if r["dtype"] == "float32" and r["sizes"] == BOOK]


def plot_title(what, facts):
    cpu = facts.get("cpu", "unknown CPU")
    cores = facts.get("cores", "?")
    return f"{what}\n{cpu}, {cores} cores"


def plot_throughput(plt, rows, facts, path):
    """examples/s against mini-batch size, one line per implementation x threads."""
    from matplotlib import ticker
    colors = {"fastgd auto": "tab:blue", "fastgd serial": "tab:green",
              "fastgd parallel": "tab:purple", "numpy matrix": "tab:orange",
              "network.py": "tab:brown", "pytorch": "tab:red"}
    markers = {"fastgd auto": "o", "fastgd serial": "s", "fastgd parallel": "D",
               "numpy matrix": "^", "network.py": "v", "pytorch": "P"}
    styles = ["-", "--", ":", "-."]
    thread_counts = sorted({r["threads"] for r in rows})
    fig, ax = plt.subplots(figsize=(10, 6))
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
                    label=f"{impl}, {t} thread{'s' if t > 1 else ''}", **wide)
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
    plt.close(fig)


def plot_scaling(plt, rows, facts, path):
    """fastgd auto's speed-up over its own 1-thread result, one line per mode."""
    auto = [r for r in rows if r["impl"] == "fastgd auto"]
    one = {r["mode"]: r["rate"] for r in auto if r["threads"] == 1}
    thread_counts = sorted({r["threads"] for r in auto})
    fig, ax = plt.subplots(figsize=(8, 6))
    ax.plot(thread_counts, thread_counts, "k--", linewidth=1, label="ideal (linear)")
    for mode in MODES:
        points = sorted((r["threads"], r["rate"] / one[mode]) for r in auto
                        if r["mode"] == mode and mode in one)
        if points:
            x, y = zip(*points)
            line, = ax.plot(x, y, "-o", label=mode)
            ax.annotate(f"{y[-1]:.2f}x", (x[-1], y[-1]), xytext=(6, 0),
                        textcoords="offset points", va="center", fontsize="small",
                        color=line.get_color())
    ax.set_xticks(thread_counts)
    span = max(thread_counts) - min(thread_counts) or 1
    ax.set_xlim(min(thread_counts) - 0.1 * span, max(thread_counts) + 0.2 * span)  # labels
    ax.set_xlabel("threads")
    ax.set_ylabel("speed-up over fastgd auto at 1 thread")
    ax.set_ylim(bottom=0)
    ax.set_title(plot_title("fastgd auto: scaling with threads (float32, 784x30x10)", facts))
    ax.grid(True, alpha=0.3)
    ax.legend(title="mode", fontsize="small")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def plots(rows, facts, out):
    """Write the PNGs into out. Returns (paths written, notes about what was skipped)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return [], ["matplotlib is not installed: plots skipped "
                    "(pip install 'fastgd[plot]' to get them)."]
    data = plot_rows(rows)
    written, notes = [], []
    os.makedirs(out, exist_ok=True)
    if data:
        path = os.path.join(out, "throughput_vs_batch.png")
        plot_throughput(plt, data, facts, path)
        written.append(path)
    else:
        notes.append("throughput_vs_batch.png skipped: no float32 784x30x10 results.")
    if any(r["impl"] == "fastgd auto" and r["threads"] == 1 for r in data):
        path = os.path.join(out, "scaling_vs_threads.png")
        plot_scaling(plt, data, facts, path)
        written.append(path)
    else:
        notes.append("scaling_vs_threads.png skipped: no 1-thread fastgd auto results.")
    return written, notes


# ---------------------------------------------------------------- report

def header(data, facts, json_path, argv):
    """Title, machine, provenance and how to read the numbers."""
    when = data.get("datetime", "")
    try:
        when = datetime.fromisoformat(when).strftime("%Y-%m-%d %H:%M %Z").strip()
    except ValueError:
        pass
    mi, ci = data.get("machine_info", {}), data.get("commit_info", {})
    rounds = sorted({r["rounds"] for r in results(data) if r["rounds"] is not None})
    torch = sorted({b["extra_info"]["torch"] for b in data.get("benchmarks", [])
                    if "torch" in b.get("extra_info", {})})
    command = "pytest benchmarks/ --benchmark-json=" + os.path.basename(json_path)
    if facts.get("smoke"):
        command = "FASTGD_BENCH_SMOKE=1 " + command
    lines = [
        "# fastgd benchmark report", "",
        f"- CPU: {facts.get('cpu', 'unknown')}, {facts.get('cores', '?')} cores "
        f"(numba may use {facts.get('numba_max_threads', '?')} threads)",
        f"- numba {facts.get('numba', '?')}, threading layer {facts.get('threading_layer', '?')}; "
        f"numpy {facts.get('numpy', '?')}" + (f"; torch {', '.join(torch)}" if torch else ""),
        f"- Python {mi.get('python_version', '?')} ({mi.get('python_implementation', '?')}), "
        f"{mi.get('system', '?')} {mi.get('release', '')}".rstrip(),
        f"- Run: {when or 'date not recorded'}; commit {ci.get('id', '?')} "
        f"on {ci.get('branch', '?')}{' (uncommitted changes)' if ci.get('dirty') else ''}",
        f"- Benchmark command: `{command}` (as in benchmarks/test_epoch.py: pytest-benchmark "
        "does not record the command line, so any -k filter or other option is not known)",
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
    facts = machine(data)
    lines = header(data, facts, json_path, argv)
    lines += ["", "## Seconds per epoch and speed-ups", ""] + main_table(rows)
    lines += ["", "## Import and JIT compile", "",
              "A fresh process: import fastgd, then the first serial and the first parallel "
              "training call; cold: empty numba cache, warm: cache filled by an earlier process.",
              ""] + compile_table(compile_entries(data))
    lines += [""] + targets_section(rows)
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
    parser.add_argument("json", help="file written by pytest benchmarks/ --benchmark-json=FILE")
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
