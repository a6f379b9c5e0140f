"""A sweep's results as a table: rows in grid order, written as CSV, JSON or Markdown."""

import csv
import io
import json
import math

from .._files import atomic_write
from .grid import POINT_COLUMNS
from .points import RESULT_COLUMNS

COLUMNS = ("point",) + POINT_COLUMNS + RESULT_COLUMNS


class SweepTable:
    """A sweep's results: ``rows``, one dict per point in grid order (COLUMNS), and
    ``info`` (the grid, the fixed values, the data sizes, the workers, the wall time).

    Accuracies are on the evaluation data: the best after any epoch
    (``best_epoch``, counted from 0 as training prints them) and after the last;
    ``final_cost`` is the running training cost of the last epoch and
    ``eval_cost`` the cost on the evaluation data after it.
    """

    def __init__(self, rows, info=None):
        self.rows = [{key: row.get(key) for key in COLUMNS} for row in rows]
        self.info = dict(info or {})

    def __len__(self):
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __getitem__(self, i):
        return self.rows[i]

    def __repr__(self):
        failed = sum(row["error"] is not None for row in self.rows)
        return f"<SweepTable: {len(self.rows)} points, {failed} failed>"

    def varied(self):
        """The POINT_COLUMNS that take more than one value."""
        return [key for key in POINT_COLUMNS
                if len({json.dumps(row[key]) for row in self.rows}) > 1]

    def to_csv(self, path, *, overwrite=False):
        """Write every row as CSV (sizes as 784-30-10; empty cells for no value)."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(COLUMNS)
        for row in self.rows:
            writer.writerow(["" if row[key] is None else _cell(key, row[key])
                             for key in COLUMNS])
        _write_text(path, buffer.getvalue(), overwrite)

    def to_json(self, path, *, overwrite=False):
        """Write {"info": ..., "rows": [...]} as JSON (null for a NaN or infinite cost)."""
        text = json.dumps(_finite({"info": self.info, "rows": self.rows}), indent=1,
                          allow_nan=False)
        _write_text(path, text + "\n", overwrite)

    @classmethod
    def read_json(cls, path):
        """The table ``to_json`` wrote (to draw or summarise it again)."""
        with open(path) as f:
            try:
                saved = json.load(f)
                return cls(saved["rows"], info=saved.get("info"))
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                raise ValueError(f"{path} is not a sweep table written by to_json: "
                                 f"{e}") from None

    def to_markdown(self, path, *, overwrite=False):
        """Write ``markdown()`` to ``path``."""
        _write_text(path, self.markdown(), overwrite)

    def cells(self):
        """(header, rows) of text cells: the parameters that vary, then the results."""
        varied = self.varied() or ["eta"]
        header = ["#"] + [_LABELS[key] for key in varied] + [
            "best accuracy", "at epoch", "final accuracy", "final cost", "seconds", "verdict"]
        rows = []
        for row in self.rows:
            cells = [str(row["point"])] + [_cell(key, row[key]) for key in varied]
            if row["error"] is not None:
                cells += ["", "", "", "", _number(row["seconds"], ".1f"),
                          "error: " + row["error"]]
            else:
                cells += [_percent(row["best_accuracy"]), _number(row["best_epoch"], "d"),
                          _percent(row["final_accuracy"]), _number(row["final_cost"], ".4g"),
                          _number(row["seconds"], ".1f"), _verdict(row)]
            rows.append(cells)
        return header, rows

    def markdown(self):
        """The sweep as Markdown: a line on what was fixed, the table, and the best
        point of each network."""
        header, rows = self.cells()
        escape = lambda text: str(text).replace("|", "\\|")  # noqa: E731
        lines = [self.description(), ""]
        lines += ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(escape(c) for c in cells) + " |" for cells in rows]
        best = self.best()
        if best:
            lines += ["", "Best point of each network (by best accuracy):", ""]
            lines += [f"- {_cell('sizes', row['sizes'])}: {_percent(row['best_accuracy'])} "
                      f"at eta {row['eta']:g}, m {row['mini_batch_size']}, seed {row['seed']} "
                      f"(epoch {row['best_epoch']})" for row in best]
        return "\n".join(lines) + "\n"

    def description(self):
        """One sentence: what each point did, and what was fixed."""
        info = self.info
        fixed = [key for key in POINT_COLUMNS if key not in self.varied()]
        parts = [f"{_LABELS[key]} {_cell(key, self.rows[0][key])}" for key in fixed
                 if self.rows]
        text = _plural(len(self.rows), "point")
        if "train_size" in info:
            text += (f", each training on {info['train_size']} inputs and evaluated on "
                     f"{info['eval_size']} {info.get('eval_name', 'evaluation')} inputs after "
                     "each epoch")
        if parts:
            text += "; " + ", ".join(parts)
        if "wall_seconds" in info:
            text += (f"; {info['wall_seconds']:.1f} s on "
                     f"{_plural(info.get('workers', 0), 'Dask worker')}")
        if info.get("incomplete"):
            text += f"; INCOMPLETE ({info['incomplete']})"
        return text + "."

    def best(self):
        """The row with the best accuracy of each network (sizes), ties to the first."""
        chosen = {}
        for row in self.rows:
            if row["best_accuracy"] is None:
                continue
            key = json.dumps(row["sizes"])
            if key not in chosen or row["best_accuracy"] > chosen[key]["best_accuracy"]:
                chosen[key] = row
        return list(chosen.values())


_LABELS = {"sizes": "sizes", "eta": "eta", "mini_batch_size": "m", "seed": "seed",
           "epochs": "epochs", "dtype": "dtype"}


def _cell(key, value):
    if key == "sizes" and isinstance(value, list):
        return "-".join(map(str, value))
    if isinstance(value, float) and key != "eta":
        return repr(value)
    if key == "eta" and isinstance(value, (int, float)):
        return f"{value:g}"
    return str(value)


def _plural(count, word):
    return f"{count} {word}{'s' if count != 1 else ''}"


def _number(value, spec):
    return "" if value is None else format(value, spec)


def _percent(value):
    return "" if value is None else f"{value:.2%}"


def _verdict(row):
    if row["diverged"]:
        return row["diverged"].split(":")[0]
    if row["stopped"]:
        return "stopped: " + row["stopped"].split(":")[0]
    return "ok"


def _finite(value):
    """JSON has no NaN or infinity (a diverged run's cost): null instead."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _write_text(path, text, overwrite):
    atomic_write(path, lambda f: f.write(text.encode()), overwrite=overwrite)
