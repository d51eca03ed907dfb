"""What a playbook run uses, read from the playbooks and roles themselves.

The playbooks it imports, and for a host's inventory variables the roles it runs on that
host, with every role those import, include or depend on. A node's fingerprint
(ecohash.rollout.fingerprint) hashes exactly these files: deriving them here, instead of
listing them by hand, is what keeps a role that base imports (apt_packages) from being
left out of every node's fingerprint.

A role a play gives under `when` counts for a host when the condition holds for the
host's inventory variables and the play's vars, evaluated with Jinja2 as Ansible would.
A condition that needs what only the run knows (facts, registered results, a filter
Ansible has and plain Jinja2 has not) cannot be decided before the run, so its role
counts: a role too many only redoes a node, a role too few would leave one behind. For
the same reason every role a role imports, includes or depends on counts, whatever the
condition on it, and a role named by a template could be any role.

ROOT is also the collection galaxy.yml names (ecohash.site): its roles are named by FQCN,
ecohash.site.base for roles/base, and are read from ROOT/roles either way.
"""

from __future__ import annotations

import configparser
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

import yaml

from ecohash.errors import EcohashError

# Task keywords, by the last part of their name: ansible.builtin.import_role, import_role...
ROLE_ACTIONS = frozenset({"import_role", "include_role"})
TASKS_ACTIONS = frozenset({"import_tasks", "include_tasks"})
TASK_LISTS = ("pre_tasks", "tasks", "post_tasks", "handlers")
BLOCK_LISTS = ("block", "rescue", "always")
# Where a role keeps task lists; its other files (defaults, templates...) are only hashed.
ROLE_TASK_DIRS = ("tasks", "handlers")
ROLE_META_FILES = ("meta/main.yml", "meta/main.yaml")

try:
    _Loader: type[yaml.CSafeLoader | yaml.SafeLoader] = yaml.CSafeLoader
except AttributeError:  # PyYAML without libyaml
    _Loader = yaml.SafeLoader

_MISSING = object()


class _Undecidable(Exception):
    """A condition that the inventory alone cannot decide."""


@dataclass(frozen=True)
class _RoleUse:
    """A role a play runs, and every `when` that must hold for it to run."""

    role: str | None  # None: named by a template
    conditions: tuple[Any, ...]
    play_vars: Mapping[str, Any] = field(compare=False)


