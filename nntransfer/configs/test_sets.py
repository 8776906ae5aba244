"""Which data a split tests on, from a dataset config alone: the identity of a test set.

Two splits are the same test set when their dataset configs agree on every field that changes the test
data (training-only settings such as ``batch_size``, ``examples_per_class`` or augmentation do not
count) and on the split's own settings (``test_transforms`` entry, rotation angle, corruptions). The
pipeline uses it to evaluate a continual-learning step on the earlier tasks' test sets; the analysis to
put every evaluated split in its test set's column.
"""

import re
from typing import Any, Mapping, Optional, Tuple

from nntransfer.configs.codec import make_hash

#: dataset settings that change the training data or its loading but not the test sets
TRAINING_ONLY = ("batch_size", "valid_size", "shuffle", "train_subset", "data_repeats", "examples_per_class",
                 "augment_crop", "crop_padding", "augment_flip", "augment_rotation", "rotation_degrees", "download")
#: splits the image dataset config defines beside ``test`` (and its ``test_transforms``), with their settings
DERIVED_SPLITS = {"test_rotated": ("rotated_test_angle",),
                  "c_test": ("corrupted_data_dir", "corruptions", "corruption_severities", "stacked_severities")}
TEST_SET_DEFINITIONS = ("add_rotated_test", "add_corrupted_test", "test_transforms") + tuple(
    name for names in DERIVED_SPLITS.values() for name in names)
#: splits that are not test sets
NOT_TEST_SETS = ("train", "validation", "validation_noise")


def short_hash(value: Any) -> str:
    """The first 12 characters of ``make_hash(value)``: ids that people read."""
    return make_hash(value)[:12]


def split_identity(dataset: Mapping[str, Any], split: str) -> Optional[str]:
    """The identity of the data ``split`` tests on, from a dataset config's ``to_dict()``: its
    test-relevant fields and the settings of the split; None for a split the config does not define
    (a custom dataset function's) and for splits that are not test sets."""
    split = str(split)
    if split in NOT_TEST_SETS:
        return None
    base = {k: v for k, v in dataset.items() if k not in TRAINING_ONLY and k not in TEST_SET_DEFINITIONS}
    transforms = dataset.get("test_transforms") or {}
    if split == "test":
        extra: Any = None
    elif split in DERIVED_SPLITS:
        extra = {k: dataset.get(k) for k in DERIVED_SPLITS[split]}
    elif isinstance(transforms, Mapping) and split in transforms:
        extra = transforms[split]
    else:
        return None
    return short_hash({"data": base, "split": split, "settings": extra})


#: how a step names its evaluation of an earlier step's test split in ``output["final"]``: "step 0 test"
EARLIER_SPLIT = "step {step} {split}"
_EARLIER_SPLIT = re.compile(r"step (\d+) (.+)")


def earlier_split(step: int, split: str) -> str:
    """The name a later step records its evaluation of step ``step``'s ``split`` under."""
    return EARLIER_SPLIT.format(step=int(step), split=split)


def parse_earlier_split(name: str) -> Optional[Tuple[int, str]]:
    """``(step, split)`` of a name :func:`earlier_split` made, else None."""
    found = _EARLIER_SPLIT.fullmatch(str(name))
    return (int(found.group(1)), found.group(2)) if found else None
