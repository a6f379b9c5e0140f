"""The kernel cache (fastgd.kernels.cache): module names keyed by fastgd's sources,
files checked before import, stale modules removed, cache_info and clear_cache,
compile_kernels, and the commands fastgd compile and fastgd cache.

Most tests only generate and import modules (no compiling: numba compiles on a
kernel's first call) in a temporary folder, with numba's cache folder there too."""

import os
import re
import shutil
import time

import numba
import pytest

import fastgd
import fastgd.precompile
import fastgd.training
from fastgd import config, kernels
from fastgd.kernels import cache as kernel_cache
from fastgd.cli import main

OTHER_SOURCES = "0123456789ab"  # a source hash that is not this installation's
OLD = time.time() - kernel_cache.STALE_AFTER - 60  # an mtime old enough to be stale


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A fresh, empty kernel cache folder, numba's cache folder beside it, and no
    generated module remembered by this process."""
    monkeypatch.setenv("FASTGD_CACHE_DIR", str(tmp_path / "fastgd"))
    monkeypatch.setattr(numba.config, "CACHE_DIR", str(tmp_path / "numba"))
    monkeypatch.setattr(kernels.loader, "_modules", {})
    monkeypatch.setattr(kernel_cache, "_swept", set())
    return tmp_path / "fastgd"


def numba_folder(folder):
    """Where numba puts the compiled code of the modules in folder (with the
    fixture's numba.config.CACHE_DIR)."""
    path = kernel_cache.numba_folders(folder)[1]
    assert path.startswith(numba.config.CACHE_DIR)
    os.makedirs(path, exist_ok=True)
    return path


def fake_module(folder, name, mtime=None):
    """A generated module's files as numba and Python leave them: its source,
    compiled code and bytecode; returns their paths."""
    os.makedirs(folder / "__pycache__", exist_ok=True)
    paths = [folder / f"{name}.py",
             os.path.join(numba_folder(folder), f"{name}._train_serial-575.py311.nbi"),
             os.path.join(numba_folder(folder), f"{name}._train_serial-575.py311.1.nbc"),
             folder / "__pycache__" / f"{name}.cpython-311.pyc"]
    for path in paths:
        with open(path, "w") as f:
            f.write("x = 1\n")
        if mtime is not None:
            os.utime(path, (mtime, mtime))
    return [str(p) for p in paths]


def foreign_files(folder):
    """Files in the cache folders that are not fastgd's: none may ever be removed."""
    os.makedirs(folder / "__pycache__", exist_ok=True)
    paths = [folder / "notes.txt", folder / "fastgd_kernels_notes.py",
             folder / "fastgd_kernels_30_10_xyz.py", folder / "compile-seconds",
             folder / "__pycache__" / "helper.cpython-311.pyc",
             os.path.join(numba_folder(folder), "helper.f-3.py311.nbi")]
    for path in paths:
        with open(path, "w") as f:
            f.write("not fastgd's\n")
        os.utime(path, (OLD, OLD))
    return [str(p) for p in paths]


# -- names and the source hash -------------------------------------------------------------

def test_module_names_say_widths_path_and_sources():
    name = kernel_cache.module_name([30, 10], True, "abcdef012345", "source text")
    assert re.fullmatch(r"fastgd_kernels_30_10_dense_abcdef012345_[0-9a-f]{16}", name)
    assert kernel_cache.parse_name(name) == kernel_cache.ModuleName((30, 10), True,
                                                                     "abcdef012345")
    other = kernel_cache.module_name([30, 10], True, "abcdef012345", "other text")
    assert other != name  # the digest is the source's
    # fastgd 0.1.0's names (no source hash) are fastgd's, of unknown sources
    assert kernel_cache.parse_name("fastgd_kernels_30_10_9758b29c82c0fd68") == \
        kernel_cache.ModuleName((30, 10), False, None)
    for foreign in ("fastgd_kernels_notes", "fastgd_kernels_30_10_xyz", "numpy",
                    "fastgd_kernels_30_10_9758B29C82C0FD68", "fastgd_kernels__9758b29c82c0fd68"):
        assert kernel_cache.parse_name(foreign) is None


def test_a_generated_module_is_named_with_this_installations_source_hash(folder):
    module = kernels.kernels([4, 3, 2], "float32")
    name = kernel_cache.parse_name(module.__name__)
    assert name == kernel_cache.ModuleName((3, 2), False, kernel_cache.source_hash())
    assert os.path.dirname(module.__file__) == str(folder)


def test_the_source_hash_follows_every_source_file(tmp_path, monkeypatch):
    fastgd_folder = os.path.dirname(os.path.dirname(kernel_cache.__file__))
    names = [name for name, _ in kernel_cache.source_files()]
    for name in names:
        os.makedirs(os.path.dirname(tmp_path / name), exist_ok=True)
        shutil.copy(os.path.join(fastgd_folder, name), tmp_path / name)
    monkeypatch.setattr(kernel_cache, "__file__", str(tmp_path / "kernels" / "cache.py"))
    assert [name for name, _ in kernel_cache.source_files()] == names
    unchanged = kernel_cache.source_hash.__wrapped__()
    assert unchanged == kernel_cache.source_hash()
    for name in names:
        text = (tmp_path / name).read_text()
        (tmp_path / name).write_text(text + "\n# an edit\n")
        assert kernel_cache.source_hash.__wrapped__() != unchanged, name
        (tmp_path / name).write_text(text)
    (tmp_path / "kernels" / "new.py").write_text("# a new module of the package\n")
    assert kernel_cache.source_hash.__wrapped__() != unchanged
    (tmp_path / "kernels" / "new.py").unlink()
    monkeypatch.setattr(numba, "__version__", "0.0.1")
    assert kernel_cache.source_hash.__wrapped__() != unchanged


def test_sources_are_every_fastgd_file_the_generated_code_depends_on():
    """The generated modules import only fastgd.kernels, whose modules import only
    each other, fastgd.config and fastgd._files (no compiled code): every module of
    the package and config.py are hashed, so a new import from elsewhere must be
    added to SOURCES (or here)."""
    source = kernels.module_source([3, 2], 16)
    assert {name.split(".")[1] for name in re.findall(r"^from (fastgd\.\w+)", source, re.M)} \
        == {"kernels"}
    fastgd_folder = os.path.dirname(os.path.dirname(kernel_cache.__file__))
    names = {name for name, _ in kernel_cache.source_files()}
    package = {name for name in os.listdir(os.path.join(fastgd_folder, "kernels"))
               if name.endswith(".py")}
    assert names == {f"kernels/{name}" for name in package} | {"config.py"}
    assert {"generator.py", "generic.py", "drivers.py", "maths.py", "intrinsics.py", "buffers.py",
            "inputs.py", "workqueue.py", "source.py"} <= package

    def imports(name):  # the fastgd modules a file imports from outside the package
        with open(os.path.join(fastgd_folder, name)) as f:
            return {module or item for dots, module, item
                    in re.findall(r"^from (\.+)(\w*) import \(?(\w+)", f.read(), re.M)
                    if dots == ".." or name == "config.py"}

    for name in package:
        assert imports(f"kernels/{name}") <= {"config", "_files"}, name
    assert imports("config.py") == set()


def test_a_changed_setting_gives_another_module(monkeypatch, folder):
    """config.CHAINS changes the order of the additions: changed at run time, it
    gives another generated module (another source, another name), and the
    network's evaluation kernel follows it; changed back, the first again."""
    sizes = [4, 3, 2]
    two = kernels.kernels(sizes, "float32")
    monkeypatch.setattr(fastgd.config, "CHAINS", 1)
    one = kernels.kernels(sizes, "float32")
    assert one is not two and one.__name__ != two.__name__
    with open(one.__file__) as f:
        assert "CHAINS = 1" in f.read()
    net = fastgd.Network(sizes, seed=0)
    monkeypatch.setattr(fastgd.config, "SPECIALIZE", "now")
    assert net._kernel("feedforward_serial") is one.feedforward_serial
    monkeypatch.setattr(fastgd.config, "CHAINS", 2)
    assert kernels.kernels(sizes, "float32") is two
    assert net._kernel("feedforward_serial") is two.feedforward_serial
    monkeypatch.setattr(fastgd.config, "CHAINS", 3)
    with pytest.raises(ValueError, match="config.CHAINS must be 1 or 2"):
        kernels.kernels(sizes, "float32")


# -- files checked before import -----------------------------------------------------------

def test_a_tampered_module_is_rewritten_before_it_is_imported(folder, monkeypatch):
    path = kernels.kernels([4, 3, 2], "float32").__file__
    expected = kernels.module_source([3, 2], kernels.panel_width(4))
    with open(path) as f:
        assert f.read() == expected
    with open(path, "a") as f:
        f.write("\nraise RuntimeError('tampered')\n")
    monkeypatch.setattr(kernels.loader, "_modules", {})  # as a new process would
    module = kernels.kernels([4, 3, 2], "float32")
    assert module.__file__ == path
    with open(path) as f:
        assert f.read() == expected
    assert [p for p in os.listdir(folder) if p.endswith(".tmp")] == []


def test_an_intact_module_is_not_written_again(folder, monkeypatch):
    path = kernels.kernels([4, 3, 2], "float32").__file__
    old = int(OLD) * 10**9
    os.utime(path, ns=(old, old))  # numba's older versions go by the mtime: keep it
    monkeypatch.setattr(kernels.loader, "_modules", {})
    kernels.kernels([4, 3, 2], "float32")
    assert os.stat(path).st_mtime_ns == old


# -- stale modules -------------------------------------------------------------------------

def test_stale_modules_are_removed_once_left_alone(folder):
    kernels.kernels([4, 3, 2], "float32")  # the current module, and the folder swept once
    current = kernels.kernels([4, 3, 2], "float32").__name__
    for path in kernel_cache._files_by_module(str(folder))[current]:
        os.utime(path[0], (OLD, OLD))  # old, but of these sources: stays
    stale = fake_module(folder, kernel_cache.module_name([3, 2], False, OTHER_SOURCES, "a"),
                        mtime=OLD)
    written_just_now = fake_module(
        folder, kernel_cache.module_name([3, 2], True, OTHER_SOURCES, "b"))
    old_name = fake_module(folder, "fastgd_kernels_30_10_9758b29c82c0fd68", mtime=OLD)
    old_temporary = folder / ".gen-k2x_9a.py"
    old_temporary.write_text("")
    os.utime(old_temporary, (OLD, OLD))
    foreign = foreign_files(folder)

    removed = kernel_cache.remove_stale(str(folder))

    assert sorted(removed.files) == sorted(stale + old_name + [str(old_temporary)])
    assert removed.bytes == 6 * len(stale + old_name)
    assert removed.failed == ()
    for path in written_just_now + foreign:
        assert os.path.exists(path), path
    assert os.path.exists(folder / f"{current}.py")


def test_the_first_use_of_the_folder_in_a_process_removes_stale_modules(folder):
    stale = fake_module(folder, kernel_cache.module_name([3, 2], False, OTHER_SOURCES, "a"),
                        mtime=OLD)
    foreign = foreign_files(folder)
    kernels.kernels([4, 3, 2], "float32")
    assert not any(os.path.exists(p) for p in stale)
    assert all(os.path.exists(p) for p in foreign)
    # once per process: a stale module appearing later waits for the next process
    later = fake_module(folder, kernel_cache.module_name([3, 2], True, OTHER_SOURCES, "b"),
                        mtime=OLD)
    kernels.kernels([4, 3, 2], "float64")
    assert all(os.path.exists(p) for p in later)


def test_a_file_another_process_removed_first_is_no_failure(folder):
    os.makedirs(folder)
    here = folder / "here.py"
    here.write_text("12345")
    removed = kernel_cache._remove(str(folder), [
        ("fastgd_kernels_3_2_9758b29c82c0fd68",
         [(str(folder / "gone.py"), 10, OLD), (str(here), 5, OLD)])])
    assert removed.files == (str(here),) and removed.bytes == 5 and removed.failed == ()


# -- cache_info and clear_cache ------------------------------------------------------------

def test_cache_info_of_an_empty_folder_creates_nothing(folder):
    info = fastgd.cache_info()
    assert info.folder == str(folder)
    assert info.entries == () and info.bytes == 0 and info.numba_folders == ()
    assert not os.path.exists(folder)


def test_cache_info_lists_each_module(folder):
    sparse = kernels.kernels([4, 3, 2], "float32").__name__
    dense = kernels.kernels([5, 4], "float64", "cross-entropy", dense=True).__name__
    stale = kernel_cache.module_name([3, 2], False, OTHER_SOURCES, "a")
    fake_module(folder, stale)
    compiled = os.path.join(numba_folder(folder), f"{sparse}._train_serial-575.py311.1.nbc")
    with open(compiled, "wb") as f:
        f.write(b"\0" * 1000)
    foreign_files(folder)

    info = fastgd.cache_info()

    assert [e.module for e in info.entries] == [sparse, dense, stale]  # current ones first
    first, second, third = info.entries
    assert (first.widths, first.inputs, first.cost, first.panel, first.current,
            first.compiled) == ((3, 2), "sparse", "quadratic", kernels.panel_width(4), True, True)
    assert (second.widths, second.inputs, second.cost, second.panel, second.current,
            second.compiled) == ((4,), "dense", "cross-entropy", kernels.panel_width(8), True,
                                 False)
    if kernels.panel_width(4) != kernels.panel_width(8):
        assert (first.dtype, second.dtype) == ("float32", "float64")
    assert (third.current, third.compiled, third.cost, third.dtype) == (False, True, None, None)
    # its .py, numba's code and, unless PYTHONDONTWRITEBYTECODE is set, Python's bytecode
    pyc = re.compile(rf"{re.escape(str(folder))}/__pycache__/{sparse}\.cpython-\d+\.pyc")
    assert str(folder / f"{sparse}.py") in first.files and compiled in first.files
    assert all(f in (str(folder / f"{sparse}.py"), compiled) or pyc.fullmatch(f)
               for f in first.files), first.files
    assert first.bytes == sum(os.path.getsize(f) for f in first.files)
    assert info.bytes == sum(e.bytes for e in info.entries)
    assert numba_folder(folder) in info.numba_folders


def test_clear_cache_removes_fastgds_modules_and_nothing_else(folder):
    module = kernels.kernels([4, 3, 2], "float32").__name__
    stale = fake_module(folder, kernel_cache.module_name([3, 2], False, OTHER_SOURCES, "a"))
    foreign = foreign_files(folder)
    before = fastgd.cache_info()

    removed = fastgd.clear_cache()

    assert sorted(removed.modules) == sorted(e.module for e in before.entries)
    assert module in removed.modules
    assert set(stale) <= set(removed.files)
    assert removed.bytes == before.bytes and removed.failed == ()
    assert fastgd.cache_info().entries == ()
    for path in foreign:
        assert os.path.exists(path), path


def test_a_module_whose_files_were_cleared_is_written_again(folder, monkeypatch):
    path = kernels.kernels([4, 3, 2], "float32").__file__
    fastgd.clear_cache()
    monkeypatch.setattr(kernels.loader, "_modules", {})
    assert kernels.kernels([4, 3, 2], "float32").__file__ == path
    assert os.path.exists(path)


# -- compile_kernels ---------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, error, message", [
    (dict(sizes=[4]), ValueError, "sizes must list at least two layers"),
    (dict(sizes="4,3,2"), TypeError,
     "sizes must be a list of layer sizes such as [784, 30, 10], got str"),
    (dict(sizes=[4, 3, 2], dtype="float16"), ValueError, "dtype must be 'float32' or 'float64'"),
    (dict(sizes=[4, 3, 2], cost="hinge"), ValueError,
     "cost must be one of 'quadratic', 'cross-entropy', got 'hinge'"),
    (dict(sizes=[4, 3, 2], inputs="all"), ValueError,
     "inputs must be one of 'sparse', 'dense', 'both', got 'all'"),
    # flags are booleans: "no" was taken as true (and compiled the MPI kernels too)
    (dict(sizes=[4, 3, 2], distributed="no"), TypeError,
     "distributed must be True or False, got 'no'"),
    (dict(sizes=[4, 3, 2], verbose="x"), TypeError, "verbose must be True or False, got 'x'"),
])
def test_compile_kernels_refuses_bad_arguments_before_compiling(kwargs, error, message,
                                                                 monkeypatch):
    monkeypatch.setattr(fastgd.precompile, "_compile_step", None)  # nothing may be compiled
    with pytest.raises(error, match=re.escape(message)):
        fastgd.compile_kernels(**kwargs)