class PlaybookContent:
    """A playbook (under ROOT/playbooks) and what it runs, read once."""

    def __init__(self, root: Path, playbook: str):
        self.root = root
        self.roles_dir = root / "roles"
        self._collection_prefix = _collection_prefix(root)
        # The playbook, those it imports and the task files they import, relative to root.
        self.files: list[str] = []
        self._uses: list[_RoleUse] = []
        self._read_playbook(root / "playbooks" / playbook, (), {})
        self._role_uses: dict[str, set[str | None]] = {}
        self._by_key: dict[Any, frozenset[str]] = {}
        self._evaluator: _Conditions | None = None

    def roles_for(self, variables: Mapping[str, Any]) -> frozenset[str]:
        """The roles a run gives a host with these inventory variables, imports and dependencies included."""
        if self._evaluator is None:
            self._evaluator = _Conditions(self._uses)
        # Hosts that agree on every variable the conditions read get the same roles.
        names = self._evaluator.names
        key: Any = tuple(variables.get(name, _MISSING) for name in names)
        try:
            return self._by_key[key]
        except KeyError:
            pass
        except TypeError:  # a list or dict among the values
            key = tuple(json.dumps(variables.get(name), sort_keys=True, default=repr) for name in names)
            if key in self._by_key:
                return self._by_key[key]
        evaluator = self._evaluator
        chosen = {use.role for use in self._uses if evaluator.holds(use, variables)}
        self._by_key[key] = roles = self.closure(chosen)
        return roles

    def closure(self, roles: set[str | None]) -> frozenset[str]:
        """These roles and every role they import, include or depend on, transitively."""
        found: set[str] = set()
        pending = list(roles)
        while pending:
            role = pending.pop()
            if role is None:
                return frozenset(p.name for p in self.roles_dir.iterdir() if p.is_dir())
            if role in found:
                continue
            found.add(role)
            pending.extend(self._uses_of_role(role))
        return frozenset(found)

    def _uses_of_role(self, role: str) -> set[str | None]:
        if role not in self._role_uses:
            directory = self.roles_dir / role
            if not directory.is_dir():
                # A role outside roles/ (another collection's, or this one's FQCN without
                # galaxy.yml) could not be hashed: a fingerprint without it would miss its edits.
                raise EcohashError(f"{self.root}: playbooks run the role {role}, "
                                   f"which is not in {self.roles_dir}")
            uses: set[str | None] = set()
            for name in ROLE_META_FILES:
                meta = _load(directory / name) if (directory / name).is_file() else None
                dependencies = meta.get("dependencies") if isinstance(meta, dict) else None
                uses.update(self._role_name(dependency) for dependency in dependencies or [])
            # Every task file, not only those main.yml reaches: all of them are hashed anyway.
            for task_dir in ROLE_TASK_DIRS:
                for path in sorted((directory / task_dir).rglob("*.y*ml")):
                    uses.update(use.role for use in self._task_uses(_load(path), path, (), {}))
            self._role_uses[role] = uses
        return self._role_uses[role]

    def _read_playbook(self, path: Path, conditions: tuple[Any, ...], variables: Mapping[str, Any]) -> None:
        relative = self._relative(path)
        if relative in self.files:
            return
        self.files.append(relative)
        for entry in _entries(_load(path)):
            imported = _action(entry, frozenset({"import_playbook"}))
            if imported is not None:
                self._read_playbook(self._literal_path(path, imported), conditions + _when(entry),
                                    {**variables, **(entry.get("vars") or {})})
                continue
            play_vars = {**variables, **(entry.get("vars") or {})}
            for role in entry.get("roles") or []:
                self._uses.append(_RoleUse(self._role_name(role), conditions + _when(role), play_vars))
            for name in TASK_LISTS:
                self._uses.extend(self._task_uses(entry.get(name), path, conditions, play_vars))

    def _task_uses(self, tasks: Any, path: Path, conditions: tuple[Any, ...],
                   play_vars: Mapping[str, Any]) -> Iterator[_RoleUse]:
        """The roles a task list imports or includes, with the conditions on the way there."""
        for task in _entries(tasks):
            when = conditions + _when(task)
            for name in BLOCK_LISTS:
                yield from self._task_uses(task.get(name), path, when, play_vars)
            role = _action(task, ROLE_ACTIONS)
            if role is not None:
                yield _RoleUse(self._role_name(role), when, play_vars)
            included = _action(task, TASKS_ACTIONS)
            if included is not None and self._is_playbook(path):
                # A role's own task files are all read; a playbook's are followed from it.
                task_file = self._literal_path(path, included)
                if self._relative(task_file) not in self.files:
                    self.files.append(self._relative(task_file))
                yield from self._task_uses(_load(task_file), task_file, when, play_vars)

    def _role_name(self, entry: Any) -> str | None:
        """The role's directory name under roles/: its FQCN in this collection loses the prefix."""
        name = _role_name(entry)
        if name is not None and self._collection_prefix and name.startswith(self._collection_prefix):
            return name[len(self._collection_prefix):]
        return name

    def _is_playbook(self, path: Path) -> bool:
        return self.roles_dir not in path.parents

    def _relative(self, path: Path) -> str:
        return Path(os.path.normpath(path)).relative_to(self.root).as_posix()

    @staticmethod
    def _literal_path(importer: Path, value: Any) -> Path:
        name = value.get("file") if isinstance(value, dict) else value
        if not isinstance(name, str) or "{" in name:
            raise EcohashError(f"{importer}: imports {name!r}: only a literal file name can be followed "
                               "to fingerprint what a run uses")
        return importer.parent / name


def _collection_prefix(root: Path) -> str | None:
    """"namespace.name." of the collection ROOT is (galaxy.yml), None where it is none."""
    path = root / "galaxy.yml"
    if not path.is_file():
        return None
    galaxy = _load(path)
    if not isinstance(galaxy, dict) or not galaxy.get("namespace") or not galaxy.get("name"):
        raise EcohashError(f"{path}: needs a namespace and a name")
    return f"{galaxy['namespace']}.{galaxy['name']}."


def config_files(root: Path) -> list[str]:
    """ansible.cfg, the plugin directories it names inside ROOT and, where ROOT is a collection,
    its plugins/ (the modules and inventory plugin it reaches by FQCN), relative to ROOT."""
    path = root / "ansible.cfg"
    if not path.is_file():
        return []
    config = configparser.ConfigParser(interpolation=None)
    try:
        config.read(path)
    except configparser.Error as error:
        raise EcohashError(f"{path}: {error}") from None
    files = ["ansible.cfg"]
    defaults = config["defaults"] if config.has_section("defaults") else {}
    for key, value in sorted(defaults.items()):
        if not key.endswith("_plugins"):
            continue
        for entry in value.split(os.pathsep):
            directory = Path(os.path.normpath(root / entry.strip()))
            if entry.strip() and root in directory.parents:
                files.append(directory.relative_to(root).as_posix())
    if _collection_prefix(root) and (root / "plugins").is_dir():
        files = [name for name in files if not name.startswith("plugins/")] + ["plugins"]
    return files


