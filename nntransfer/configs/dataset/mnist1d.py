"""`MNIST1DConfig`: MNIST-1D with the shift protocol of Nix et al., AISTATS 2022."""

from nntransfer.configs.dataset.image import ImageDatasetConfig

#: the named test sets of the protocol: circular shifts drawn once per example (inclusive ranges)
MNIST1D_SHIFT_TESTS = {
    "test_seen": {"transform": "circular_shift", "low": 0, "high": 29},
    "test_unseen": {"transform": "circular_shift", "low": 30, "high": 39},
    "test_all": {"transform": "circular_shift", "low": 0, "high": 39},
}


class MNIST1DConfig(ImageDatasetConfig):
    """MNIST-1D (``dataset_cls="MNIST1D"``, generated offline by the ``mnist1d`` package): signals of
    shape ``(1, 40)``, 4,000 training examples (``valid_size=0.1`` of them for validation) and 1,000 test
    examples. The data is generated without translation; every training and validation example is
    circularly shifted by an amount drawn once per example from 0-29 (``dataset_kwargs["train_shift"]``).
    Test splits: "test" (unshifted), "test_seen" (0-29), "test_unseen" (30-39), "test_all" (0-39).
    Use a model type that takes ``(C, L)`` inputs, e.g. ``conv1d`` or ``mlp``.
    """

    def __init__(self, **kwargs):
        self.set_defaults(
            dataset_cls="MNIST1D",
            batch_size=100,
            valid_size=0.1,
            apply_normalization=False,  # mnist1d standardises the data
            test_transforms={name: dict(entry) for name, entry in MNIST1D_SHIFT_TESTS.items()},
        )
        super().__init__(**kwargs)
