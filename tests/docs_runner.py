"""Runs the ```python blocks of README.md and docs/**/*.md (tests/test_docs_examples.py).

A block runs as written, against the test Redis under a fresh key prefix, and what it
emits is run to its end by the real worker; so a block that drifted from the package
fails here instead of in a reader's project. What a block's lines are for decides how
they run:

- A block may show several files, each from a comment line naming it (``# settings.py``,
  ``# myapp/tasks.py -- found by autodiscovery``); a block without one is one file.
- Settings (a ``settings.py`` section, or one that only assigns UPPER_CASE names) run
  in the chain's own settings namespace. ``REMQ`` is checked by the package's own
  validation (``django_remq.conf.problems``: a documented key that no longer exists
  fails), ``INSTALLED_APPS`` entries must import (a literal ``...`` stands for the
  reader's own), and the rest is applied with ``override_settings``, ``REMQ`` on the
  test Redis and prefix; Django's system checks must then report nothing.
- Every other section runs in one module per test, registered in ``sys.modules`` (the
  Tasks backend imports a task by its path). ``@handler`` declarations go to an empty
  registry, restored afterwards; an emit of an event nothing handles is an error.
  Top-level ``await`` works; a worker a block runs for ever (``await tm.run()``) is
  cancelled once its jobs are done, as Ctrl-C would. ``TaskManager.init`` called from
  a block gets the test Redis and prefix instead of the Redis it names.
- An ``asgi.py`` section must define a callable ``application``; a ``urls.py`` one a
  ``urlpatterns`` that Django's URL checks accept. ``test_*`` functions a block defines
  are called with the ``remq`` / ``remq_fake`` fixtures, as pytest would.
- Then every job under the prefix must have completed (or been cancelled, or be
  scheduled beyond the run), none failed: unless the block is marked to fail.

Marks, HTML comments (invisible once rendered) on the lines right above a fence:

    <!-- not run: <reason> -->             shown only; the reason is required
    <!-- name: <name> -->                  a block a later one may continue
    <!-- continues -->                     runs after the previous block of its file,
    <!-- continues: <name> -->             or the one so named, seeing its names
    <!-- fails on purpose: <reason> -->    some job it emits must end failed
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import os
import re
import sys
import time
import warnings
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager, suppress
from dataclasses import dataclass
from functools import partial
from importlib.util import find_spec
from pathlib import Path, PurePosixPath
from types import CodeType, ModuleType
from typing import Any

import django
from django.core.checks import WARNING, run_checks
from django.core.checks.urls import check_resolver
from django.test import override_settings
from django.urls.resolvers import RegexPattern, URLResolver

from django_remq import conf
from django_remq.api import get_task_manager, reset_task_manager
from django_remq.backends.compat import task_backends
from django_remq.core import TaskManager
from django_remq.core.errors import UnknownEventWarning
from django_remq.core.sdk import Sdk
from django_remq.core.types import AdminJobData
from django_remq.decorators import registry
from django_remq.testing import RemqTestEnv, remq_test_settings, run_until_idle

ROOT = Path(__file__).resolve().parent.parent
PYTHON = {"python", "py", "python3"}
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")
MARK = re.compile(r"^\s*<!--(.*?)-->\s*$")
MARKS = {"not run": True, "name": True, "continues": False, "fails on purpose": True}
HEADER = re.compile(r"^# (\S+\.py)\b")  # a section: "# settings.py", "# myapp/tasks.py ..."
#: jobs due later than this after the run starts are left scheduled (a 60 s delay_ms)
HORIZON_S = 10.0
FIXTURES: dict[str, Callable[[], AbstractContextManager[RemqTestEnv]]] = {
    "remq": remq_test_settings, "remq_fake": partial(remq_test_settings, fake=True)}


class DocMarkError(Exception):
    """A mark the collector cannot use: the docs, not the package, need fixing."""


@dataclass(frozen=True)
class Block:
    file: Path
    path: str  # relative to the docs' root: "README.md", "docs/deployment.md"
    line: int  # the opening fence's line
    code: str
    marks: Mapping[str, str]

    @property
    def id(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True)
class Section:
    """The lines of a block that show one file (``file`` None: the block names none)."""

    file: str | None
    line: int  # its first line in the document
    code: str

    @property
    def kind(self) -> str:
        name = PurePosixPath(self.file).name if self.file else None
        if name in ("settings.py", "urls.py", "asgi.py"):
            return name.removesuffix(".py")
        return "settings" if name is None and only_settings(self.code) else "code"


# -- collecting ---------------------------------------------------------------------


def doc_files(root: Path = ROOT) -> list[Path]:
    """README.md and every page under docs/, however deep (a docs site grows folders)."""
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def collect(root: Path = ROOT) -> list[Block]:
    """Every python block, in file order; raises :class:`DocMarkError` on a bad mark."""
    blocks: list[Block] = []
    for file in doc_files(root):
        blocks += blocks_of(file, file.relative_to(root).as_posix())
    for block in blocks:
        chain(block, blocks)  # a `continues` that leads nowhere fails here, not at run time
    return blocks


def blocks_of(file: Path, path: str) -> list[Block]:
    lines = file.read_text().splitlines()
    found, n = [], 0
    while n < len(lines):
        opening = FENCE.match(lines[n])
        if opening is None:
            n += 1
            continue
        indent, fence, lang = opening.groups()
        closing = re.compile(rf"\s*{fence[0]}{{{len(fence)},}}\s*")
        end = next((i for i in range(n + 1, len(lines)) if closing.fullmatch(lines[i])),
                   len(lines))
        if lang in PYTHON:
            code = "\n".join(line.removeprefix(indent) for line in lines[n + 1:end])
            found.append(Block(file, path, n + 1, code, marks_above(lines, n, path)))
        n = end + 1
    return found


def marks_above(lines: list[str], fence: int, path: str) -> dict[str, str]:
    marks: dict[str, str] = {}
    n = fence - 1
    while n >= 0 and (comment := MARK.match(lines[n])):
        key, _, value = (part.strip() for part in comment.group(1).partition(":"))
        where = f"{path}:{n + 1}"
        if key not in MARKS:
            raise DocMarkError(f"{where}: unknown mark {key!r} above a python block; "
                               f"known: {', '.join(MARKS)}")
        if MARKS[key] and not value:
            raise DocMarkError(f"{where}: <!-- {key}: ... --> needs its reason or name")
        marks[key] = value
        n -= 1
    return marks


def chain(block: Block, blocks: Sequence[Block]) -> list[Block]:
    """The blocks ``block`` continues (followed back), then ``block``."""
    if "continues" not in block.marks:
        return [block]
    earlier = [b for b in blocks if b.path == block.path and b.line < block.line]
    name = block.marks["continues"]
    found = [b for b in earlier if b.marks.get("name") == name] if name else earlier[-1:]
    if not found:
        raise DocMarkError(f"{block.id}: continues {name or 'the previous block'!r}, which "
                           "is no earlier python block of its file")
    if "not run" in found[-1].marks:
        raise DocMarkError(f"{block.id}: continues {found[-1].id}, which is not run")
    return [*chain(found[-1], blocks), block]


def sections(block: Block) -> list[Section]:
    lines = block.code.split("\n")
    starts = [n for n, line in enumerate(lines) if HEADER.match(line)]
    bounds = sorted({0, *starts})
    out = []
    for start, end in zip(bounds, [*bounds[1:], len(lines)], strict=True):
        header = HEADER.match(lines[start])
        if any(line.strip() for line in lines[start:end]):
            out.append(Section(header.group(1) if header else None, block.line + 1 + start,
                               "\n".join(lines[start:end])))
    return out


def only_settings(code: str) -> bool:
    """Whether the code only assigns UPPER_CASE names: a settings file's content."""
    try:
        body = ast.parse(code).body
    except SyntaxError:
        return False  # compiled() reports it, on the document's line
    return bool(body) and all(
        isinstance(s, ast.Assign) and all(isinstance(t, ast.Name) and t.id.isupper()
                                          for t in s.targets) for s in body)


