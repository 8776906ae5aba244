"""Part of a recipe: the chains of some names and seeds (``--chain NAME``, ``--seed N``).

``run``, ``status`` and ``report`` (and ``nntransfer.run(chains=..., seeds=...)``) take the same filters, so
that a study can be run, followed and reported one chain or one seed at a time. A name or seed the recipe
does not have is a one-line ``RecipeError`` (with the closest name), never an empty selection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Optional

from nntransfer.registry import did_you_mean

if TYPE_CHECKING:  # loaded when a recipe is selected: the CLI's parser takes these options without loading configs
    from nntransfer.recipes.loading import Recipe


def select_chains(recipe: "Recipe", chains: Optional[Iterable[str]] = None, seeds: Optional[Iterable[int]] = None) -> "Recipe":
    """The chains of ``recipe`` named one of ``chains`` with a seed among ``seeds`` (None or empty: any), in
    the recipe's order; the recipe itself when neither is given."""
    from nntransfer.recipes.loading import Recipe, RecipeError

    names, wanted_seeds = list(chains or ()), [int(seed) for seed in seeds or ()]
    if not names and not wanted_seeds:
        return recipe
    described = list(recipe.transfer_experiments)
    known_names = list(dict.fromkeys(d.name for d in described))
    for name in names:
        if name not in known_names:
            raise RecipeError(f"recipe {recipe.name} has no chain {name!r} (chains: {', '.join(map(repr, known_names))})"
                              + did_you_mean(name, known_names))
    named = [d for d in described if not names or d.name in names]
    known_seeds = sorted({d.seed for d in named})
    for seed in wanted_seeds:
        if seed not in known_seeds:
            which = f"named {' or '.join(map(repr, names))}" if names else f"of recipe {recipe.name}"
            raise RecipeError(f"no chain {which} has seed {seed} (seeds: {', '.join(map(str, known_seeds))})")
    picked = {d: recipe.transfer_experiments[d] for d in named if not wanted_seeds or d.seed in wanted_seeds}
    return Recipe(recipe.name, recipe.path, picked)


def add_selection_arguments(parser) -> None:
    """``--chain NAME`` and ``--seed N`` (each repeatable) on an ``argparse`` parser (``args.chain``, ``args.seed``)."""
    parser.add_argument("--chain", action="append", metavar="NAME",
                        help="only the chains of this name (repeatable); the names 'status' prints")
    parser.add_argument("--seed", action="append", type=int, metavar="N", help="only the chains of this seed (repeatable)")
