"""The ResNet-18 -> ViT experiment (the paper's recipe: sinzlab/orbit_transfer_recipes,
``_2021_09_24_aistats/mnist_2d_resnet_vit.py``): can a ResNet-18 teacher pass its (approximate) translation
invariance to a small Vision Transformer? Three seeds each:

``scratch``    the ViT student alone (``vit``: 7x7 patches, 6 blocks of 8 heads, width 64, MLP 128: the
               original's sizes);
``teacher``    ResNet-18 (step 0 of every other chain, trained once per seed);
``kd``, ``rdl``: teacher -> student with the teacher in the student's loop (RDL pairs the student's blocks 2, 4
               and 6 with the teacher's stages 1-3);
``orbit``      teacher -> learn the orbit (as ``chains.py``: 25 learned 5x5 circular convolutions of the image
               under which the teacher's logits are equivariant) -> student trained on the orbits.

Tested as the translation experiment (clean, MNIST-C's translate, every shift up to 4 pixels). Shrunk as
``chains.py`` (``MNIST5k``, the same epochs and learning rates, one setting per method); also: ResNet-18
with the ImageNet stem (7x7 stride 2 and a max pool: 28x28 digits reach layer 1 as 7x7 maps), 16 times
cheaper than the small-image stem, which is what lets it train on 2 CPU cores.
"""

from functools import partial

from nntransfer.configs import ClassificationModelConfig

from .chains import (
    DATA_DIR,
    DATASET_CLS,
    EPOCHS,
    ORBIT,
    ORBIT_EPOCHS,
    SEEDS,
    TEACHER_EPOCHS,
    build_chains,
    data,
    student_trainer,
)

TEACHER = ClassificationModelConfig(type="resnet18", options={"stem_kernel": 7, "stem_stride": 2, "stem_padding": 3,
                                                              "stem_pool": True}, comment="resnet18")
STUDENT = ClassificationModelConfig(type="vit", comment="vit")
TEACHER_LR = 1e-3
METHODS = ("kd", "rdl", "orbit")
#: the ViT's blocks 2, 4 and 6 (tokens) against ResNet-18's first three stages
RDL_PAIRS = {"core.encoder.layers.encoder_layer_1": "core.layer1", "core.encoder.layers.encoder_layer_3": "core.layer2",
             "core.encoder.layers.encoder_layer_5": "core.layer3"}


def build(seeds=SEEDS, epochs=EPOCHS, teacher_epochs=TEACHER_EPOCHS, orbit_epochs=ORBIT_EPOCHS, dataset_cls=DATASET_CLS,
          data_dir=DATA_DIR):
    """``{Description: TransferExperiment}`` of every method and seed (names prefixed ``resnet-vit``)."""
    return build_chains(data(dataset_cls, data_dir), seeds, epochs, teacher_epochs, orbit_epochs, teacher=TEACHER,
                        teacher_lr=TEACHER_LR, student=STUDENT, methods=METHODS, orbit=ORBIT,
                        trainer_of=partial(student_trainer, rdl_pairs=RDL_PAIRS), prefix="resnet-vit ")


transfer_experiments = build()
