"""The rotation experiment (the paper's recipe: sinzlab/orbit_transfer_recipes,
``_2021_09_24_aistats/mnist_2d_rotation.py``): can a rotation-invariant group CNN teacher pass its
invariance to an MLP student? Three seeds each:

``scratch``    the MLP student alone;
``teacher``    the group CNN (``gcnn``: P4, 8-32-64 maps, a rotation-invariant readout; step 0 of every
               other chain, trained once per seed);
``kd``, ``rdl``: teacher -> student with the teacher in the student's loop (as in ``chains.py``; RDL pairs the
               student's three hidden layers with the group CNN's three blocks, ``core.relu1``-``core.relu3``);
``orbit``      teacher -> learn the orbit (25 learned affine maps of the image, ``OrbitConfig(kind="affine")``,
               under which the teacher's logits are equivariant; drawn at random, as the original's) ->
               student trained on the orbits with an equivariance loss.

Students are tested on clean digits, on the original's rotated test set (each digit turned by a random
multiple of 90 degrees, ``test_rot90s``) and on any angle (``test_rotate_all``, uniform in -180..180 degrees).
Shrunk as the translation experiment (``chains.py``): ``MNIST5k``, the same students, epochs and learning
rates, one setting per method; the teacher's group CNN keeps the original's sizes. The original's orbit
also acts on the teacher's and student's hidden layers (``include_channels``); here it acts on the image
and the logits, as in the translation experiment.
"""

from nntransfer.configs import ClassificationModelConfig, ImageDatasetConfig, OrbitConfig

from .chains import DATA_DIR, DATASET_CLS, EPOCHS, ORBIT_EPOCHS, SEEDS, STUDENT, TEACHER_EPOCHS, build_chains

#: the original's "Rotation Test" (a random multiple of 90 degrees per digit) and any angle
TEST_SETS = {
    "test_rot90s": {"transform": "random_rotation", "angles": [0, 90, 180, 270]},
    "test_rotate_all": {"transform": "random_rotation", "low": -180, "high": 180},
}
TEACHER = ClassificationModelConfig(type="gcnn", comment="gcnn")
#: the group CNN's learning rate (seed 1: at 3e-3, the translation teacher's, it stays at chance for a whole epoch;
#: at 1e-3 91.5% validation accuracy after 3 epochs)
TEACHER_LR = 1e-3
#: the original's group sizes were 4, 8 and 25 (25 did best); matrices drawn at random, kept apart
ORBIT = OrbitConfig(kind="affine", input_dims=2, group_size=25, init="random", layers={"output": None}, comment="affine orbit")
METHODS = ("kd", "rdl", "orbit")


def data(dataset_cls=DATASET_CLS, data_dir=DATA_DIR):
    return ImageDatasetConfig(dataset_cls=dataset_cls, data_dir=data_dir, input_size=28, batch_size=64, valid_size=0.1,
                              test_transforms={name: dict(entry) for name, entry in TEST_SETS.items()})


def build(seeds=SEEDS, epochs=EPOCHS, teacher_epochs=TEACHER_EPOCHS, orbit_epochs=ORBIT_EPOCHS, dataset_cls=DATASET_CLS,
          data_dir=DATA_DIR):
    """``{Description: TransferExperiment}`` of every method and seed (names prefixed ``rotation``)."""
    return build_chains(data(dataset_cls, data_dir), seeds, epochs, teacher_epochs, orbit_epochs, teacher=TEACHER,
                        teacher_lr=TEACHER_LR, student=STUDENT, methods=METHODS, orbit=ORBIT,
                        orbit_learning={"orbit_identity_between": "elements"}, prefix="rotation ")


transfer_experiments = build()
