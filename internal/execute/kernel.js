// SoulBox code-context kernel for JavaScript (Node.js); the protocol is
// the Python kernel's (see kernel.py). Code runs in the main realm, so
// top-level declarations persist between executions; the value of the
// last expression (awaited when it is a promise) is the result.
'use strict';
const vm = require('vm');
const util = require('util');
const fs = require('fs');
const readline = require('readline');

const protoWrite = (s) => fs.writeSync(1, s);
let cur = '';
let count = 0;
function send(msg) {
  msg.id = cur;
  protoWrite(JSON.stringify(msg) + '\n');
}
const fmt = (args) => util.formatWithOptions({ colors: false }, ...args) + '\n';
for (const m of ['log', 'info', 'debug']) console[m] = (...a) => send({ type: 'stdout', text: fmt(a) });
for (const m of ['error', 'warn', 'trace']) console[m] = (...a) => send({ type: 'stderr', text: fmt(a) });
process.stdout.write = (chunk) => { send({ type: 'stdout', text: String(chunk) }); return true; };
process.stderr.write = (chunk) => { send({ type: 'stderr', text: String(chunk) }); return true; };
process.on('SIGINT', () => {});
globalThis.require = require;
globalThis.module = module;

function error(e) {
  if (e instanceof Error) {
    send({ type: 'error', name: e.name, value: e.message, traceback: String(e.stack || e) });
  } else {
    send({ type: 'error', name: 'Error', value: util.inspect(e), traceback: util.inspect(e) });
  }
}

async function run(code) {
  count++;
  try {
    let v = new vm.Script(code, { filename: '<cell>' }).runInThisContext({ breakOnSigint: true, displayErrors: false });
    if (v && typeof v.then === 'function') v = await v;
    if (v !== undefined) {
      globalThis._ = v;
      send({ type: 'result', data: { 'text/plain': util.inspect(v, { colors: false, depth: 4 }) }, main: true });
    }
  } catch (e) {
    error(e);
  }
}

process.on('uncaughtException', (e) => error(e));
process.on('unhandledRejection', (e) => error(e));

const rl = readline.createInterface({ input: fs.createReadStream(null, { fd: 0 }), crlfDelay: Infinity });
const queue = [];
let busy = false;
async function pump() {
  if (busy) return;
  busy = true;
  while (queue.length) {
    let req;
    try { req = JSON.parse(queue.shift()); } catch { continue; }
    cur = String(req.id || '');
    if (req.type === 'execute') {
      try { if (req.cwd) process.chdir(req.cwd); } catch (e) { error(e); }
      // env (optional) is set for this execution only.
      const saved = {};
      for (const [k, v] of Object.entries(req.env || {})) {
        saved[k] = Object.prototype.hasOwnProperty.call(process.env, k) ? process.env[k] : undefined;
        process.env[k] = String(v);
      }
      try {
        await run(String(req.code || ''));
      } finally {
        for (const [k, v] of Object.entries(saved)) {
          if (v === undefined) delete process.env[k]; else process.env[k] = v;
        }
      }
    }
    send({ type: 'end', execution_count: count });
  }
  busy = false;
}
rl.on('line', (line) => { queue.push(line); pump(); });
rl.on('close', () => process.exit(0));
