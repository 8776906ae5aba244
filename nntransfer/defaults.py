"""Constants every layer shares, defined once. Imports nothing."""

#: local work folder of ``nntransfer run`` / ``status`` / ``report`` when none is given
DEFAULT_WORKDIR = "./nntransfer_work"
#: task key of the single task of the built-in classification data sets
TASK_KEY = "img_classification"
#: schema of the tables when neither ``--schema`` nor DataJoint's config names one
DEFAULT_SCHEMA = "nntransfer"
#: name of the external store nnfabrik's checkpoint and model-storage tables attach to
STORE_NAME = "minio"
#: batches per loop (training, validation, each test set) of ``run --fast-dev-run`` without a number
FAST_DEV_RUN_BATCHES = 2