# -- running ------------------------------------------------------------------------


def run(block: Block, blocks: Sequence[Block]) -> None:
    """Run ``block`` after the blocks it continues; an AssertionError says what is wrong."""
    module = ModuleType("docblock_" + re.sub(r"\W", "_", block.id))
    started_ms = time.time() * 1000
    with ExitStack() as stack:
        env = stack.enter_context(remq_test_settings())
        stack.enter_context(isolated(module))
        made = stack.enter_context(engine_on(env, module.__name__))
        sdk = Sdk(env.redis_url, env.prefix)
        stack.callback(sdk.conn.close)
        settled = partial(asettled, sdk, started_ms)
        settings: dict[str, Any] = {}
        for part in chain(block, blocks):
            before = set(vars(module))
            for section in sections(part):
                code = compiled(part, section)
                if section.kind == "settings":
                    exec(code, settings)
                    stack.enter_context(applied(settings, env))
                else:
                    execute(code, module, made, settled)
                    check_file(section, module)
        run_examples(module, [n for n in vars(module) if n not in before])
        drain()
        check_outcomes(sdk.list_jobs(limit=1000), block, started_ms)
        check_django()


def compiled(block: Block, section: Section) -> CodeType:
    """The section's code, on its lines of the document: a traceback names the doc's line
    and shows the section (code padded to its line would show the doc from its start)."""
    source = section.code
    if django.VERSION < (6,):  # the README's rule: on 5.2 the Tasks framework is the backport
        source = source.replace("from django.tasks import", "from django_tasks import")
    by = section.line - 1
    try:
        code = compile(source, str(block.file), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
                       dont_inherit=True)
    except SyntaxError as exc:
        n = exc.lineno or 1  # (compile() took the text from the file's line n, not ours)
        raise SyntaxError(exc.msg, (str(block.file), n + by, exc.offset,
                                    source.split("\n")[n - 1], (exc.end_lineno or n) + by,
                                    exc.end_offset)) from None
    return shifted(code, by)


