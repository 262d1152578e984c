"""Drives the unmodified E2B code-interpreter Python SDK
(e2b-code-interpreter) against a SoulBox daemon: Sandbox.create() with its
default template (code-interpreter-v1), run_code and the code contexts on
port 49999.

test/e2b/run.sh installs the pinned SDK (requirements.txt) into a venv and
runs this with E2B_API_URL, E2B_SANDBOX_URL and E2B_API_KEY pointing at a
daemon it started. The pandas and matplotlib test needs python3-pandas and
python3-matplotlib on the host (the template is the host's /usr); without
them it skips, except under CI=true where it fails.
"""

import asyncio
import base64
import os
import time
from importlib.metadata import version

import pytest

from e2b_code_interpreter import AsyncSandbox, NotFoundException, Sandbox, TimeoutException

for _v in ("E2B_API_URL", "E2B_SANDBOX_URL", "E2B_API_KEY"):
    if not os.environ.get(_v):
        raise RuntimeError(f"{_v} must be set (test/e2b/run.sh sets it)")

print("e2b-code-interpreter Python SDK", version("e2b-code-interpreter"))


@pytest.fixture
def sbx():
    s = Sandbox.create(timeout=300)
    yield s
    s.kill()


def test_default_template(sbx):
    assert Sandbox.default_template == "code-interpreter-v1"
    assert sbx.get_info().template_id == "code-interpreter-v1"


def test_run_code_python(sbx):
    ex = sbx.run_code('x = 40\nprint("hello")\nx + 2')
    assert ex.error is None
    assert ex.logs.stdout == ["hello\n"]
    assert ex.logs.stderr == []
    assert ex.text == "42"
    assert ex.results[0].is_main_result
    assert ex.execution_count == 1
    assert sbx.run_code("x * 2").text == "80"
    assert sbx.run_code('"a" + "b"').text == "ab"


def test_run_code_error(sbx):
    errors = []
    ex = sbx.run_code("def f():\n    return 1 / 0\nf()", on_error=errors.append)
    assert ex.error.name == "ZeroDivisionError"
    assert ex.error.value == "division by zero"
    assert "ZeroDivisionError" in ex.error.traceback
    assert len(errors) == 1
    assert sbx.run_code("1 + 1").text == "2"


def test_dataframe_and_figure(sbx):
    probe = sbx.run_code("import pandas, matplotlib")
    if probe.error:
        msg = f"python3-pandas and python3-matplotlib are not installed on the host ({probe.error.name})"
        if os.environ.get("CI") == "true":
            pytest.fail(msg + ", and CI=true")
        pytest.skip(msg)
    df = sbx.run_code("import pandas as pd\npd.DataFrame({'a': [1, 2], 'b': ['x', 'y']})")
    r = df.results[0]
    assert "<table" in r.html
    assert r.data == {"a": [1, 2], "b": ["x", "y"]}
    fig = sbx.run_code("import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nprint('drawn')")
    assert fig.logs.stdout == ["drawn\n"]
    png = [r for r in fig.results if r.png]
    assert png and base64.b64decode(png[0].png)[1:4] == b"PNG"


def test_javascript(sbx):
    ex = sbx.run_code('const g = (n) => `hi ${n}`; console.log(g("py")); 6 * 7', language="javascript")
    assert ex.logs.stdout == ["hi py\n"]
    assert ex.text == "42"
    assert sbx.run_code('g("again")', language="js").text == "hi again"


def test_contexts(sbx):
    ctx = sbx.create_code_context(language="python", cwd="/tmp")
    assert ctx.language == "python" and ctx.cwd == "/tmp" and ctx.id
    assert sbx.run_code("import os\nv = 7\nos.getcwd()", context=ctx).text == "/tmp"
    assert sbx.run_code("v", context=ctx).text == "7"
    assert ctx.id in [c.id for c in sbx.list_code_contexts()]
    sbx.restart_code_context(ctx)
    assert sbx.run_code("v", context=ctx).error.name == "NameError"
    sbx.remove_code_context(ctx)
    assert ctx.id not in [c.id for c in sbx.list_code_contexts()]
    with pytest.raises(NotFoundException):
        sbx.run_code("1", context=ctx)


def test_callbacks_stream(sbx):
    seen = []
    t0 = time.monotonic()
    sbx.run_code(
        'import sys, time\nprint("first", flush=True)\nprint("warn", file=sys.stderr)\ntime.sleep(1.5)\nprint("second")',
        on_stdout=lambda m: seen.append(("out", m.line, m.error, time.monotonic() - t0)),
        on_stderr=lambda m: seen.append(("err", m.line, m.error, time.monotonic() - t0)),
    )
    done = time.monotonic() - t0
    assert [s[:3] for s in seen] == [("out", "first\n", False), ("err", "warn\n", True), ("out", "second\n", False)]
    assert done - seen[0][3] >= 1.0


def test_envs(sbx):
    code = 'import os\nos.environ.get("FOO")'
    assert sbx.run_code(code, envs={"FOO": "bar"}).text == "bar"
    assert sbx.run_code(code).results == []


def test_timeout(sbx):
    sbx.run_code("n = 5")
    with pytest.raises(TimeoutException):
        sbx.run_code("import time\ntime.sleep(60)", timeout=1.5)
    t0 = time.monotonic()
    assert sbx.run_code("n + 1", timeout=20).text == "6"
    assert time.monotonic() - t0 < 15


def test_async():
    async def main():
        s = await AsyncSandbox.create(timeout=300)
        try:
            out = []
            ex = await s.run_code('print("async")\n3 * 3', on_stdout=lambda m: out.append(m.line))
            assert ex.text == "9"
            assert out == ["async\n"]
            ctx = await s.create_code_context(language="javascript")
            assert (await s.run_code("1 + 2", context=ctx)).text == "3"
            await s.remove_code_context(ctx.id)
        finally:
            await s.kill()

    asyncio.run(main())
