"""Trainer config mixins that add main-loop modules (owned by the trainer issue)."""


class NoiseAugmentationMixin:
    pass


class RepresentationMatchingMixin:
    pass


class RepresentationMonitorMixin:
    pass
