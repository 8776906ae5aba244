"""Fingerprints of the user code a step runs, so that a stored step trained by other code is never reused silently.

A step's user code is every object it uses that is defined outside the installed nntransfer package and
outside the Python installation (standard library, site-packages): the dataset, model and trainer functions
its configs name (``fn``), the config classes, and what those functions resolve through the registries
(data sets, model types, main-loop modules, test transforms: :mod:`nntransfer.code_used` for nntransfer's
functions, a ``code_used(values)`` attribute for a user's). Each such object is fingerprinted by the
code of its module-level definition together with the module-level definitions it refers to by name
(helper functions, classes, constants), followed through imports into other user modules:

* the code is the definition's syntax tree without docstrings, so comments, docstrings and formatting do
  not count;
* only definitions a step reaches count, so a line of a recipe that changes no step's config or code (a new
  chain, a new helper nothing uses) leaves every fingerprint as it was.

A fingerprint is ``{module name: SHA-256 of the definitions of that module the step uses}`` plus one combined
hash. Code from the nntransfer package and installed packages is covered by their recorded versions.

Fingerprints are taken when a run starts (``nntransfer.provenance.RunProvenance``), from the files just
loaded: editing the code while the run trains does not change what its results record. Only the standard
library is imported here.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import functools
import hashlib
import importlib.util
import inspect
import json
import logging
import sys
import sysconfig
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Set, Tuple

from nntransfer.code_used import builtin_code_used
from nntransfer.configs.codec import make_hash
from nntransfer.registry import import_object

logger = logging.getLogger(__name__)

_PACKAGE_ROOT = Path(__file__).resolve().parent
_INSTALLED_ROOTS = tuple(
    {Path(path).resolve() for name in ("stdlib", "platstdlib", "purelib", "platlib") if (path := sysconfig.get_paths().get(name))}
)
#: the digest of a definition whose source cannot be read (a change to it cannot be seen)
UNREADABLE = "unreadable"
_warned_unreadable: Set[Tuple[str, str]] = set()


@dataclass(frozen=True)
class CodeFingerprint:
    """The user code of one step: ``files`` maps each user module the step uses to the SHA-256 of the
    definitions of it that the step reaches; ``digest`` combines them (the same for the same code)."""

    files: Mapping[str, str] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(dict(self.files), sort_keys=True).encode()).hexdigest()

    def record(self) -> Dict[str, Any]:
        """What a store keeps of it: ``code_hash`` and ``code_files``."""
        return {"code_hash": self.digest, "code_files": dict(sorted(self.files.items()))}

    def changed_files(self, stored: Mapping[str, str]) -> List[str]:
        """The modules whose code differs from ``stored`` (a step's recorded ``code_files``), added and
        removed ones included, sorted."""
        return sorted(name for name in set(self.files) | set(stored) if self.files.get(name) != stored.get(name))


def is_user_module(module_name: Optional[str]) -> bool:
    """Whether ``module_name`` is user code: loaded, and neither part of nntransfer nor of the Python
    installation (a module without a file, such as a notebook's ``__main__``, is user code)."""
    module = sys.modules.get(module_name or "")
    if module is None:
        return False
    file = getattr(module, "__file__", None)
    if not file:
        return module_name == "__main__"
    path = Path(file).resolve()
    return not any(path.is_relative_to(root) for root in (_PACKAGE_ROOT, *_INSTALLED_ROOTS))


# ---------------------------------------------------------------------- reading a module


@dataclass
class _ModuleIndex:
    """A module's top-level statements by the name they define, and its imports by the name they bind
    (name -> (module, attribute or None for a module))."""

    definitions: Dict[str, List[ast.stmt]]
    imports: Dict[str, Tuple[str, Optional[str]]]
    readable: bool


def _index(module: ModuleType) -> _ModuleIndex:
    file = getattr(module, "__file__", None)
    if file and file.endswith(".py"):
        try:
            stat = Path(file).stat()
            return _parse(file, stat.st_size, stat.st_mtime_ns, module.__name__, getattr(module, "__package__", None) or "")
        except (OSError, SyntaxError, ValueError):
            pass
    return _ModuleIndex({}, {}, readable=False)


@functools.lru_cache(maxsize=256)
def _parse(path: str, size: int, mtime_ns: int, module_name: str, package: str) -> _ModuleIndex:
    """The index of the module file ``path`` (cached per size and modification time)."""
    tree = ast.parse(Path(path).read_text(encoding="utf-8"), filename=path)
    definitions: Dict[str, List[ast.stmt]] = {}
    imports: Dict[str, Tuple[str, Optional[str]]] = {}

    def visit(statements: Iterable[ast.stmt], owner: Optional[ast.stmt]) -> None:
        for statement in statements:
            top = owner or statement  # a definition inside a top-level if/try counts with its whole statement
            if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                definitions.setdefault(statement.name, []).append(top)
            elif isinstance(statement, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
                for target in targets:
                    for node in ast.walk(target):
                        if isinstance(node, ast.Name):
                            definitions.setdefault(node.id, []).append(top)
            elif isinstance(statement, ast.Import):
                for alias in statement.names:
                    if alias.asname:
                        imports[alias.asname] = (alias.name, None)
                    else:
                        head = alias.name.split(".")[0]
                        imports[head] = (head, None)
            elif isinstance(statement, ast.ImportFrom):
                source = statement.module or ""
                if statement.level:
                    try:
                        source = importlib.util.resolve_name("." * statement.level + source, package)
                    except (ImportError, ValueError):
                        continue
                for alias in statement.names:
                    if alias.name != "*":
                        imports[alias.asname or alias.name] = (source, alias.name)
            elif isinstance(statement, (ast.If, ast.Try, ast.With)):
                for block in ("body", "orelse", "finalbody"):
                    visit(getattr(statement, block, []) or [], top)
                for handler in getattr(statement, "handlers", []):
                    visit(handler.body, top)

    visit(tree.body, None)
    return _ModuleIndex(definitions, imports, readable=True)


def _without_docstrings(node: ast.AST) -> ast.AST:
    node = copy.deepcopy(node)
    for inner in ast.walk(node):
        if isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)):
            body = inner.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                inner.body = body[1:] or [ast.Pass()]
    return node


def _code_digest(statements: Sequence[ast.AST]) -> str:
    digest = hashlib.sha256()
    for statement in statements:
        digest.update(ast.dump(_without_docstrings(statement), include_attributes=False).encode())
    return digest.hexdigest()


def _references(statements: Sequence[ast.AST]) -> Iterator[Tuple[str, ...]]:
    """The dotted names (``("np",)``, ``("helpers", "scale")``) the statements load from their module: a
    function's parameters and the names it assigns are its own, so a module-level ``model = ...`` is not
    what a function's local ``model`` refers to."""
    for statement in statements:
        yield from _free_names(statement, frozenset())


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


def _free_names(node: ast.AST, bound: frozenset) -> Iterator[Tuple[str, ...]]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        arguments = node.args
        outer = list(arguments.defaults) + [d for d in arguments.kw_defaults if d is not None]
        if not isinstance(node, ast.Lambda):  # evaluated where the function is defined
            outer += list(node.decorator_list) + ([node.returns] if node.returns else [])
            outer += [a.annotation for a in _arguments(arguments) if a.annotation is not None]
        for item in outer:
            yield from _free_names(item, bound)
        body = [node.body] if isinstance(node, ast.Lambda) else node.body
        local = bound | {a.arg for a in _arguments(arguments)} | _assigned(body)
        for item in body:
            yield from _free_names(item, local)
        return
    if isinstance(node, ast.ClassDef):
        for item in list(node.decorator_list) + list(node.bases) + [k.value for k in node.keywords]:
            yield from _free_names(item, bound)
        own = bound | _assigned(node.body)  # the class body's names; its methods do not see them
        for item in node.body:
            yield from _free_names(item, bound if isinstance(item, _SCOPES) else own)
        return
    parts: List[str] = []
    inner = node
    while isinstance(inner, ast.Attribute):
        parts.append(inner.attr)
        inner = inner.value
    if isinstance(inner, ast.Name):
        if isinstance(inner.ctx, ast.Load) and inner.id not in bound:
            yield (inner.id, *reversed(parts))
        return
    for child in ast.iter_child_nodes(inner):
        yield from _free_names(child, bound)


def _arguments(arguments: ast.arguments) -> List[ast.arg]:
    found = list(arguments.posonlyargs) + list(arguments.args) + list(arguments.kwonlyargs)
    return found + [a for a in (arguments.vararg, arguments.kwarg) if a is not None]


def _assigned(body: Sequence[ast.AST]) -> frozenset:
    """The names a block binds (assignments, loop and ``with`` targets, imports, nested definitions), not
    looking into nested functions and classes; names it declares ``global`` are not its own."""
    names, declared_global = set(), set()
    pending = list(body)
    while pending:
        node = pending.pop()
        if isinstance(node, _SCOPES):
            if not isinstance(node, ast.Lambda):
                names.add(node.name)
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, ast.Global):
            declared_global.update(node.names)
        pending.extend(ast.iter_child_nodes(node))
    return frozenset(names - declared_global)


