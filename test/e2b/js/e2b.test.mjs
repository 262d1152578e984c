// Drives the unmodified E2B JS SDK against a SoulBox daemon.
//
// Run from an SDK version directory (test/e2b/js/<version>, where `npm ci`
// installed that exact version) with the daemon's addresses and key in
// E2B_API_URL, E2B_SANDBOX_URL and E2B_API_KEY:
//
//   cd test/e2b/js/2.51.0 && node --test ../e2b.test.mjs
//
// Plain JavaScript with node:test, so there is no build step. Every test
// makes its own sandboxes and kills them, so the tests run concurrently.
import { after, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { pathToFileURL } from 'node:url'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

for (const v of ['E2B_API_URL', 'E2B_SANDBOX_URL', 'E2B_API_KEY']) {
  if (!process.env[v]) throw new Error(`${v} must be set (test/e2b/run.sh sets it)`)
}

// Import the SDK installed in the current directory, not one next to this file.
const require = createRequire(path.join(process.cwd(), 'package.json'))
const sdkVersion = require('e2b/package.json').version
const e2b = await import(pathToFileURL(require.resolve('e2b')).href)
const { Sandbox, CommandExitError, TimeoutError, NotFoundError } = e2b
const SandboxNotFoundError = e2b.SandboxNotFoundError ?? NotFoundError

const live = new Set()
async function newSandbox(opts = {}) {
  const sbx = await Sandbox.create({ timeoutMs: 5 * 60_000, ...opts })
  live.add(sbx)
  return sbx
}
async function killAll(...boxes) {
  await Promise.all(boxes.map(async (b) => { await b.kill(); live.delete(b) }))
}
// Sandboxes a failed test left behind.
after(async () => {
  await Promise.allSettled([...live].map((b) => b.kill()))
})

const run = (id) => `${id}-${Date.now()}-${Math.random().toString(16).slice(2, 8)}`

async function until(what, cond, timeoutMs = 10_000) {
  const end = Date.now() + timeoutMs
  for (;;) {
    if (await cond()) return
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(50)
  }
}

describe(`e2b JS SDK ${sdkVersion}`, { concurrency: 6 }, () => {
  test('create with metadata and envs; getInfo; isRunning; kill', async () => {
    const tag = run('meta')
    const sbx = await newSandbox({ metadata: { suite: tag, kind: 'info' }, envs: { GREETING: 'hello from envs' } })
    assert.match(sbx.sandboxId, /^[a-z0-9]+$/)
    const info = await sbx.getInfo()
    assert.equal(info.sandboxId, sbx.sandboxId)
    assert.deepEqual(info.metadata, { suite: tag, kind: 'info' })
    assert.ok(info.startedAt instanceof Date && info.endAt instanceof Date)
    assert.ok(info.endAt > info.startedAt)
    const r = await sbx.commands.run('echo "$GREETING"')
    assert.equal(r.stdout, 'hello from envs\n')
    assert.equal(await sbx.isRunning(), true)
    await killAll(sbx)
    assert.equal(await sbx.isRunning(), false)
  })

  test('commands.run: foreground, envs, cwd, user, callbacks', async () => {
    const sbx = await newSandbox()
    const out = []
    const r = await sbx.commands.run('echo out; echo err >&2; echo "$A-$B"; pwd; id -un', {
      envs: { A: 'x', B: 'y' }, cwd: '/tmp', onStdout: (d) => out.push(d),
    })
    assert.equal(r.exitCode, 0)
    assert.equal(r.stdout, 'out\nx-y\n/tmp\nuser\n')
    assert.equal(r.stderr, 'err\n')
    assert.equal(out.join(''), r.stdout)
    const root = await sbx.commands.run('id -u', { user: 'root' })
    assert.equal(root.stdout.trim(), '0')
    // Without stdin (envd 0.3.0), cat reads end of file at once.
    assert.equal((await sbx.commands.run('cat', { stdin: false })).stdout, '')
    const home = await sbx.commands.run('pwd; echo $HOME')
    assert.equal(home.stdout, '/home/user\n/home/user\n')
    await killAll(sbx)
  })

  test('commands.run: non-zero exit is CommandExitError', async () => {
    const sbx = await newSandbox()
    await assert.rejects(sbx.commands.run('echo bad >&2; exit 3'), (err) => {
      assert.ok(err instanceof CommandExitError, `got ${err}`)
      assert.equal(err.exitCode, 3)
      assert.equal(err.stderr, 'bad\n')
      return true
    })
    await killAll(sbx)
  })

  test('commands.run: command timeout is TimeoutError', async () => {
    const sbx = await newSandbox()
    const t0 = Date.now()
    await assert.rejects(sbx.commands.run('sleep 30', { timeoutMs: 1000 }), (err) => {
      assert.ok(err instanceof TimeoutError, `got ${err}`)
      return true
    })
    assert.ok(Date.now() - t0 < 10_000)
    // SoulBox (unlike envd) ends only the stream at the timeout: the
    // command keeps running, listed and killable.
    const left = (await sbx.commands.list()).find((p) => p.args.includes('sleep 30'))
    assert.ok(left, 'the timed-out command is still running')
    assert.equal(await sbx.commands.kill(left.pid), true)
    await until('the killed command to be gone', async () =>
      (await sbx.commands.list()).every((p) => !p.args.includes('sleep 30')))
    await killAll(sbx)
  })

  test('commands: background, wait, stdin, closeStdin, list, connect, kill', async () => {
    const sbx = await newSandbox()
    // stdin: cat echoes what it is sent and exits at EOF.
    const cat = await sbx.commands.run('cat', { background: true, stdin: true })
    await sbx.commands.sendStdin(cat.pid, 'line one\n')
    await sbx.commands.sendStdin(cat.pid, 'line two\n')
    await sbx.commands.closeStdin(cat.pid)
    const catRes = await cat.wait()
    assert.equal(catRes.exitCode, 0)
    assert.equal(catRes.stdout, 'line one\nline two\n')

    // A background process, listed, re-attached by pid, then killed.
    const bg = await sbx.commands.run('echo started; sleep 600', { background: true, envs: { MARK: 'bg' } })
    assert.ok(bg.pid > 0)
    await until('output of the background process', () => bg.stdout.includes('started'))
    const procs = await sbx.commands.list()
    const mine = procs.find((p) => p.pid === bg.pid)
    assert.ok(mine, `pid ${bg.pid} not in ${JSON.stringify(procs)}`)
    assert.equal(mine.cmd, '/bin/bash')
    const seen = []
    const again = await sbx.commands.connect(bg.pid, { onStdout: (d) => seen.push(d) })
    assert.equal(again.pid, bg.pid)
    assert.equal(await sbx.commands.kill(bg.pid), true)
    await assert.rejects(again.wait(), (err) => {
      assert.ok(err instanceof CommandExitError, `got ${err}`)
      assert.notEqual(err.exitCode, 0)
      return true
    })
    await assert.rejects(bg.wait(), CommandExitError)
    assert.ok((await sbx.commands.list()).every((p) => p.pid !== bg.pid))
    // Killing what is gone reports false.
    assert.equal(await sbx.commands.kill(bg.pid), false)

    // handle.kill on a fresh background process.
    const h = await sbx.commands.run('sleep 600', { background: true })
    assert.equal(await h.kill(), true)
    await assert.rejects(h.wait(), CommandExitError)

    // wait for a background process that succeeds.
    const ok = await sbx.commands.run('sleep 0.2; echo done', { background: true })
    const okRes = await ok.wait()
    assert.equal(okRes.stdout, 'done\n')
    await killAll(sbx)
  })

  test('files: write, read, list, exists, getInfo, makeDir, rename, remove', async () => {
    const sbx = await newSandbox()
    const dir = '/home/user/work'
    assert.equal(await sbx.files.makeDir(dir), true)
    assert.equal(await sbx.files.makeDir(dir), false)
    const w = await sbx.files.write(`${dir}/a.txt`, 'alpha')
    assert.equal(w.path, `${dir}/a.txt`)
    assert.equal(w.name, 'a.txt')
    await sbx.files.write(`${dir}/bin.dat`, new Uint8Array([0, 1, 2, 255]).buffer)
    const multi = await sbx.files.write([
      { path: `${dir}/m1.txt`, data: 'one' },
      { path: `${dir}/sub/m2.txt`, data: new Blob(['two']) },
    ])
    assert.equal(multi.length, 2)
    assert.equal(await sbx.files.read(`${dir}/a.txt`), 'alpha')
    assert.equal(await sbx.files.read(`${dir}/sub/m2.txt`), 'two')
    const bytes = await sbx.files.read(`${dir}/bin.dat`, { format: 'bytes' })
    assert.deepEqual([...bytes], [0, 1, 2, 255])
    const blob = await sbx.files.read(`${dir}/m1.txt`, { format: 'blob' })
    assert.equal(await blob.text(), 'one')

    const names = (await sbx.files.list(dir)).map((e) => e.name).sort()
    assert.deepEqual(names, ['a.txt', 'bin.dat', 'm1.txt', 'sub'])
    const entry = (await sbx.files.list(dir)).find((e) => e.name === 'sub')
    assert.equal(entry.type, 'dir')

    assert.equal(await sbx.files.exists(`${dir}/a.txt`), true)
    assert.equal(await sbx.files.exists(`${dir}/nope`), false)
    const info = await sbx.files.getInfo(`${dir}/a.txt`)
    assert.equal(info.type, 'file')
    assert.equal(info.size, 5)
    assert.equal(info.name, 'a.txt')

    const moved = await sbx.files.rename(`${dir}/a.txt`, `${dir}/b.txt`)
    assert.equal(moved.path, `${dir}/b.txt`)
    assert.equal(await sbx.files.exists(`${dir}/a.txt`), false)
    assert.equal(await sbx.files.read(`${dir}/b.txt`), 'alpha')
    await sbx.files.remove(`${dir}/b.txt`)
    assert.equal(await sbx.files.exists(`${dir}/b.txt`), false)
    await assert.rejects(sbx.files.read(`${dir}/b.txt`), NotFoundError)
    // Written as the sandbox user.
    const owner = await sbx.commands.run(`stat -c %U ${dir}/m1.txt`)
    assert.equal(owner.stdout.trim(), 'user')
    await killAll(sbx)
  })

  test('files.watchDir reports create, write, remove', async () => {
    const sbx = await newSandbox()
    const dir = '/home/user/watched'
    await sbx.files.makeDir(dir)
    const events = []
    const handle = await sbx.files.watchDir(dir, (e) => events.push(e), { recursive: true })
    await sbx.files.write(`${dir}/f.txt`, 'x')
    await sbx.commands.run(`mkdir ${dir}/d && echo y > ${dir}/d/g.txt && rm ${dir}/f.txt`)
    await until('watch events', () =>
      events.some((e) => e.name === 'f.txt' && e.type === 'remove') &&
      events.some((e) => e.name === 'd/g.txt' || e.name.endsWith('g.txt')))
    assert.ok(events.some((e) => e.name === 'f.txt' && (e.type === 'create' || e.type === 'write')), JSON.stringify(events))
    await handle.stop()
    await killAll(sbx)
  })

  test('signed upload and download URLs (secure sandbox), with expiry', async () => {
    const sbx = await newSandbox({ secure: true })
    const file = '/home/user/signed.txt'
    const up = await sbx.uploadUrl(file, { useSignatureExpiration: 60 })
    assert.match(up, /signature=v1_/)
    assert.match(up, /signature_expiration=\d+/)
    const form = new FormData()
    form.append('file', new Blob(['uploaded through a signed URL']), 'signed.txt')
    const put = await fetch(up, { method: 'POST', body: form })
    assert.equal(put.status, 200, await put.clone().text())
    assert.equal(await sbx.files.read(file), 'uploaded through a signed URL')

    const down = await sbx.downloadUrl(file, { useSignatureExpiration: 60 })
    const got = await fetch(down)
    assert.equal(got.status, 200)
    assert.equal(await got.text(), 'uploaded through a signed URL')

    // Without expiry too.
    const forever = await fetch(await sbx.downloadUrl(file))
    assert.equal(await forever.text(), 'uploaded through a signed URL')

    // A signature for another path, a tampered one and an expired one fail.
    const other = new URL(down)
    other.searchParams.set('path', '/etc/passwd')
    assert.equal((await fetch(other)).status, 401)
    const tampered = new URL(down)
    tampered.searchParams.set('signature', 'v1_AAAA')
    assert.equal((await fetch(tampered)).status, 401)
    const short = await sbx.downloadUrl(file, { useSignatureExpiration: 1 })
    await sleep(2100)
    assert.equal((await fetch(short)).status, 401)
    // The unsigned URL needs the access token.
    const bare = new URL(down)
    bare.searchParams.delete('signature')
    bare.searchParams.delete('signature_expiration')
    assert.equal((await fetch(bare)).status, 401)
    await killAll(sbx)
  })

  test('pty: create, sendInput, resize, kill', async () => {
    const sbx = await newSandbox()
    const dec = new TextDecoder()
    let out = ''
    const term = await sbx.pty.create({ cols: 80, rows: 24, onData: (d) => { out += dec.decode(d) }, envs: { PS1: '$ ' } })
    assert.ok(term.pid > 0)
    const enc = new TextEncoder()
    await sbx.pty.sendInput(term.pid, enc.encode('stty size; echo "pty-$((6*7))"\n'))
    await until('pty output', () => out.includes('pty-42'))
    assert.match(out, /24 80/)
    await sbx.pty.resize(term.pid, { cols: 100, rows: 30 })
    await sbx.pty.sendInput(term.pid, enc.encode('stty size\n'))
    await until('resized pty', () => out.includes('30 100'))
    assert.equal(await sbx.pty.kill(term.pid), true)
    const res = await term.wait().catch((e) => e)
    assert.ok(res instanceof CommandExitError || res.exitCode !== 0, `got ${res}`)
    await killAll(sbx)
  })

  test('getMetrics', async () => {
    const sbx = await newSandbox()
    await sbx.commands.run('head -c 1000000 /dev/urandom | sha256sum')
    let metrics = []
    await until('metrics', async () => (metrics = await sbx.getMetrics()).length > 0)
    const m = metrics.at(-1)
    assert.ok(m.cpuCount >= 1 && m.memTotal > 0 && m.memUsed > 0, JSON.stringify(m))
    await killAll(sbx)
  })

  test('features SoulBox lacks are refused, not ignored', async () => {
    // SDKs too old to send these options make an ordinary sandbox.
    const made = await Sandbox.create({ volumeMounts: { '/data': 'vol' } }).catch((err) => err)
    if (made instanceof Sandbox) await made.kill()
    else assert.match(String(made), /400: not supported by SoulBox: volumeMounts/)
    const listed = await Sandbox.list({ query: { template: 'base' } }).nextItems().catch((err) => err)
    if (!Array.isArray(listed)) assert.match(String(listed), /400: not supported by SoulBox: the template filter/)
  })

  test('setTimeout extends and shortens the sandbox life', async () => {
    const sbx = await newSandbox({ timeoutMs: 60_000 })
    const before = (await sbx.getInfo()).endAt
    await sbx.setTimeout(10 * 60_000)
    const later = (await sbx.getInfo()).endAt
    assert.ok(later - before > 8 * 60_000, `${before} -> ${later}`)
    await sbx.setTimeout(2_000)
    await until('the sandbox to expire', async () => !(await sbx.isRunning()), 15_000)
    live.delete(sbx)
    await assert.rejects(Sandbox.getInfo(sbx.sandboxId), NotFoundError)
  })

  test('Sandbox.list with a metadata filter, paginated', async () => {
    const tag = run('list')
    const boxes = await Promise.all([0, 1, 2].map((i) => newSandbox({ metadata: { suite: tag, i: String(i) } })))
    const other = await newSandbox({ metadata: { suite: `${tag}-other` } })
    const pager = Sandbox.list({ query: { metadata: { suite: tag } }, limit: 2 })
    const seen = []
    while (pager.hasNext) {
      const items = await pager.nextItems()
      assert.ok(items.length <= 2)
      seen.push(...items)
    }
    assert.deepEqual(seen.map((s) => s.sandboxId).sort(), boxes.map((b) => b.sandboxId).sort())
    for (const s of seen) {
      assert.equal(s.metadata.suite, tag)
      assert.equal(s.state, 'running')
      assert.ok(s.startedAt instanceof Date)
    }
    const one = await Sandbox.list({ query: { metadata: { suite: tag, i: '1' } } }).nextItems()
    assert.deepEqual(one.map((s) => s.sandboxId), [boxes[1].sandboxId])
    await killAll(...boxes, other)
  })

  test('pause, then connect: files and a running process preserved', async () => {
    const sbx = await newSandbox({ metadata: { kind: 'pause' } })
    await sbx.files.write('/home/user/keep.txt', 'kept')
    const bg = await sbx.commands.run('i=0; while :; do i=$((i+1)); echo $i > /tmp/counter; sleep 0.1; done', { background: true })
    await until('the counter', async () => (await sbx.files.exists('/tmp/counter')))
    const c0 = Number((await sbx.files.read('/tmp/counter')).trim())
    assert.equal(await sbx.pause(), true)
    const listed = await Sandbox.list({ query: { metadata: { kind: 'pause' }, state: ['paused'] } }).nextItems()
    assert.ok(listed.some((s) => s.sandboxId === sbx.sandboxId && s.state === 'paused'))
    assert.equal(await sbx.isRunning(), false)
    const back = await Sandbox.connect(sbx.sandboxId)
    live.add(back)
    assert.equal(await back.isRunning(), true)
    const c1 = Number((await back.files.read('/tmp/counter')).trim())
    assert.ok(c1 >= c0, `counter went from ${c0} to ${c1}: the process restarted`)
    assert.equal(await back.files.read('/home/user/keep.txt'), 'kept')
    const procs = await back.commands.list()
    assert.ok(procs.some((p) => p.pid === bg.pid), JSON.stringify(procs))
    await until('the counter to move on', async () => Number((await back.files.read('/tmp/counter')).trim()) > c1)
    await back.commands.kill(bg.pid)
    await killAll(back)
    live.delete(sbx)
  })

  test('unknown sandbox: connect, getInfo, kill', async () => {
    await assert.rejects(Sandbox.connect('doesnotexist0'), (err) => {
      assert.ok(err instanceof NotFoundError, `got ${err}`)
      assert.ok(err instanceof SandboxNotFoundError, `got ${err}`)
      return true
    })
    await assert.rejects(Sandbox.getInfo('doesnotexist0'), NotFoundError)
    assert.equal(await Sandbox.kill('doesnotexist0'), false)
  })

  test('100 concurrent sandboxes from one SDK process', async () => {
    const n = 100
    const results = await Promise.allSettled(Array.from({ length: n }, async (_, i) => {
      const sbx = await newSandbox({ metadata: { load: String(i) } })
      try {
        const r = await sbx.commands.run(`echo sandbox-${i}`)
        assert.equal(r.stdout, `sandbox-${i}\n`)
        await sbx.files.write('/home/user/i.txt', String(i))
        assert.equal(await sbx.files.read('/home/user/i.txt'), String(i))
      } finally {
        await killAll(sbx)
      }
    }))
    const failed = results.filter((r) => r.status === 'rejected')
    assert.equal(failed.length, 0, failed.slice(0, 3).map((r) => String(r.reason)).join('\n'))
  })
})
