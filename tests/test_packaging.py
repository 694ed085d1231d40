"""The package installs as one ``rnnaccel`` namespace, also from a (non-editable) wheel."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(out), str(ROOT)], check=True, capture_output=True)
    (whl,) = out.glob("rnnaccel-*.whl")
    return whl


def test_wheel_has_one_namespace(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.startswith("rnnaccel-")}
    assert tops == {"rnnaccel"}, f"wheel installs top-level packages {tops}; only 'rnnaccel' is allowed"
    for module in ("rnnaccel/__init__.py", "rnnaccel/golden/lstm.py", "rnnaccel/hdl/lstm.py",
                   "rnnaccel/sim/streams.py", "rnnaccel/scripts/__init__.py"):
        assert module in names
    # The built-in example models ship as package data.
    assert any(n.startswith("rnnaccel/golden/examples/") and n.endswith(".npz") for n in names)


def test_wheel_imports_without_the_source_tree(wheel, tmp_path):
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    code = ("import rnnaccel, rnnaccel.hdl, rnnaccel.golden, rnnaccel.sim, rnnaccel.scripts;"
            "assert rnnaccel.__file__.startswith(%r), rnnaccel.__file__;"
            "print(rnnaccel.hdl.Accelerator.__module__)" % str(tmp_path / "site"))
    r = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(tmp_path / 'site')!r}); "
                        + code.replace("import rnnaccel,", "import rnnaccel,", 1)],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "rnnaccel.hdl.top"