# ---------------------------------------------------------------------- following definitions


class _Collector:
    """Walks from the objects a step uses to every user definition they reach; ``files()`` hashes them."""

    def __init__(self) -> None:
        self.digests: Dict[str, Dict[str, str]] = {}  # module -> name -> digest of its definition
        self.values: Dict[str, List[str]] = {}  # module -> registered values (e.g. a DatasetSpec's fields)

    def files(self) -> Dict[str, str]:
        found = {}
        for module in set(self.digests) | set(self.values):
            content = {"definitions": self.digests.get(module, {}), "values": sorted(self.values.get(module, []))}
            found[module] = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
        return found

    def add_object(self, obj: Any) -> None:
        obj = _unwrap(obj)
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            self._add_instance(obj)
            return
        module_name = getattr(obj, "__module__", None)
        qualname = getattr(obj, "__qualname__", None)
        if isinstance(module_name, str) and isinstance(qualname, str) and is_user_module(module_name):
            self.add_definition(module_name, qualname.split(".")[0], obj)

    def _add_instance(self, instance: Any) -> None:
        """A registered record such as a ``DatasetSpec``: its functions are followed, its other fields are
        data the step uses, counted with the module of its first user function (a record of nntransfer's
        own functions is nntransfer's)."""
        values, owner = [], None
        for item in dataclasses.fields(instance):
            value = getattr(instance, item.name)
            if callable(value):
                self.add_object(value)
                module_name = getattr(_unwrap(value), "__module__", None)
                if owner is None and is_user_module(module_name):
                    owner = module_name
                value = f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', type(value).__name__)}"
            values.append(f"{item.name}={value!r}")
        if owner is not None:
            self.values.setdefault(owner, []).append(f"{type(instance).__qualname__}({', '.join(values)})")

    def add_definition(self, module_name: str, name: str, obj: Any = None) -> None:
        if not is_user_module(module_name) or name in self.digests.get(module_name, {}):
            return
        module = sys.modules[module_name]
        index = _index(module)
        if name in index.imports and name not in index.definitions:
            self._follow(module_name, index, (name,))
            return
        statements = index.definitions.get(name)
        if statements is None:  # no file (a notebook), or made at run time: read the object itself
            obj = obj if obj is not None else vars(module).get(name)
            statements = _source_of(obj)
            if statements is None:
                if obj is not None and not isinstance(obj, ModuleType) and getattr(obj, "__module__", module_name) != module_name:
                    self.add_object(obj)  # bound here under another module's name
                    return
                self.digests.setdefault(module_name, {})[name] = _plain_value_digest(module_name, name, obj)
                return
        self.digests.setdefault(module_name, {})[name] = _code_digest(statements)
        for reference in _references(statements):
            if reference[0] != name:
                self._follow(module_name, index, reference)

    def _follow(self, module_name: str, index: _ModuleIndex, reference: Tuple[str, ...]) -> None:
        """Add the definition ``reference`` (a dotted name as used in ``module_name``) names, if it is
        user code."""
        head, rest = reference[0], list(reference[1:])
        if head in index.definitions:
            self.add_definition(module_name, head)
            return
        if head in index.imports:
            source, attribute = index.imports[head]
            target = source if attribute is None else f"{source}.{attribute}"
            if attribute is not None and target not in sys.modules:  # ``from module import name``
                self.add_definition(source, attribute)
                return
        else:  # bound at run time (or a builtin): what the module holds now
            value = vars(sys.modules[module_name]).get(head)
            if not isinstance(value, ModuleType):
                if value is not None and not isinstance(value, (int, float, str, bool, bytes)):
                    self.add_object(value)
                return
            target = value.__name__
        while rest:  # a module: follow the attribute chain into it
            submodule = f"{target}.{rest[0]}"
            if submodule in sys.modules:
                target = submodule
                rest.pop(0)
                continue
            self.add_definition(target, rest[0])
            return


