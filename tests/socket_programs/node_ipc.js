// Node.js (libuv: epoll, pipes, socketpairs) over the shim: a child_process.fork IPC channel
// (300 JSON messages of up to 100 KB each way), a net server on a unix socket echoing 50
// concurrent connections of up to 300 KB, a spawned shell pipeline, execSync, and a worker
// thread. Usage: node node_ipc.js DIR (where the socket goes). Prints one line per part.
const cp = require('child_process'), net = require('net'), path = require('path'), fs = require('fs');
const { Worker } = require('worker_threads');
const crypto = require('crypto');
if (process.argv[2] === 'child') {
  process.on('message', m => {
    if (m === 'end') process.exit(0);
    process.send({ n: m.n, len: m.s.length, h: crypto.createHash('md5').update(m.s).digest('hex') });
  });
  return;
}
const dir = fs.mkdtempSync(path.join(process.argv[2], 'node-'));

async function ipc() {
  const c = cp.fork(__filename, ['child']);
  let sum = 0, good = 0;
  for (let i = 0; i < 300; i++) {
    const s = String.fromCharCode(97 + i % 26).repeat(1 + (i * 7919) % 100000);
    const r = await new Promise(res => { c.once('message', res); c.send({ n: i, s }); });
    sum += r.len;
    good += r.n === i && r.h === crypto.createHash('md5').update(s).digest('hex');
  }
  c.send('end');
  await new Promise(r => c.on('exit', r));
  return [sum, good];
}

async function unixEcho() {
  const sock = path.join(dir, 's.sock');
  const srv = net.createServer(c => c.pipe(c));
  await new Promise(r => srv.listen(sock, r));
  let total = 0, good = 0;
  await Promise.all([...Array(50).keys()].map(i => new Promise((res, rej) => {
    const c = net.connect(sock);
    const sent = Buffer.alloc(1 + (i * 104729) % 300000, i);
    const back = [];
    let got = 0;
    c.on('data', d => {
      back.push(d);
      got += d.length;
      if (got === sent.length) {
        total += got;
        good += Buffer.concat(back).equals(sent);
        c.end();
      }
    });
    c.on('close', res);
    c.on('error', rej);
    c.write(sent);
  })));
  await new Promise(r => srv.close(r));
  return [total, good];
}

function spawnPipe() {
  return new Promise(res => {
    const p = cp.spawn('sh', ['-c', 'head -c 2000000 /dev/zero | wc -c; seq 1 20000 | sort -rn | head -1 >&2']);
    let o = '', e = '';
    p.stdout.on('data', d => o += d);
    p.stderr.on('data', d => e += d);
    p.on('close', code => res([o.trim(), e.trim(), code]));
  });
}

function worker() {
  return new Promise(res => {
    const w = new Worker('const { parentPort } = require("worker_threads"); parentPort.on("message", m => parentPort.postMessage(m * 2));', { eval: true });
    let s = 0, n = 0;
    w.on('message', m => { s += m; if (++n === 1000) { w.terminate(); res(s); } });
    for (let i = 0; i < 1000; i++) w.postMessage(i);
  });
}

(async () => {
  console.log('ipc', JSON.stringify(await ipc()));
  console.log('unix', JSON.stringify(await unixEcho()));
  console.log('spawn', JSON.stringify(await spawnPipe()));
  console.log('execSync', cp.execSync('echo hi | tr a-z A-Z').toString().trim());
  console.log('worker', await worker());
  fs.rmSync(dir, { recursive: true });
})();