def shifted(code: CodeType, by: int) -> CodeType:
    """``code`` and the functions in it moved down ``by`` lines."""
    consts = tuple(shifted(c, by) if isinstance(c, CodeType) else c for c in code.co_consts)
    return code.replace(co_firstlineno=code.co_firstlineno + by, co_consts=consts)


@contextmanager
def isolated(module: ModuleType) -> Iterator[None]:
    """The block's module importable, an empty handler registry, the environment kept."""
    environ, declared = dict(os.environ), list(registry)
    registry.clear()
    reset_task_manager()  # built again from the block's declarations only
    sys.modules[module.__name__] = module
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", UnknownEventWarning)
            yield
    finally:
        sys.modules.pop(module.__name__, None)
        registry.clear()
        for decl in declared:
            registry.add(decl)
        reset_task_manager()
        os.environ.clear()
        os.environ.update(environ)


@contextmanager
def engine_on(env: RemqTestEnv, module_name: str) -> Iterator[list[TaskManager]]:
    """``TaskManager.init`` called from the block: on the test Redis and prefix (the block
    names a reader's Redis); yields the managers so made, closed afterwards."""
    original = TaskManager.__dict__["init"]
    made: list[TaskManager] = []

    def init(cls: type[TaskManager], db: Any, *args: Any, **kwargs: Any) -> TaskManager:
        if sys._getframe(1).f_globals.get("__name__") != module_name:
            return original.__func__(cls, db, *args, **kwargs)  # type: ignore[no-any-return]
        made.append(original.__func__(cls, env.redis_url, *args,
                                      **{**kwargs, "prefix": env.prefix}))
        return made[-1]

    TaskManager.init = classmethod(init)  # type: ignore[method-assign,assignment]
    try:
        yield made
    finally:
        TaskManager.init = original  # type: ignore[method-assign]
        for tm in made:
            tm.conn.close()


@contextmanager
def applied(settings: dict[str, Any], env: RemqTestEnv) -> Iterator[None]:
    """The settings checked, and applied (``REMQ`` on the test Redis and prefix)."""
    values = {k: v for k, v in settings.items() if k.isupper()}
    missing = [app for app in values.pop("INSTALLED_APPS", [])
               if app is not Ellipsis and find_spec(app) is None]  # `...`: the reader's apps
    assert not missing, f"INSTALLED_APPS names what does not import: {missing}"
    if "REMQ" in values:
        found = conf.problems(values["REMQ"])
        assert not found, f"REMQ as documented: {[f'{p.id} {p.msg} {p.hint}' for p in found]}"
        values["REMQ"] = {**values["REMQ"], "REDIS_URL": env.redis_url, "PREFIX": env.prefix}
    with override_settings(**values):
        check_django()
        yield


