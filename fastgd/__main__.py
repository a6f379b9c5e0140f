"""``python -m fastgd``: the command line (see fastgd.cli)."""

from .cli import entry

if __name__ == "__main__":
    raise SystemExit(entry())
