"""DataJoint tables (importing any of these modules connects to the database).

* ``nnfabrik``: Fabrikant, Seed, Dataset, Model, Trainer and TrainedModelTransferRecipe in the schema
  ``dj.config["custom"]["nnfabrik.my_schema_name"]``.
* ``trained_model``: ``TrainedModel`` (one experiment per row) and its ``Checkpoint`` table.
* ``transfer``: ``TransferredTrainedModel`` (one transfer step per row) and ``TransferredCheckpoint``.
"""
