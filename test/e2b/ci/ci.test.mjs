// Drives the unmodified E2B code-interpreter JS SDK (@e2b/code-interpreter)
// against a SoulBox daemon: Sandbox.create() with its default template
// (code-interpreter-v1), runCode and the code contexts on port 49999.
//
// Run from a version directory (test/e2b/ci/<version>, where `npm ci`
// installed that exact version) with the daemon's addresses and key in
// E2B_API_URL, E2B_SANDBOX_URL and E2B_API_KEY:
//
//   cd test/e2b/ci/2.8.0 && node --test ../ci.test.mjs
//
// The pandas and matplotlib test needs python3-pandas and
// python3-matplotlib on the host (the sandbox's template is the host's
// /usr); without them it skips, except under CI=true where it fails.
import { after, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { pathToFileURL } from 'node:url'
import path from 'node:path'

for (const v of ['E2B_API_URL', 'E2B_SANDBOX_URL', 'E2B_API_KEY']) {
  if (!process.env[v]) throw new Error(`${v} must be set (test/e2b/run.sh sets it)`)
}

// Import the SDK installed in the current directory, not one next to this file.
const require = createRequire(path.join(process.cwd(), 'package.json'))
const sdkVersion = require('@e2b/code-interpreter/package.json').version
const ci = await import(pathToFileURL(require.resolve('@e2b/code-interpreter')).href)
const { Sandbox, TimeoutError, NotFoundError } = ci

const live = new Set()
async function newSandbox(opts = {}) {
  const sbx = await Sandbox.create({ timeoutMs: 5 * 60_000, ...opts })
  live.add(sbx)
  return sbx
}
async function kill(sbx) {
  await sbx.kill()
  live.delete(sbx)
}
// Sandboxes a failed test left behind.
after(async () => {
  await Promise.allSettled([...live].map((b) => b.kill()))
})

describe(`@e2b/code-interpreter JS SDK ${sdkVersion}`, { concurrency: 4 }, () => {
  test('create uses the default template code-interpreter-v1', async () => {
    assert.equal(Sandbox.defaultTemplate, 'code-interpreter-v1')
    const sbx = await newSandbox()
    const info = await sbx.getInfo()
    assert.equal(info.templateId, 'code-interpreter-v1')
    // The envd side works as in any sandbox.
    const r = await sbx.commands.run('echo hi')
    assert.equal(r.stdout, 'hi\n')
    await kill(sbx)
  })

  test('runCode python: stdout, the last expression, execution count, state between runs', async () => {
    const sbx = await newSandbox()
    const ex = await sbx.runCode('x = 40\nprint("hello")\nx + 2')
    assert.equal(ex.error, undefined)
    assert.deepEqual(ex.logs.stdout, ['hello\n'])
    assert.deepEqual(ex.logs.stderr, [])
    assert.equal(ex.text, '42')
    assert.equal(ex.results.length, 1)
    assert.equal(ex.results[0].isMainResult, true)
    assert.equal(ex.executionCount, 1)
    const again = await sbx.runCode('x * 2')
    assert.equal(again.text, '80')
    assert.equal(again.executionCount, 2)
    // A string result comes without its quotes, as from E2B.
    assert.equal((await sbx.runCode('"a" + "b"')).text, 'ab')
    // The default context is python.
    const ctxs = await sbx.listCodeContexts()
    assert.equal(ctxs.length, 1)
    assert.equal(ctxs[0].language, 'python')
    assert.equal(ctxs[0].cwd, '/home/user')
    await kill(sbx)
  })

  test('runCode python: an exception is the error, with name, value and traceback', async () => {
    const sbx = await newSandbox()
    const errors = []
    const ex = await sbx.runCode('print("before")\ndef f():\n    return 1 / 0\nf()', { onError: (e) => errors.push(e) })
    assert.deepEqual(ex.logs.stdout, ['before\n'])
    assert.equal(ex.error.name, 'ZeroDivisionError')
    assert.equal(ex.error.value, 'division by zero')
    assert.match(ex.error.traceback, /ZeroDivisionError/)
    assert.match(ex.error.traceback, /in f/)
    assert.equal(errors.length, 1)
    assert.equal(ex.results.length, 0)
    // The context lives on.
    assert.equal((await sbx.runCode('1 + 1')).text, '2')
    await kill(sbx)
  })

  test('runCode python: pandas DataFrame html and data, matplotlib PNG', async (t) => {
    const sbx = await newSandbox()
    const probe = await sbx.runCode('import pandas, matplotlib')
    if (probe.error) {
      await kill(sbx)
      const msg = `python3-pandas and python3-matplotlib are not installed on the host (${probe.error.name}: ${probe.error.value})`
      if (process.env.CI === 'true') assert.fail(msg + ', and CI=true')
      t.skip(msg)
      return
    }
    const results = []
    const df = await sbx.runCode("import pandas as pd\ndf = pd.DataFrame({'a': [1, 2], 'b': ['x', 'y']})\ndf", { onResult: (r) => results.push(r) })
    assert.equal(df.error, undefined)
    const r = df.results[0]
    assert.equal(r.isMainResult, true)
    assert.match(r.html, /<table/)
    assert.match(r.text, /a\s+b/)
    assert.deepEqual(r.data, { a: [1, 2], b: ['x', 'y'] })
    assert.ok(r.formats().includes('html') && r.formats().includes('data'))
    assert.equal(results.length, 1)
    const fig = await sbx.runCode("import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.title('t')\nprint('drawn')")
    assert.equal(fig.error, undefined)
    assert.deepEqual(fig.logs.stdout, ['drawn\n'])
    const png = fig.results.find((x) => x.png)
    assert.ok(png, 'a result with png')
    assert.equal(png.isMainResult, false)
    assert.equal(Buffer.from(png.png, 'base64').subarray(1, 4).toString(), 'PNG')
    await kill(sbx)
  })

  test('runCode javascript: console output, the last expression, state between runs', async () => {
    const sbx = await newSandbox()
    const ex = await sbx.runCode('const greet = (n) => `hi ${n}`; console.log(greet("js")); 6 * 7', { language: 'javascript' })
    assert.equal(ex.error, undefined)
    assert.deepEqual(ex.logs.stdout, ['hi js\n'])
    assert.equal(ex.text, '42')
    // "js" names the same default context: the function is still there.
    assert.equal((await sbx.runCode('greet("again")', { language: 'js' })).text, 'hi again')
    const bad = await sbx.runCode('null.x', { language: 'javascript' })
    assert.equal(bad.error.name, 'TypeError')
    assert.match(bad.error.value, /null/)
    // The python default context is separate.
    assert.equal((await sbx.runCode('"greet" in globals()')).text, 'False')
    await kill(sbx)
  })

  test('code contexts: create, run in, list, restart, remove', async () => {
    const sbx = await newSandbox()
    const ctx = await sbx.createCodeContext({ language: 'python', cwd: '/tmp' })
    assert.ok(ctx.id)
    assert.equal(ctx.language, 'python')
    assert.equal(ctx.cwd, '/tmp')
    assert.equal((await sbx.runCode('import os\nv = 7\nos.getcwd()', { context: ctx })).text, '/tmp')
    assert.equal((await sbx.runCode('v', { context: ctx })).text, '7')
    // The default context does not see the variable.
    assert.equal((await sbx.runCode('"v" in globals()')).text, 'False')
    const js = await sbx.createCodeContext({ language: 'javascript' })
    assert.equal(js.language, 'javascript')
    assert.equal(js.cwd, '/home/user')
    const ids = (await sbx.listCodeContexts()).map((c) => c.id)
    assert.ok(ids.includes(ctx.id) && ids.includes(js.id), `${ids} has both`)
    await sbx.restartCodeContext(ctx)
    const gone = await sbx.runCode('v', { context: ctx })
    assert.equal(gone.error.name, 'NameError')
    await sbx.removeCodeContext(ctx.id)
    await sbx.removeCodeContext(js)
    const left = (await sbx.listCodeContexts()).map((c) => c.id)
    assert.ok(!left.includes(ctx.id) && !left.includes(js.id))
    // (A short requestTimeoutMs: the SDK leaves that timer running when
    // the request fails, which would hold the test process open.)
    await assert.rejects(sbx.runCode('1', { context: ctx, requestTimeoutMs: 5000 }), NotFoundError)
    await assert.rejects(sbx.restartCodeContext(ctx), NotFoundError)
    await assert.rejects(sbx.removeCodeContext('nope'), NotFoundError)
    await assert.rejects(sbx.runCode('1', { context: ctx, language: 'python' }), /context or language/)
    await kill(sbx)
  })

  test('onStdout and onStderr stream while the code runs', async () => {
    const sbx = await newSandbox()
    const seen = []
    const t0 = Date.now()
    const ex = await sbx.runCode(
      'import sys, time\nprint("first", flush=True)\nprint("warn", file=sys.stderr, flush=True)\ntime.sleep(1.5)\nprint("second")',
      {
        onStdout: (m) => seen.push({ kind: 'out', line: m.line, at: Date.now() - t0, error: m.error }),
        onStderr: (m) => seen.push({ kind: 'err', line: m.line, at: Date.now() - t0, error: m.error }),
      },
    )
    const done = Date.now() - t0
    assert.deepEqual(seen.map((s) => [s.kind, s.line, s.error]), [['out', 'first\n', false], ['err', 'warn\n', true], ['out', 'second\n', false]])
    assert.ok(done - seen[0].at >= 1000, `the first line came ${done - seen[0].at} ms before the end, want ≥ 1000`)
    assert.deepEqual(ex.logs.stdout, ['first\n', 'second\n'])
    assert.deepEqual(ex.logs.stderr, ['warn\n'])
    await kill(sbx)
  })

  test('envs: per run, then gone; the sandbox envs are seen', async () => {
    const sbx = await newSandbox({ envs: { FROM_SANDBOX: 'sbx' } })
    const code = 'import os\n(os.environ.get("FOO"), os.environ.get("FROM_SANDBOX"))'
    assert.equal((await sbx.runCode(code, { envs: { FOO: 'bar' } })).text, "('bar', 'sbx')")
    assert.equal((await sbx.runCode(code)).text, "(None, 'sbx')")
    const js = await sbx.runCode('[process.env.FOO, process.env.FROM_SANDBOX].join(",")', { language: 'javascript', envs: { FOO: 'jsbar' } })
    assert.equal(js.text, 'jsbar,sbx')
    assert.equal((await sbx.runCode('String(process.env.FOO)', { language: 'javascript' })).text, 'undefined')
    await kill(sbx)
  })

  test('a timeout ends the run with TimeoutError; the context stays usable', async () => {
    const sbx = await newSandbox()
    await sbx.runCode('n = 5')
    const t0 = Date.now()
    await assert.rejects(sbx.runCode('import time\ntime.sleep(60)', { timeoutMs: 1500 }), TimeoutError)
    assert.ok(Date.now() - t0 < 10_000)
    // The run was interrupted: the next one does not wait for the sleep.
    const t1 = Date.now()
    const ex = await sbx.runCode('n + 1', { timeoutMs: 20_000 })
    assert.equal(ex.text, '6')
    assert.ok(Date.now() - t1 < 15_000, `the next run took ${Date.now() - t1} ms`)
    await kill(sbx)
  })

  test('a kernel that exits is restarted on the next run', async () => {
    const sbx = await newSandbox()
    const ex = await sbx.runCode('import os\nos._exit(3)')
    assert.equal(ex.error?.name, 'KernelDied')
    assert.equal((await sbx.runCode('21 * 2')).text, '42')
    await kill(sbx)
  })

  test('a killed sandbox answers TimeoutError, as from E2B', async () => {
    const sbx = await newSandbox()
    await sbx.runCode('1')
    await kill(sbx)
    await assert.rejects(sbx.runCode('1', { requestTimeoutMs: 5000 }), TimeoutError)
  })
})