def _unwrap(obj: Any) -> Any:
    for _ in range(10):  # partials of bound methods of wrapped functions, at most a few deep
        if isinstance(obj, functools.partial):
            inner = obj.func
        elif inspect.ismethod(obj):
            inner = obj.__func__
        else:
            inner = getattr(obj, "__wrapped__", None) if callable(obj) else None
        if inner is None or inner is obj:
            return obj
        obj = inner
    return obj


def _source_of(obj: Any) -> Optional[List[ast.stmt]]:
    if not (inspect.isfunction(obj) or inspect.isclass(obj)):
        return None
    try:
        return ast.parse(textwrap.dedent(inspect.getsource(obj))).body
    except (OSError, TypeError, SyntaxError):
        return None


def _plain_value_digest(module_name: str, name: str, value: Any) -> str:
    """The digest of a value without source: its ``repr`` for plain data, else :data:`UNREADABLE` (logged
    once: a change to it cannot be seen)."""
    if isinstance(value, (int, float, str, bool, bytes, type(None))) or (
        isinstance(value, (tuple, list, dict, frozenset, set)) and " at 0x" not in repr(value)
    ):
        return hashlib.sha256(repr(value).encode()).hexdigest()
    if (module_name, name) not in _warned_unreadable:
        _warned_unreadable.add((module_name, name))
        logger.warning("cannot read the source of %s.%s: a change to it cannot be detected", module_name, name)
    return UNREADABLE


