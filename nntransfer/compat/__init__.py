"""The config classes of the original sinzlab companion libraries, with their meaning, for their recipes.

``nntransfer.compat.orbit_transfer`` and ``nntransfer.compat.bias_transfer`` provide what the recipes of
sinzlab/orbit_transfer_recipes and sinzlab/nntransfer_recipes import, under the same module paths and names
(``from orbit_transfer.configs import X`` becomes ``from nntransfer.compat.orbit_transfer.configs import X``;
nothing else in a recipe changes), with the original defaults, mapped onto this library's data sets, models,
main-loop modules and mixins. Where an original meaning cannot be kept, the config refuses with one line
saying so: never a silent approximation.
"""
