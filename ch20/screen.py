"""A static screen of a candidate's source: warnings with line numbers, read without running it.

It flags what has fooled kernel evaluations before: try/except fallbacks to the reference, work on
side streams or threads the timer may not see, replacing timing or comparison functions, and reaching
into the verifier's own process state. These are warnings for the reader and the next prompt; the
verdict itself rests on the child-process checks, never on this screen.
"""
from __future__ import annotations

import ast
import threading

# One parse at a time in this process: CPython 3.11/3.12's AST constructor keeps a recursion count that threads
# parsing at once corrupt ("SystemError: AST constructor recursion depth mismatch"), and verifications run in
# threads (a search loop, the tests). Replies (ch20._process) and the screen both parse.
AST_LOCK = threading.Lock()

TIMING_NAMES = {"perf_counter", "perf_counter_ns", "time", "time_ns", "monotonic", "monotonic_ns",
                "process_time", "elapsed_time", "synchronize", "record", "Event", "sleep"}
COMPARE_NAMES = {"allclose", "assert_close", "isclose", "equal", "array_equal", "allclose_", "testing",
                 "assert_allclose", "isfinite", "isnan", "all", "any", "__eq__", "__ne__"}
CONCURRENCY_MODULES = {"threading", "_thread", "concurrent", "multiprocessing", "asyncio"}
INTROSPECTION = {"gc", "inspect", "ctypes", "ch20", "harness", "builtins", "signal"}


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def screen(source: str) -> tuple[str | None, list[dict]]:
    """(syntax error or None, warnings). A syntax error means the candidate cannot compile at all."""
    try:
        with AST_LOCK:
            tree = ast.parse(source)
    except SyntaxError as exc:
        return f"SyntaxError at line {exc.lineno}: {exc.msg}", []
    warnings: list[dict] = []

    def warn(node, kind, message):
        warnings.append({"line": getattr(node, "lineno", 0), "kind": kind, "message": message})

    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and node.handlers:
            calls_torch = any(isinstance(n, ast.Call) and _dotted(n.func).split(".")[0] in {"torch", "F", "super"}
                              for h in node.handlers for n in ast.walk(h))
            warn(node, "fallback", "try/except: a fallback path can hide a kernel that fails"
                 + (" (the handler calls torch or super(): a fallback to the reference?)" if calls_torch else ""))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for name in names:
                root = name.split(".")[0]
                if root in CONCURRENCY_MODULES:
                    warn(node, "concurrency", f"imports {name}: work on threads or processes the timer may not see")
                if root in INTROSPECTION:
                    warn(node, "introspection", f"imports {name}: reaches into process or interpreter state")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name.endswith(("Stream", ".stream", "Thread", "Process", "ThreadPoolExecutor", "fork")):
                warn(node, "concurrency", f"{name}(): a side stream or thread the timer may not see")
            if name in {"setattr", "object.__setattr__"} and node.args:
                target = _dotted(node.args[0])
                attr = node.args[1].value if len(node.args) > 1 and isinstance(node.args[1], ast.Constant) else "?"
                if target.split(".")[0] in {"torch", "time", "np", "numpy", "math"}:
                    warn(node, "patching", f"setattr({target}, {attr!r}): replaces a library function")
            if name in {"sys._getframe", "__import__", "exec", "eval", "compile", "os.kill", "os._exit"}:
                warn(node, "introspection", f"{name}(): dynamic code or process control")
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if not isinstance(t, ast.Attribute):
                    continue
                full = _dotted(t)
                root = full.split(".")[0]
                if root in {"time", "torch", "np", "numpy", "math", "sys", "os", "builtins", "triton"}:
                    kind = ("patching-timing" if t.attr in TIMING_NAMES else
                            "patching-comparison" if t.attr in COMPARE_NAMES else "patching")
                    warn(node, kind, f"assigns {full}: replaces a library function the verifier or timer may use")
        elif isinstance(node, ast.Name) and node.id in {"__builtins__", "__subclasses__"}:
            warn(node, "introspection", f"uses {node.id}")
        elif isinstance(node, ast.Attribute) and node.attr in {"modules", "_getframe", "__globals__", "__code__",
                                                                "__closure__", "f_back", "f_globals"}:
            warn(node, "introspection", f"uses .{node.attr}: reaching into other code's state")
    warnings.sort(key=lambda w: w["line"])
    return None, warnings
