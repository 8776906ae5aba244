"""Start-up cost of the command line, side by side in one run.

Times, interleaved over several rounds, in fresh processes:

    torch       python -c "import torch"                          (the reference)
    configs     python -c "import nntransfer.configs"
    help        nntransfer --help
    status      nntransfer status <embedded recipe> --workdir <a finished local run>
    status-dj   nntransfer status <embedded recipe> --store datajoint:<a finished run>  (with --schema)
    datajoint   python -c "import datajoint"                      (DataJoint as it imports itself)
    dj-tables   python -c "import nntransfer.tables._datajoint"   (DataJoint as the tables import it: its
                                                                  diagrams', S3's and deepdiff's libraries
                                                                  loaded on first use)

and prints the median of each and its ratio to ``import torch``. Targets (issue "One step pipeline, one
result store"): help and status <= 0.3x torch, configs <= 0.3 s. It also reports whether a local
``status`` and a local ``run`` of an already finished recipe imported DataJoint (they must not).

    python bench/startup.py [--rounds 7] [--schema NAME]

``--schema``: also time ``status`` on the tables, after running the recipe into that schema (created if
missing, left for the next run; drop it with ``DROP DATABASE``).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time

RECIPE = "nntransfer.recipes.digits_transfer"
PROBE = "import sys, runpy; sys.argv = {argv!r}; " "exec(\"try:\\n runpy.run_module('nntransfer', run_name='__main__')\\nexcept SystemExit: pass\"); " "print('DATAJOINT' if 'datajoint' in sys.modules else 'NO-DATAJOINT', file=sys.stderr)"


def timed(command) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def imports_datajoint(argv) -> bool:
    done = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv)], capture_output=True, text=True, check=True)
    return "DATAJOINT" in done.stderr.split()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--schema", help="also time status on the tables of this schema (the recipe is run into it first)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        subprocess.run([sys.executable, "-m", "nntransfer", "run", RECIPE, "--workdir", workdir, "--quiet"], check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        commands = {
            "torch": [sys.executable, "-c", "import torch"],
            "configs": [sys.executable, "-c", "import nntransfer.configs"],
            "help": [sys.executable, "-m", "nntransfer", "--help"],
            "status": [sys.executable, "-m", "nntransfer", "status", RECIPE, "--workdir", workdir],
        }
        if args.schema:
            store = f"datajoint:{args.schema}"
            subprocess.run([sys.executable, "-m", "nntransfer", "run", RECIPE, "--store", store, "--quiet"], check=True,
                           stdout=subprocess.DEVNULL)  # fmt: skip
            commands["status-dj"] = [sys.executable, "-m", "nntransfer", "status", RECIPE, "--store", store]
            commands["datajoint"] = [sys.executable, "-c", "import datajoint"]
            commands["dj-tables"] = [sys.executable, "-c", "import nntransfer.tables._datajoint"]
        times = {name: [] for name in commands}
        for round_ in range(args.rounds):
            names = list(commands)
            names = names[round_ % len(names):] + names[: round_ % len(names)]  # rotate the order
            for name in names:
                times[name].append(timed(commands[name]))
        status_dj = imports_datajoint(["nntransfer", "status", RECIPE, "--workdir", workdir])
        run_dj = imports_datajoint(["nntransfer", "run", RECIPE, "--workdir", workdir, "--quiet"])
    reference = statistics.median(times["torch"])
    print(f"{'command':<10} {'median':>8} {'min':>8} {'x torch':>8}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<10} {median:8.3f} {min(values):8.3f} {median / reference:8.2f}")
    print(f"local status imports DataJoint: {status_dj}; local run (all done) imports DataJoint: {run_dj}")


if __name__ == "__main__":
    main()
