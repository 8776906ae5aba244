"""DataJoint bookkeeping per populated job (reserve, build, store result and weights) for a trivial trainer:
nntransfer's TransferredTrainedModel vs nnfabrik's own TrainedModel, side by side in one run.

    python bench/bookkeeping.py [--jobs 60] [--repeats 3] [--per-call]

``--per-call`` populates each job with its own ``populate`` call (as a worker walking many chains does),
so the key-source query is paid per job too.

Goal: at most 40 ms per job. Prints ms/job for both and their ratio. Uses (and drops) a scratch schema.
"""

import argparse
import shutil
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from nntransfer.tables import database  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--per-call", action="store_true", help="one populate call per job")
    args = parser.parse_args()

    schema_name = f"nnt_bench_{uuid.uuid4().hex[:6]}"
    import logging

    logging.getLogger("datajoint").setLevel(logging.WARNING)
    from trivial_steps import TrivialDatasetConfig, TrivialModelConfig, TrivialTrainerConfig

    from nntransfer.configs import Experiment, TransferExperiment
    from nntransfer.tables import activate

    nnfabrik = activate(schema_name)  # the tables of the scratch schema
    TransferredTrainedModel = nnfabrik.TransferredTrainedModel
    nnfabrik_module = nnfabrik
    from nnfabrik.templates.trained_model import TrainedModelBase  # importable once the tables are active

    @nnfabrik.schema
    class NnfabrikTrainedModel(TrainedModelBase):
        nnfabrik = nnfabrik_module

    try:
        results = {"nntransfer TransferredTrainedModel": [], "nnfabrik TrainedModel": []}
        seed = 0
        for _ in range(args.repeats):
            chains = []
            for _ in range(args.jobs):
                seed += 1
                chains.append(TransferExperiment([Experiment(TrivialDatasetConfig(), TrivialModelConfig(), TrivialTrainerConfig(), seed=seed)]))
                TransferredTrainedModel.add_transfer_experiment(chains[-1])
            restrictions = [c.get_restrictions(0) for c in chains]
            keys = [c[0].get_key() for c in chains]
            for label, table, restriction in (
                ("nntransfer TransferredTrainedModel", TransferredTrainedModel, restrictions),
                ("nnfabrik TrainedModel", NnfabrikTrainedModel, keys),
            ):
                start = time.perf_counter()
                if args.per_call:
                    for one in restriction:
                        table.populate(one, reserve_jobs=True)
                else:
                    table.populate(restriction, reserve_jobs=True)
                elapsed = time.perf_counter() - start
                assert len(table & restriction) == args.jobs
                results[label].append(1000 * elapsed / args.jobs)
        ours = min(results["nntransfer TransferredTrainedModel"])
        theirs = min(results["nnfabrik TrainedModel"])
        for label, values in results.items():
            print(f"{label:38s} {min(values):6.1f} ms/job (best of {args.repeats}; all: {', '.join(f'{v:.1f}' for v in values)})")
        print(f"ratio nntransfer / nnfabrik: {ours / theirs:.2f}x; goal: nntransfer <= 40 ms/job -> {'met' if ours <= 40 else 'NOT met'}")
    finally:
        nnfabrik.schema.drop(force=True)
        shutil.rmtree(Path(database.default_store_location()) / schema_name, ignore_errors=True)


if __name__ == "__main__":
    main()
