"""The layout's rules, checked on the code itself and on what a running answer imports.

Answering from a built index loads neither training code, nor torch, nor
sentence-transformers; the web app and the MCP server use only the engine, the
library and the answer contract; no module reaches for another's private names;
no module grows past what a reader can hold.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

QUESTION = "When did Russia send troops into Ukraine?"
HEAVY = ("torch", "sentence_transformers", "qa.training")
# What the front ends may use of qa: the engine and its options, the library, the contract.
FRONT_END_MAY_IMPORT = {"qa", "qa.engine", "qa.library", "qa.contract", "qa.errors"}
MAX_LINES = 450


def _modules(code: str, *args: str) -> tuple[set[str], str]:
    """The modules a fresh interpreter has loaded after running ``code``, and what it printed."""
    script = code + "\nimport sys\nprint('MODULES', *sorted(sys.modules))"
    proc = subprocess.run([sys.executable, "-c", script, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    out, _, modules = proc.stdout.rpartition("MODULES")
    return set(modules.split()), out


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m == "torch" or m.startswith(tuple(f"{h}." for h in HEAVY))
                  or m in HEAVY)


def test_asking_on_a_built_index_imports_no_training_torch_or_sentence_transformers(engine):
    # (The engine fixture exported the question encoder once, as a first `qa ask` would.)
    modules, out = _modules("import sys\nfrom qa.cli import main\n"
                            "main(['ask', sys.argv[1], '--index', sys.argv[2], '--json'])",
                            QUESTION, str(engine.index_dir))
    assert json.loads(out)["short_answer"]["text"] == "Feb. 24, 2022"
    assert "onnxruntime" in modules and "faiss" in modules  # it did answer, with the real parts
    assert _heavy(modules) == []


def test_serving_the_api_and_mcp_imports_no_training_torch_or_sentence_transformers(engine):
    code = ("import sys\nfrom qa.engine import Engine\nfrom qa.mcp_server import build_server\n"
            "from web.app import create_app\nengine = Engine(sys.argv[1])\nbuild_server(engine)\n"
            "client = create_app(engine).test_client()\n"
            "print(client.post('/api/ask', json={'question': sys.argv[2]}).get_json()['answerable'])")
    modules, out = _modules(code, str(engine.index_dir), QUESTION)
    assert out.strip() == "True"
    assert _heavy(modules) == []


def _python_files(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(module, names, line) of every import in the file, relative ones made absolute."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            out.append((module, [alias.name for alias in node.names], node.lineno))
    return out


def _ours(module: str) -> bool:
    return module.split(".")[0] in ("qa", "web")


@pytest.mark.parametrize("path", [*_python_files("web"), ROOT / "qa" / "mcp_server.py"],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_front_ends_use_only_the_engine_library_and_contract(path):
    used = {module for module, _, _ in _imports(path) if module.split(".")[0] == "qa"}
    assert used <= FRONT_END_MAY_IMPORT, f"{path.name} uses {sorted(used - FRONT_END_MAY_IMPORT)}"


def test_nothing_but_the_cli_imports_training_and_serving_never_does():
    for path in _python_files("qa", "web"):
        if "training" in path.parts or path.name == "cli.py":
            continue
        bad = [module for module, _, _ in _imports(path) if module.startswith("qa.training")]
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_no_module_imports_another_modules_private_names():
    found = []
    for path in _python_files("qa", "web", "tests", "bench"):
        for module, names, line in _imports(path):
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if _ours(module) and private:
                found.append(f"{path.relative_to(ROOT)}:{line} {module} {private}")
    assert found == []


def test_no_module_is_too_long_to_read():
    long = {str(p.relative_to(ROOT)): n for p in _python_files("qa", "web")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}


def test_the_public_api_is_what_the_readme_shows():
    import qa

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in qa.__all__:
        assert getattr(qa, name) is not None
    assert "from qa import" in readme
    shown = readme.split("from qa import", 1)[1].split("\n", 1)[0]
    assert {n.strip() for n in shown.split(",")} <= set(qa.__all__)
