"""Finding a recipe and collecting its experiments.

A recipe is a package folder whose modules define ``transfer_experiments``
(``{Description(name, seed): TransferExperiment}``) or, instead, ``experiments`` (a list of
:class:`Experiment`, each run as a one-step chain). A module that defines both runs its
``transfer_experiments`` only: as in the original nntransfer's runner, its ``experiments`` is a leftover (the
list the module built its chains from) and is not read. A recipe may also be a single ``.py`` file or a
dotted module name.

A ``Description`` names exactly one chain, with the seed its steps train with: a ``Description`` whose seed is
not every step's, or that two modules of a folder define for different chains, is a ``RecipeError`` (one
line, before anything runs), never a chain recorded under another seed or silently replaced.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any, Callable, Dict, List, Optional

from nntransfer.configs.base import Description
from nntransfer.configs.experiment import Experiment
from nntransfer.configs.transfer_experiment import TransferExperiment
from nntransfer.registry import closest_name

_PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # nntransfer's own files, skipped when naming a line


class RecipeError(ValueError):
    """A recipe cannot be found or does not define what the runner needs."""


@dataclass
class Recipe:
    """The experiments of a recipe, in definition order."""

    name: str
    path: Optional[str]
    transfer_experiments: Dict[Description, TransferExperiment] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.transfer_experiments)


def _import_file(path: Path) -> ModuleType:
    module_name = f"_nntransfer_recipe_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def _import_named_module(recipe: str) -> ModuleType:
    try:
        return importlib.import_module(recipe)
    except ModuleNotFoundError as err:
        if err.name and recipe.startswith(err.name):
            raise RecipeError(
                f"recipe {recipe!r} not found: give a recipe folder, a .py file or an importable module" + _module_hint(recipe)
            ) from None
        raise


def _import_package(folder: Path) -> ModuleType:
    parent = str(folder.parent.resolve())
    if parent not in sys.path:
        sys.path.insert(0, parent)
    return importlib.import_module(folder.name)


def _collect(module: ModuleType, label: str) -> Dict[Description, TransferExperiment]:
    found: Dict[Description, TransferExperiment] = {}
    transfer = getattr(module, "transfer_experiments", None)
    plain = getattr(module, "experiments", None)
    if transfer is None and plain is None:
        raise RecipeError(f"recipe module {label} defines no 'transfer_experiments' (nor 'experiments')")
    if transfer is not None:
        if not isinstance(transfer, dict):
            raise RecipeError(f"{label}.transfer_experiments must be a dict {{Description(name, seed): TransferExperiment}}")
        for description, chain in transfer.items():
            if not isinstance(description, tuple) or len(description) != 2:
                raise RecipeError(f"{label}.transfer_experiments key {description!r} is not a Description(name, seed)")
            if isinstance(chain, Experiment):
                chain = TransferExperiment([chain])
            if not isinstance(chain, TransferExperiment):
                raise RecipeError(f"{label}.transfer_experiments[{description!r}] is a {type(chain).__name__}, not a TransferExperiment")
            description = Description(*description)
            try:
                chain.check_seed(description.seed)
            except ValueError as err:
                raise RecipeError(f"{label}.transfer_experiments[{description!r}]: {err}") from None
            found[description] = chain
        return found  # a leftover ``experiments`` list is not read (module docstring)
    for index, experiment in enumerate(plain):
        if not isinstance(experiment, Experiment):
            raise RecipeError(f"{label}.experiments[{index}] is a {type(experiment).__name__}, not an Experiment")
        name = experiment.comment or f"{label}.experiments[{index}]"
        try:
            chain = TransferExperiment([experiment])
        except ValueError as err:  # it needs a previous step (data_transfer, teacher, student_model)
            raise RecipeError(f"{label}.experiments[{index}] cannot run alone: {err}") from None
        description = Description(name, experiment.seed)
        if description in found and found[description] != chain:
            raise RecipeError(f"{label}.experiments[{index}] and an earlier experiment are both named {name!r} with seed "
                              f"{experiment.seed!r}, but differ; give them different comments")
        found[description] = chain
    return found


def _merge(collected: Dict[Description, TransferExperiment], found: Dict[Description, TransferExperiment],
           origin: Dict[Description, str], label: str) -> None:
    """Add the chains of the module ``label`` to those of the modules before it; a ``Description`` that an
    earlier module names for another chain is a ``RecipeError`` (one would silently replace the other)."""
    for description, chain in found.items():
        if description in collected and collected[description] != chain:
            raise RecipeError(f"{description!r} is defined by both {origin[description]} and {label} for different "
                              "chains; only one could run under that name and seed: rename one of them")
        collected[description] = chain
        origin.setdefault(description, label)


def as_recipe(experiments: Any, experiment: Optional[str] = None, name: str = "experiments") -> Recipe:
    """A :class:`Recipe` from whatever a notebook holds: a ``Recipe``; a recipe folder, ``.py`` file or
    module name; a dict ``{Description(name, seed): TransferExperiment}``; a ``TransferExperiment`` or an
    ``Experiment``; or a list of those."""
    if isinstance(experiments, (str, Path)):
        return load_recipe(str(experiments), experiment)
    if experiment is not None:
        raise RecipeError("experiment picks a module of a recipe folder; pass the folder, not a loaded Recipe")
    if isinstance(experiments, Recipe):
        return experiments
    if isinstance(experiments, dict):
        return Recipe(name, None, _collect(SimpleNamespace(transfer_experiments=experiments), name))
    items = experiments if isinstance(experiments, (list, tuple)) else [experiments]
    chains: Dict[Description, TransferExperiment] = {}
    for index, item in enumerate(items):
        if isinstance(item, Experiment):
            item = TransferExperiment([item])
        if not isinstance(item, TransferExperiment):
            raise RecipeError(f"cannot run a {type(item).__name__}; give Experiments, TransferExperiments or a recipe")
        label = item[-1].comment or f"{name}[{index}]"
        description = Description(label, item[0].seed)
        if description in chains:
            description = Description(f"{label} [{index}]", item[0].seed)
        chains[description] = item
    return Recipe(name, None, chains)


def _module_hint(recipe: str) -> str:
    """For a folder path that is not there (e.g. run from another directory): the module of that name."""
    dotted = recipe.strip("/").removesuffix(".py").replace("/", ".")
    if dotted == recipe:
        return ""
    try:
        found = importlib.util.find_spec(dotted) is not None
    except (ImportError, ValueError):
        found = False
    return f"; the module {dotted!r} exists: nntransfer run {dotted}" if found else ""


def _where_it_raised(err: BaseException) -> str:
    """``file.py, line N`` of the deepest frame outside the import machinery and nntransfer itself
    (the recipe's own line), else of the deepest frame."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if not f.filename.startswith("<frozen")]
    if isinstance(err, SyntaxError) and err.filename:
        return f"{err.filename}, line {err.lineno}"
    own = [f for f in frames if not Path(f.filename).resolve().is_relative_to(_PACKAGE_ROOT)]
    frame = (own or frames or [None])[-1]
    return f"{frame.filename}, line {frame.lineno}" if frame else "unknown place"


def _import_recipe_module(load: Callable[[], ModuleType], label: str) -> ModuleType:
    """Run ``load`` (which executes a recipe module); anything the module raises becomes one line that
    names the exception, the file and the line."""
    try:
        return load()
    except RecipeError:
        raise
    except Exception as err:  # the recipe's own code raised: NameError, ValueError from a config, ...
        text = err.msg if isinstance(err, SyntaxError) else str(err)
        message = text.splitlines()[0] if text else ""
        raise RecipeError(
            f"recipe {label} failed to load: {type(err).__name__}: {message} ({_where_it_raised(err)})"
        ) from None


def import_python(reference: str, what: str = "module") -> ModuleType:
    """A ``.py`` file or a dotted module beside a recipe (a search space, say), imported with a recipe's
    one-line errors: a missing file or module, or what its code raises (file and line)."""
    path = Path(reference)
    if path.suffix == ".py":
        if not path.exists():
            raise RecipeError(f"{what} file {reference} does not exist")
        return _import_recipe_module(lambda: _import_file(path), reference)
    try:
        return _import_recipe_module(lambda: importlib.import_module(reference), reference)
    except ModuleNotFoundError as err:
        raise RecipeError(f"{what} {reference!r} not found: give a .py file or an importable module ({err})") from None


def _submodules(package: ModuleType) -> List[str]:
    return [info.name for info in pkgutil.iter_modules(package.__path__) if not info.name.startswith("_")]


def load_recipe(recipe: str, experiment: Optional[str] = None) -> Recipe:
    """Load ``recipe`` (folder, ``.py`` file or dotted module); ``experiment`` picks one module of a folder."""
    path = Path(recipe)
    if path.is_dir():
        if not (path / "__init__.py").exists():
            raise RecipeError(f"recipe folder {recipe} is not a package: add an __init__.py")
        package = _import_recipe_module(lambda: _import_package(path), recipe)
        location = str(path.resolve())
    elif path.suffix == ".py":
        if not path.exists():
            raise RecipeError(f"recipe file {recipe} does not exist")
        package = _import_recipe_module(lambda: _import_file(path), recipe)
        location = str(path.resolve())
    else:
        package = _import_recipe_module(lambda: _import_named_module(recipe), recipe)
        location = getattr(package, "__file__", None)

    label = getattr(package, "__name__", recipe)
    if experiment is not None:
        if not hasattr(package, "__path__"):
            raise RecipeError(f"--experiment needs a recipe folder; {recipe} is a single module")
        names = _submodules(package)
        if experiment not in names:
            hint = closest_name(experiment, names)
            hint_text = f"; did you mean {hint!r}?" if hint else ""
            raise RecipeError(f"recipe {label} has no experiment {experiment!r} (available: {', '.join(names) or 'none'}){hint_text}")
        module = _import_recipe_module(lambda: importlib.import_module(f"{package.__name__}.{experiment}"), f"{label}.{experiment}")
        return Recipe(f"{label}.{experiment}", getattr(module, "__file__", location), _collect(module, module.__name__))

    if hasattr(package, "transfer_experiments") or hasattr(package, "experiments") or not hasattr(package, "__path__"):
        return Recipe(label, location, _collect(package, label))
    collected: Dict[Description, TransferExperiment] = {}
    origin: Dict[Description, str] = {}
    for name in _submodules(package):
        module = _import_recipe_module(lambda: importlib.import_module(f"{package.__name__}.{name}"), f"{label}.{name}")
        if hasattr(module, "transfer_experiments") or hasattr(module, "experiments"):
            _merge(collected, _collect(module, module.__name__), origin, module.__name__)
    if not collected:
        raise RecipeError(f"recipe folder {label} has no module defining 'transfer_experiments'")
    return Recipe(label, location, collected)