class _Conditions:
    """Evaluates `when` conditions against inventory variables, as far as they decide them."""

    def __init__(self, uses: list[_RoleUse]):
        from jinja2 import StrictUndefined
        from jinja2.nativetypes import NativeEnvironment

        self.environment = NativeEnvironment(undefined=StrictUndefined)
        self.environment.filters["bool"] = ansible_bool
        self._expressions: dict[str, tuple[Any, frozenset[str]]] = {}
        self._templates: dict[str, tuple[Any, frozenset[str]]] = {}
        self.names = self._names_read(uses)

    def holds(self, use: _RoleUse, variables: Mapping[str, Any]) -> bool:
        from jinja2 import TemplateError, Undefined

        for condition in use.conditions:
            try:
                expression, names = self._expression(condition)
                value = expression(**{name: self._value(name, use.play_vars, variables, frozenset())
                                      for name in names if name in use.play_vars or name in variables})
                if isinstance(value, Undefined):
                    raise _Undecidable(condition)
                decided = bool(value)
            # Anything a condition raises means the inventory alone cannot decide it.
            except (_Undecidable, TemplateError, ArithmeticError, LookupError, TypeError, ValueError,
                    AttributeError):
                continue
            if not decided:
                return False
        return True

    def _names_read(self, uses: list[_RoleUse]) -> tuple[str, ...]:
        """Every variable a condition reads, directly or through the play's templated vars."""
        from jinja2 import TemplateError

        names: set[str] = set()
        pending: list[tuple[str, Mapping[str, Any]]] = []
        for use in uses:
            for condition in use.conditions:
                try:
                    pending.extend((name, use.play_vars) for name in self._expression(condition)[1])
                except (_Undecidable, TemplateError):
                    continue
        while pending:
            name, play_vars = pending.pop()
            if name in names:
                continue
            names.add(name)
            value = play_vars.get(name)
            if _is_template(value):
                try:
                    pending.extend((read, play_vars) for read in self._template(value)[1])
                except TemplateError:
                    continue
        return tuple(sorted(names))

    def _value(self, name: str, play_vars: Mapping[str, Any], variables: Mapping[str, Any],
               resolving: frozenset[str]) -> Any:
        # Play vars come before inventory variables, as in Ansible; only they are templates:
        # inventory values are data (the inventory plugin's values are never templated).
        if name not in play_vars:
            return variables[name]
        value = play_vars[name]
        if not _is_template(value):
            return value
        if name in resolving:
            raise _Undecidable(f"{name} refers to itself")
        template, names = self._template(value)
        return template.render({read: self._value(read, play_vars, variables, resolving | {name})
                                for read in names if read in play_vars or read in variables})

    def _expression(self, condition: Any) -> tuple[Any, frozenset[str]]:
        if isinstance(condition, bool):
            condition = str(condition)
        if not isinstance(condition, str):
            raise _Undecidable(repr(condition))
        if condition not in self._expressions:
            from jinja2 import meta

            parsed = self.environment.parse(f"{{{{ {condition} }}}}")
            names = frozenset(meta.find_undeclared_variables(parsed))
            self._expressions[condition] = (
                self.environment.compile_expression(condition, undefined_to_none=False), names)
        return self._expressions[condition]

    def _template(self, text: str) -> tuple[Any, frozenset[str]]:
        if text not in self._templates:
            from jinja2 import meta

            names = frozenset(meta.find_undeclared_variables(self.environment.parse(text)))
            self._templates[text] = (self.environment.from_string(text), names)
        return self._templates[text]


def ansible_bool(value: Any) -> bool:
    """Ansible's `bool` filter, for conditions (its filters cost a third of a second to import)."""
    if isinstance(value, bool):
        return value
    text = str(value).lower() if isinstance(value, (str, int)) else value
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    return bool(value == 1)


def _is_template(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _action(task: dict[str, Any], names: frozenset[str]) -> Any:
    """The argument of the task's action when it is one of NAMES, however qualified."""
    for key, value in task.items():
        if isinstance(key, str) and key.rpartition(".")[2] in names:
            return value if value is not None else {}
    return None


def _role_name(entry: Any) -> str | None:
    name = entry if isinstance(entry, str) else (entry.get("role") or entry.get("name")) \
        if isinstance(entry, dict) else None
    return None if not isinstance(name, str) or "{" in name else name


def _when(entry: Any) -> tuple[Any, ...]:
    when = entry.get("when") if isinstance(entry, dict) else None
    if when is None:
        return ()
    return tuple(when) if isinstance(when, list) else (when,)


def _entries(data: Any) -> list[dict[str, Any]]:
    return [entry for entry in data if isinstance(entry, dict)] if isinstance(data, list) else []


def _load(path: Path) -> Any:
    try:
        return yaml.load(path.read_text(), Loader=_Loader)  # noqa: S506 - a safe loader
    except FileNotFoundError:
        raise EcohashError(f"{path}: no such file") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise EcohashError(f"{where}: not YAML ({getattr(error, 'problem', None) or error})") from None
