"""Reading results is pandas work: the analysis modules load without torch (importing it took seconds of
every ``nntransfer report``)."""

import subprocess
import sys


def test_the_analysis_modules_import_without_torch():
    modules = ["nntransfer.analysis.results", "nntransfer.analysis.metrics", "nntransfer.analysis.report",
               "nntransfer.training_log"]
    code = f"import sys; import {', '.join(modules)}; print(sorted(m for m in ('torch', 'torchvision') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