def test_load_compiled_kernels_never_compiles(folder, monkeypatch):
    """With an empty cache it does nothing and says so; with every kernel on disk
    it runs what compile_kernels runs for that input path (which then loads)."""
    calls = []
    monkeypatch.setattr(fastgd.precompile, "_compile_training",
                        lambda net, data, dense: calls.append(
                            (net.sizes, net.dtype.name, net.cost_function, dense,
                             config.SPECIALIZE)))
    monkeypatch.setattr(fastgd.precompile.Network, "warm_up",
                        lambda net: calls.append("warm_up"))
    assert fastgd.precompile.load_compiled_kernels([4, 3, 2]) is False
    assert calls == []
    monkeypatch.setattr(kernels, "ready", lambda module, names, dtype: True)
    assert fastgd.precompile.load_compiled_kernels([4, 3, 2], "float64", "cross-entropy",
                                                   inputs="dense") is True
    assert calls == [([4, 3, 2], "float64", "cross-entropy", True, "now"), "warm_up"]
    # fastgd train loads the evaluation kernels itself, beside the training
    calls.clear()
    assert fastgd.precompile.load_compiled_kernels([4, 3, 2], evaluation=False) is True
    assert calls == [([4, 3, 2], "float32", "quadratic", False, "now")]
    with pytest.raises(TypeError, match="evaluation must be True or False, got 0"):
        fastgd.precompile.load_compiled_kernels([4, 3, 2], evaluation=0)
    with pytest.raises(ValueError, match="inputs must be 'sparse' or 'dense', got 'both'"):
        fastgd.precompile.load_compiled_kernels([4, 3, 2], inputs="both")
    with pytest.raises(ValueError, match="cost must be one of"):
        fastgd.precompile.load_compiled_kernels([4, 3, 2], cost="hinge")