def execute(code: CodeType, module: ModuleType, made: list[TaskManager],
            settled: Callable[[], Coroutine[Any, Any, bool]]) -> None:
    if code.co_flags & inspect.CO_COROUTINE:  # top-level await
        asyncio.run(drive(eval(code, vars(module)), made, settled))
    else:
        exec(code, vars(module))


async def drive(coro: Coroutine[Any, Any, Any], made: list[TaskManager],
                settled: Callable[[], Coroutine[Any, Any, bool]]) -> None:
    """Await the block; once a worker it started has finished its jobs, cancel it."""
    task = asyncio.ensure_future(coro)
    deadline = time.monotonic() + 3 * HORIZON_S
    while not task.done():
        await asyncio.wait([task], timeout=0.05)
        if task.done():
            break
        assert time.monotonic() < deadline, "the block still runs and its jobs are not done"
        if any(tm.processor is not None for tm in made) and await settled():
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
            return
    task.result()


def check_file(section: Section, module: ModuleType) -> None:
    if section.kind == "asgi":
        assert callable(getattr(module, "application", None)), "asgi.py: no `application`"
    elif section.kind == "urls":
        assert hasattr(module, "urlpatterns"), "urls.py: no `urlpatterns`"
        found = check_resolver(URLResolver(RegexPattern(r"^/"), module))
        assert not found, f"urls.py, Django's URL checks: {found}"


def run_examples(module: ModuleType, names: list[str]) -> None:
    """Call the block's ``test_*`` functions, each with fresh fixtures, as pytest would."""
    for name in names:
        fn = vars(module)[name]
        if not (name.startswith("test_") and inspect.isfunction(fn)):
            continue
        wanted = list(inspect.signature(fn).parameters)
        assert set(wanted) <= set(FIXTURES), f"{name}: fixtures beyond {sorted(FIXTURES)}"
        with ExitStack() as stack:
            result = fn(**{p: stack.enter_context(FIXTURES[p]()) for p in wanted})
            if inspect.iscoroutine(result):
                asyncio.run(result)


def drain() -> None:
    """Run what the block emitted with the real worker, as far as the horizon."""
    if not get_task_manager().queues:
        return
    with suppress(TimeoutError):  # a job due later stays scheduled: check_outcomes judges
        run_until_idle(timeout=HORIZON_S)


def unfinished(jobs: Sequence[AdminJobData], started_ms: float) -> list[AdminJobData]:
    """Jobs still to run before the horizon (waiting, running, paused, due soon)."""
    return [j for j in jobs if j.status not in ("completed", "cancelled", "failed") and not (
        j.status == "delayed" and (j.delay_until or 0) > started_ms + HORIZON_S * 1000)]


async def asettled(sdk: Sdk, started_ms: float) -> bool:
    return not unfinished(await sdk.alist_jobs(limit=1000), started_ms)


def check_outcomes(jobs: Sequence[AdminJobData], block: Block, started_ms: float) -> None:
    def show(js: Sequence[AdminJobData]) -> list[str]:
        return [f"{j.state.name} {j.id} {j.status} {[e.message for e in j.errors]}" for j in js]

    left = unfinished(jobs, started_ms)
    assert not left, f"jobs the block emitted did not finish: {show(left)}"
    failed = [j for j in jobs if j.status == "failed"]
    if "fails on purpose" in block.marks:
        assert failed, "marked `fails on purpose`, but no job failed"
    else:
        assert not failed, f"jobs failed: {show(failed)}"


def check_django() -> None:
    """The package's system checks (REMQ, the gateway's channel layer, handler queues) and
    the Tasks backends' (TASKS); not every check the process registered, which would
    judge the test project (an app module some test imported registers its own)."""
    found = [*run_checks(tags=["remq"]), *(m for b in task_backends.all() for m in b.check())]
    found = [m for m in found if m.level >= WARNING]
    assert not found, f"Django's system checks: {found}"
