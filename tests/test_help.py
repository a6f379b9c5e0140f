"""Every subcommand's --help: no doubled %%, and each documented "(default X)" is the
parser's actual default."""

import re

import pytest

from fastgd.cli import build_parser, main


def subcommands():
    parser = build_parser()
    [commands] = [a for a in parser._actions if a.dest == "command"]
    return commands.choices


# train.py is being rewritten: these helps say one default while the parser holds
# another (the command fills in the mini-batch size later; profile sets epochs=3).
# The test checks that they still disagree, so that a fix removes them from here.
KNOWN_MISMATCHES = set()


def documented_defaults(help_text):
    """The X of each "(default X)", "(default X; ...)" or "(default X: ...)"; not
    "(default: words)" or "(default per function ...)", which describe."""
    return [token for token in re.findall(r"\(default ([^):;]*)", help_text)
            if not token.startswith("per ")]


def matches(token, default):
    token = token.strip()
    if isinstance(default, (list, tuple)):
        parts = token.split(",")
        return len(parts) == len(default) and all(
            part == "full" if d is None else matches(part, d) for part, d in zip(parts, default))
    if default is None or isinstance(default, bool):
        return False
    if isinstance(default, (int, float)):
        try:
            return float(token.replace(",", "")) == default   # 10,000 is 10000
        except ValueError:
            return False
    return token == str(default)


def test_documented_defaults_reader():
    assert documented_defaults("(default 784,30,10: 784 = 28x28 pixels)") == ["784,30,10"]
    assert documented_defaults("x (default 1; 0 measures) (default: all) "
                               "(default per function: 0.1)") == ["1"]
    assert matches("10,000", 10000) and matches("3", 3.0) and not matches("30", 3)
    assert matches("1,10,full", [1, 10, None]) and not matches("1,10", [1, 10, None])
    assert not matches("10", None)


@pytest.mark.parametrize("name", sorted(subcommands()))
def test_help_defaults_are_the_parsers_defaults(name):
    parser = subcommands()[name]
    checked = []
    for action in parser._actions:
        if not action.help or not action.option_strings:
            continue
        option = max(action.option_strings, key=len)
        for token in documented_defaults(action.help % {"default": action.default}
                                         if "%(" in action.help else action.help):
            checked.append(option)
            if (name, option) in KNOWN_MISMATCHES:
                assert not matches(token, action.default), \
                    f"{name} {option} is fixed: remove it from KNOWN_MISMATCHES"
            else:
                assert matches(token, action.default), \
                    f"fastgd {name} {option}: help says default {token}, " \
                    f"the parser's default is {action.default!r}"
    has_defaults = any(action.option_strings and action.default not in (None, False, "==SUPPRESS==")
                       for action in parser._actions)
    assert checked or not has_defaults, f"fastgd {name}: no documented default found"


@pytest.mark.parametrize("argv", [["--help"]] + [[name, "--help"] for name in subcommands()])
def test_help_prints_no_doubled_percent(argv, capsys):
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: fastgd")
    assert "%%" not in out and "%(" not in out