@pytest.mark.slow  # the generic kernels in float64 for sparse inputs: half a minute, cold
def test_compile_kernels_leaves_every_kernel_on_disk(monkeypatch):
    # A network too wide to specialise: compile_kernels compiles the generic kernels,
    # which the rest of the suite compiles too, on the same path as specialised ones.
    # (The dense path's generic kernels, which nothing else here compiles in
    # float64, are left to the next test's list.)
    monkeypatch.setattr(config, "SPECIALIZE_MAX_OUTPUTS", 0)

    def compile_all():
        return fastgd.compile_kernels([4, 3, 2], "float64", inputs="sparse", distributed=True)

    first = compile_all()
    assert (first.sizes, first.dtype, first.cost, first.inputs, first.generic) == (
        [4, 3, 2], "float64", "quadratic", "sparse", True)
    assert [(k.kernel, k.inputs) for k in first.kernels] == [
        (f"{kind}_{variant}", "sparse") for kind in ("train", "gradient_sum")
        for variant in ("serial", "parallel")] + [("feedforward", None)]
    assert first.seconds >= sum(k.seconds for k in first.kernels)
    module = kernels.kernels([4, 3, 2], "float64")
    for name in ("train_serial", "train_parallel", "gradient_sum_serial",
                 "gradient_sum_parallel", "feedforward_serial", "feedforward_parallel"):
        assert kernels.on_disk(getattr(module, name)) is True, name
    again = compile_all()
    assert all(k.cached for k in again.kernels) and again.compiled == ()