# ---------------------------------------------------------------------- steps


def config_code(fn: Any, values: Mapping[str, Any]) -> List[Any]:
    """The function a config names and what it resolves through the registries for ``values``: for
    nntransfer's own functions what :mod:`nntransfer.code_used` finds without importing them (the functions
    themselves are nntransfer's, covered by its version); a user's function is imported and asked through
    its ``code_used(values)`` attribute, if it has one."""
    builtin = builtin_code_used(fn, values)
    if builtin is not None:
        return builtin
    function = import_object(fn, "function") if isinstance(fn, str) else fn
    used = [function]
    hook = getattr(function, "code_used", None)
    if hook is not None:
        try:
            used.extend(hook(values))
        except ValueError:  # an unknown name: the recipe's check reports it before anything runs
            pass
    return used


def fingerprint(objects: Iterable[Any]) -> CodeFingerprint:
    """The fingerprint of the user code of ``objects`` and every definition they reach."""
    collector = _Collector()
    for obj in objects:
        collector.add_object(obj)
    return CodeFingerprint(collector.files())


def step_fingerprint(functions: Iterable[Tuple[Any, Mapping[str, Any]]], config_classes: Iterable[Any] = ()) -> CodeFingerprint:
    """The fingerprint of one step: its config classes (classes or dotted paths; one that cannot be
    imported is left out) and, for each ``(function or dotted path, config values)``, the function and
    what it resolves through the registries."""
    return fingerprint(step_objects(functions, config_classes))


def step_objects(functions: Iterable[Tuple[Any, Mapping[str, Any]]], config_classes: Iterable[Any] = ()) -> List[Any]:
    """What :func:`step_fingerprint` fingerprints."""
    objects: List[Any] = []
    for config_class in config_classes:
        try:
            objects.append(import_object(config_class, "config class") if isinstance(config_class, str) else config_class)
        except ValueError:  # a class defined where it cannot be imported from (a function's body)
            pass
    for fn, values in functions:
        objects.extend(config_code(fn, values))
    return objects


def experiment_fingerprint(experiment: Any) -> CodeFingerprint:
    """The fingerprint of an :class:`~nntransfer.configs.Experiment`: its config classes, the functions they
    name and what those resolve through the registries (a trainer's original-form ``student_model`` too)."""
    return fingerprint(experiment_objects(experiment))


def experiment_objects(experiment: Any) -> List[Any]:
    """What :func:`experiment_fingerprint` fingerprints."""
    functions = [(config.fn, {**config.to_dict(), **config.runtime_options()}) for config in experiment.configs.values()]
    student = experiment.trainer.to_dict().get("student_model") or None
    if student:
        functions.append((student.get("fn") or experiment.model.fn, student))
    return step_objects(functions, [type(config) for config in experiment.configs.values()])


def spec_fingerprint(spec: Any, config_classes: Iterable[Any] = ()) -> CodeFingerprint:
    """The fingerprint of a :class:`~nntransfer.pipeline.step.StepSpec` (whose configs are plain dicts:
    ``config_classes`` names their classes where known)."""
    functions = [(getattr(spec, f"{role}_fn"), spec.config(role)) for role in ("dataset", "model", "trainer")]
    if spec.student_model:
        functions.append(spec.student())
    return step_fingerprint(functions, config_classes)


def chain_fingerprints(chains: Iterable[Any], keys: Optional[Sequence[Mapping[str, Any]]] = None) -> Dict[str, CodeFingerprint]:
    """Step id -> fingerprint of every step of ``chains`` (``TransferExperiment``\\ s), each distinct step read once.
    ``keys``: the steps' keys, chain by chain, if already computed."""
    found: Dict[str, CodeFingerprint] = {}
    by_experiment: Dict[Tuple[str, ...], CodeFingerprint] = {}
    by_code: Dict[Tuple[Any, ...], CodeFingerprint] = {}
    given = iter(keys) if keys is not None else None
    for chain in chains:
        for level in range(len(chain)):
            experiment = chain[level]
            marker = tuple(f"{type(c).__module__}.{type(c).__qualname__}:{make_hash(c.to_dict())}" for c in experiment.configs.values())
            if marker not in by_experiment:
                # steps that differ only in their settings run the same code: read it once per run
                objects = tuple(experiment_objects(experiment))
                try:
                    if objects not in by_code:
                        by_code[objects] = fingerprint(objects)
                    by_experiment[marker] = by_code[objects]
                except TypeError:  # an unhashable registry entry: read this step's code on its own
                    by_experiment[marker] = fingerprint(objects)
            found[make_hash(next(given) if given is not None else chain.step_key(level))] = by_experiment[marker]
    return found
