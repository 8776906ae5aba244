"""DataJoint as the tables import it (``nntransfer.tables._datajoint``): without loading matplotlib, minio
or deepdiff, yet with DataJoint's diagrams, S3 client and ``make`` checks reaching the real modules when
used, and every other import of those modules getting the real ones. Each case runs in a new process, as
a command would."""

import subprocess
import sys
import textwrap

import pytest


def in_new_process(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_tables_load_datajoint_without_its_plotting_s3_and_deepdiff_libraries():
    out = in_new_process("""
        import sys
        import nntransfer.tables.database  # noqa: F401
        print("datajoint" in sys.modules, sorted(name for name in ("matplotlib", "matplotlib.pyplot", "minio", "deepdiff") if name in sys.modules))
    """)
    assert out.split("\n")[0] == "True []"


def test_datajoints_deferred_libraries_are_the_real_ones_when_used():
    out = in_new_process("""
        import sys
        from nntransfer.tables._datajoint import dj
        import datajoint.autopopulate, datajoint.diagram, datajoint.s3
        assert datajoint.diagram.plot_active  # DataJoint still draws diagrams: matplotlib is installed
        figure = datajoint.diagram.plt.figure  # first use: pyplot loads
        import matplotlib.pyplot
        assert figure is matplotlib.pyplot.figure and sys.modules["matplotlib.pyplot"] is matplotlib.pyplot
        assert type(matplotlib.pyplot).__name__ == "module" and matplotlib.pyplot.__file__.endswith("pyplot.py")
        import minio, minio.error
        assert datajoint.s3.minio.Minio is minio.Minio and datajoint.s3.minio.error.S3Error is minio.error.S3Error
        import deepdiff
        assert datajoint.autopopulate.deepdiff.DeepHash is deepdiff.DeepHash
        print(deepdiff.DeepHash({"a": 1})[{"a": 1}] == datajoint.autopopulate.deepdiff.DeepHash({"a": 1})[{"a": 1}])
    """)
    assert out.strip() == "True"


def test_modules_imported_after_datajoint_are_the_real_ones_everywhere():
    out = in_new_process("""
        import sys
        import nntransfer.tables.database  # noqa: F401
        import matplotlib
        import matplotlib.pyplot as plt
        import minio
        print(type(sys.modules["matplotlib"]).__name__, type(plt).__name__, type(minio).__name__, hasattr(matplotlib, "__path__"))
    """)
    assert out.strip() == "module module module True"


def test_a_process_that_imported_datajoint_first_keeps_it_as_it_is():
    out = in_new_process("""
        import sys
        import datajoint
        import matplotlib.pyplot
        from nntransfer.tables._datajoint import dj
        print(dj is datajoint, datajoint.diagram.plt is matplotlib.pyplot)
    """)
    assert out.strip() == "True True"


@pytest.mark.parametrize("missing", ["matplotlib", "minio"])
def test_a_library_that_is_not_installed_stays_missing_for_datajoint(missing):
    # a library the environment lacks is not stood in for: DataJoint sees what it would see without us
    out = in_new_process(f"""
        import sys
        sys.modules[{missing!r}] = None  # as if not installed: its import raises ImportError
        try:
            from nntransfer.tables._datajoint import dj
        except ImportError as error:
            print("ImportError", error.name)
        else:
            print("imported", dj.diagram.plot_active)
    """)
    # DataJoint draws no diagrams without matplotlib and cannot load without minio, as without nntransfer
    assert out.strip() == {"matplotlib": "imported False", "minio": "ImportError minio"}[missing]