def test_compile_kernels_on_both_input_paths_runs_every_kernel_of_each(monkeypatch):
    steps = []
    monkeypatch.setattr(config, "SPECIALIZE_MAX_OUTPUTS", 0)  # the generic kernels
    monkeypatch.setattr(fastgd.precompile, "_compile_step",  # which compile nothing here
                        lambda kernel, inputs, fns, run, dtype: steps.append(
                            (kernel, inputs, list(fns), dtype))
                        or fastgd.precompile.CompiledKernel(kernel, inputs, True, 0.0))
    report = fastgd.compile_kernels([4, 3, 2], "float64", inputs="both", distributed=True)
    expected = [(f"{kind}_{variant}", inputs) for inputs in ("sparse", "dense")
                for kind in ("train", "gradient_sum") for variant in ("serial", "parallel")]
    assert [(kernel, inputs) for kernel, inputs, _, _ in steps] == expected + [
        ("feedforward", None)]
    assert [(k.kernel, k.inputs) for k in report.kernels] == expected + [("feedforward", None)]
    # each step compiles the kernel it names, of its input path's module
    for kernel, inputs, fns, dtype in steps:
        assert dtype == "float64"
        module = kernels.kernels([4, 3, 2], "float64", dense=inputs == "dense")
        names = (["feedforward_serial", "feedforward_parallel"] if kernel == "feedforward"
                 else [kernel])
        assert fns == [getattr(module, name) for name in names], kernel
    assert report.inputs == "both" and report.compiled == ()


