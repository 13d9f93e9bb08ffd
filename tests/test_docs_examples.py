"""Every ```python block of README.md and docs/**/*.md runs, as written, on a real Redis
with the real worker (tests/docs_runner.py says how, and the marks a block may carry).
The blocks are read from the files at collection: one test per block, named by its file
and line. Below them, the runner's own rules, on documents written here."""

from __future__ import annotations

from pathlib import Path

import pytest

from django_remq.core.errors import UnknownEventWarning
from tests.docs_runner import Block, DocMarkError, collect, run

pytestmark = pytest.mark.redis

BLOCKS = collect()


def _param(block: Block) -> object:
    reason = block.marks.get("not run")
    return pytest.param(block, id=block.id,
                        marks=[pytest.mark.skip(reason=f"not run: {reason}")] if reason else [])


@pytest.mark.parametrize("block", [_param(b) for b in BLOCKS])
def test_doc_block(block: Block) -> None:
    run(block, BLOCKS)


def test_the_readme_has_blocks_and_few_are_left_out() -> None:
    readme = [b for b in BLOCKS if b.path == "README.md"]
    assert len(readme) >= 5
    assert sum("not run" in b.marks for b in BLOCKS) <= len(BLOCKS) // 5


# -- the runner's rules, on documents of our own -------------------------------------------


def docs(root: Path, readme: str, **pages: str) -> list[Block]:
    """A README and pages under docs/ (``pages``: relative path -> text), collected."""
    (root / "README.md").write_text(readme)
    for rel, text in pages.items():
        page = root / "docs" / rel
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(text)
    return collect(root)


def py(code: str, *marks: str) -> str:
    return "".join(f"<!-- {m} -->\n" for m in marks) + f"```python\n{code}\n```\n\n"


FAILING = ('from django_remq import emit, handler\n\n'
           '@handler("boom")\ndef boom(task, ctx):\n    raise ValueError("on purpose")\n\n'
           'emit("boom")')


def test_every_page_under_docs_is_read_and_named_by_its_path(tmp_path: Path) -> None:
    blocks = docs(tmp_path, "# t\n\n" + py("x = 1"), **{"guide/deep/page.md": py("y = 2"),
                                                        "index.md": "```bash\nls\n```\n"})
    assert [b.id for b in blocks] == ["README.md:3", "docs/guide/deep/page.md:1"]


@pytest.mark.parametrize(("mark", "error"), [
    ("not run", "needs its reason"),
    ("not-run: a typo", "unknown mark 'not-run'"),
    ("continues: nowhere", "continues 'nowhere'"),
])
def test_a_mark_the_runner_cannot_use_fails_the_collection(tmp_path: Path, mark: str,
                                                           error: str) -> None:
    with pytest.raises(DocMarkError, match=error):
        docs(tmp_path, py("x = 1", mark))


def test_a_block_sees_the_names_of_the_block_it_continues(tmp_path: Path) -> None:
    first, second = docs(tmp_path, py("x = 1", "name: first") + py("y = x + 1", "continues"))
    run(second, [first, second])
    lone = docs(tmp_path, py("x = 1") + py("y = x + 1"))
    with pytest.raises(NameError, match="'x'"):
        run(lone[1], lone)


def test_a_job_that_fails_fails_its_block_unless_marked(tmp_path: Path) -> None:
    [block] = docs(tmp_path, py(FAILING))
    with pytest.raises(AssertionError, match=r"jobs failed: .*boom \w+ failed \['on purpose'\]"):
        run(block, [block])
    [marked] = docs(tmp_path, py(FAILING, "fails on purpose: shows a failure"))
    run(marked, [marked])
    [passing] = docs(tmp_path, py(FAILING.replace("raise ValueError", "return"),
                                  "fails on purpose: but nothing fails"))
    with pytest.raises(AssertionError, match="no job failed"):
        run(passing, [passing])


def test_a_setting_the_package_does_not_know_fails(tmp_path: Path) -> None:
    [block] = docs(tmp_path, py('REMQ = {"CONCURENCY": 4}'))
    with pytest.raises(AssertionError, match=r"remq\.E002.*'CONCURRENCY'"):
        run(block, [block])


def test_an_emit_nothing_handles_fails_at_the_emit(tmp_path: Path) -> None:
    [block] = docs(tmp_path, py('from django_remq import emit, handler\n\n'
                                '@handler("known")\ndef known(task, ctx): ...\n\n'
                                'emit("unknown")'))
    with pytest.raises(UnknownEventWarning, match="no handler is registered"):
        run(block, [block])