# -- the commands ----------------------------------------------------------------------------

@pytest.mark.slow  # [5, 4, 3, 2] in float64 unless test_kernels.py compiled it first
def test_compile_command_says_what_it_compiled(capsys):
    assert main(["compile", "--sizes", "5,4,3,2", "--dtype", "float64"]) == 0
    out = capsys.readouterr().out
    assert re.match(r"Kernels for a \[5, 4, 3, 2\] network, float64, quadratic cost, sparse "
                    r"inputs: (\d) compiled, (\d) already on disk, [\d.]+ s; cache ", out)
    counts = re.match(r".*: (\d) compiled, (\d) already", out)
    assert int(counts[1]) + int(counts[2]) == 3
    for kernel in ("train_serial (sparse)", "train_parallel (sparse)", "feedforward"):
        assert re.search(rf"^  {re.escape(kernel)} +(on disk|compiled) +[\d.]+ s$", out, re.M)


@pytest.mark.parametrize("argv, message", [
    (["compile", "--sizes", "4"], "needs at least two layers"),
    (["compile", "--sizes", "4,3,2", "--inputs", "all"], "invalid choice: 'all'"),
    (["compile", "--sizes", "4,3,2", "--cost", "hinge"], "invalid choice: 'hinge'"),
    (["compile", "--dtype", "float16"], "invalid choice: 'float16'"),
    (["cache", "--clean"], "unrecognized arguments: --clean"),
])
def test_commands_refuse_bad_arguments(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_cache_command_shows_the_folder_and_each_module(folder, capsys):
    module = kernels.kernels([4, 3, 2], "float32").__name__
    stale = kernel_cache.module_name([3, 2], True, OTHER_SOURCES, "a")
    fake_module(folder, stale)
    assert main(["cache"]) == 0
    out = capsys.readouterr().out
    assert re.match(rf"Kernel cache {re.escape(str(folder))}: 2 modules \(1 stale\), "
                    r"[\d.]+ MB\n", out)
    dtype = "float32" if kernels.panel_width(4) != kernels.panel_width(8) else r"panel \d+"
    assert re.search(rf"^  {module}: sizes \*,3,2, {dtype}, sparse inputs, quadratic cost, "
                     r"not compiled, [\d.]+ MB$", out, re.M)
    assert re.search(rf"^  {stale}: sizes \*,3,2, dtype unknown, dense inputs, cost unknown, "
                     r"compiled, [\d.]+ MB, stale$", out, re.M)


def test_cache_clear_command_removes_the_modules_and_says_so(folder, capsys):
    kernels.kernels([4, 3, 2], "float32")
    fake_module(folder, kernel_cache.module_name([3, 2], True, OTHER_SOURCES, "a"))
    foreign = foreign_files(folder)
    assert main(["cache", "--clear"]) == 0
    out = capsys.readouterr().out
    assert re.fullmatch(rf"Removed 2 modules \(\d+ files, [\d.]+ MB\) from "
                        rf"{re.escape(str(folder))}\n", out)
    assert all(os.path.exists(p) for p in foreign)
    assert main(["cache"]) == 0
    assert ": 0 modules, 0.0 MB" in capsys.readouterr().out


def test_cache_clear_command_fails_when_a_file_stays(folder, capsys, monkeypatch):
    source = kernels.kernels([4, 3, 2], "float32").__file__
    remove = os.remove

    def refuse(path):
        if str(path).endswith(".py"):
            raise PermissionError(13, "Permission denied", path)
        remove(path)

    monkeypatch.setattr(kernel_cache.os, "remove", refuse)
    assert main(["cache", "--clear"]) == 2
    captured = capsys.readouterr()
    # the .py stays (its bytecode, if Python wrote it, goes)
    assert re.match(r"Removed 0 modules \((0|1) files?", captured.out), captured.out
    assert os.path.exists(source)
    assert re.search(r"^fastgd cache: error: could not remove 1 file, such as .*\.py: "
                     r"Permission denied$", captured.err, re.M)


def test_compile_kernels_is_exported():
    assert fastgd.compile_kernels is fastgd.precompile.compile_kernels
    assert {"compile_kernels", "cache_info", "clear_cache"} <= set(fastgd.__all__)


# -- one process compiles, the others wait ------------------------------------------------

def test_nested_compiling_in_one_process_does_not_wait_for_itself():
    module = kernels.generic_kernels([3, 2])
    waits = []
    with kernels.compiling(module, "float64", lambda: waits.append(1)):
        with kernels.compiling(module, "float64", lambda: waits.append(2)):
            pass
    # the outer block may have waited for another process compiling the same
    # kernels (another test worker); the inner one holds the lock already
    assert 2 not in waits


@pytest.mark.skipif(kernels.loader.fcntl is None, reason="no file locks between processes here")
def test_a_process_meeting_cold_kernels_waits_while_another_compiles_them(tmp_path):
    """While this process holds the compile lock of the generic kernels, a run
    that needs them cold says that it waits, and compiles nothing meanwhile
    (it is killed then: its compile is not this test's point)."""
    import fcntl
    import subprocess
    import sys
    import threading

    name = kernels.generic_kernels([3, 2]).__name__  # the same name in any folder
    lock = open(tmp_path / f"{name}.float64.lock", "a")
    fcntl.flock(lock, fcntl.LOCK_EX)
    code = ("import sys, numpy as np\n"
            "from numba.core import event\n"
            "class Told(event.Listener):\n"
            "    def on_start(self, ev):\n"
            "        print('numba compiles', ev.data['dispatcher'].py_func.__name__,\n"
            "              file=sys.stderr, flush=True)\n"
            "    def on_end(self, ev):\n"
            "        pass\n"
            "event.register('numba:compile', Told())\n"
            "import fastgd\n"
            "net = fastgd.Network([3, 2], seed=0, dtype='float64')\n"
            "net.SGD((np.zeros((4, 3)), np.zeros(4, np.int64)), 1, 2, 1.0)\n")
    env = dict(os.environ, FASTGD_CACHE_DIR=str(tmp_path),
               NUMBA_CACHE_DIR=str(tmp_path / "numba"), FASTGD_SPECIALIZE="never")
    child = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE,
                             stdout=subprocess.DEVNULL, text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(child.stderr), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 120
        while not any("waiting for another fastgd process" in line for line in lines):
            assert child.poll() is None and time.monotonic() < deadline, (
                "the run did not say it waits:\n" + "".join(lines))
            time.sleep(0.05)
        time.sleep(2.0)
        after = "".join(lines).split("waiting for another fastgd process", 1)[1]
        assert child.poll() is None, "it ended while the other process held the lock"
        assert "numba compiles" not in after, after
    finally:
        child.kill()
        child.wait()
        lock.close()
