import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { UserError } from '../../errors.js';
import { pythonEnv, pythonPath } from '../../cli/python.js';

/** A message of the worker (python/lesa_py/lesa_torch.py's protocol), with its payload if it has one. */
export interface WorkerMessage {
  event: string;
  data?: Float32Array;
  [k: string]: unknown;
}

export interface Hello { torch: string; device: 'cuda' | 'cpu'; gpu: string | null; memory: number | null }

/**
 * One `python -m lesa_py.lesa_torch` process for a whole run, spoken to over stdin/stdout: JSON
 * header lines, each followed by the raw float32 payload of `bytes` bytes it announces. Progress
 * and phase messages go to `listen` as they arrive (while TS is still streaming layers in);
 * the others queue for next().
 */
export class TorchWorker {
  listen: (m: WorkerMessage) => void = () => {};
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly queue: WorkerMessage[] = [];
  private waiting: { resolve(m: WorkerMessage): void; reject(e: Error): void } | undefined;
  private failed: Error | undefined;
  private stderr = '';
  private lineParts: Buffer[] = [];
  private payload: { header: WorkerMessage; bytes: Uint8Array; got: number } | undefined;
  readonly exited: Promise<void>;

  private constructor(device: string, threads: number, private readonly python: string) {
    this.child = spawn(python, ['-m', 'lesa_py.lesa_torch', '--device', device, '--threads', String(threads)], { env: pythonEnv(), stdio: 'pipe' });
    this.child.stdout.on('data', (chunk: Buffer) => this.receive(chunk));
    this.child.stderr.on('data', (chunk: Buffer) => { this.stderr = (this.stderr + chunk.toString()).slice(-8192); });
    this.child.stdin.on('error', () => {}); // EPIPE when the worker died: its own message says why
    this.exited = new Promise((resolve) => {
      this.child.on('error', (e) => { this.fail(new UserError(`cannot start ${python}: ${e.message}`)); resolve(); });
      this.child.on('close', (code, signal) => {
        const last = this.stderr.trim().split('\n').pop() ?? '';
        this.fail(new UserError(`the PyTorch worker (${python} -m lesa_py.lesa_torch) stopped (${signal ?? `exit status ${code}`})${last ? `: ${last}` : ''}`));
        resolve();
      });
    });
  }

  /** Starts the worker and waits for its hello (the torch version, the device it took, the GPU's name and memory). */
  static async start(device: 'cuda' | 'cpu' | 'auto', threads: number): Promise<{ worker: TorchWorker; hello: Hello }> {
    const worker = new TorchWorker(device, threads, pythonPath());
    const m = await worker.next();
    if (m.event !== 'hello') throw new Error(`internal: the PyTorch worker said ${m.event} before hello`);
    return { worker, hello: m as unknown as Hello };
  }

  /** The next queued message (layer, done); rejects with the worker's own error line when it failed. */
  next(): Promise<WorkerMessage> {
    const m = this.queue.shift();
    if (m) return Promise.resolve(m);
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => { this.waiting = { resolve, reject }; });
  }

  send(header: Record<string, unknown>): Promise<void> {
    return this.write(Buffer.from(`${JSON.stringify(header)}\n`));
  }

  async write(data: Uint8Array | Float32Array): Promise<void> {
    if (this.failed) throw this.failed;
    const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    if (this.child.stdin.write(buf)) return;
    await new Promise<void>((resolve, reject) => {
      const check = setInterval(() => { if (this.failed) { clearInterval(check); reject(this.failed); } }, 200);
      this.child.stdin.once('drain', () => { clearInterval(check); resolve(); });
    });
  }

  /** Asks the worker to exit and waits for it (killing it if it does not go within 10 s). */
  async close(): Promise<void> {
    if (!this.failed) this.child.stdin.end(`${JSON.stringify({ op: 'exit' })}\n`);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(timer);
  }

  /** Stops the worker now (a failure on the TS side). */
  async kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.exited;
  }

  private fail(e: Error): void {
    if (this.failed) return;
    this.failed = e;
    const w = this.waiting;
    this.waiting = undefined;
    w?.reject(e);
  }

  private deliver(m: WorkerMessage): void {
    if (m.event === 'error') {
      const msg = String(m.message);
      this.fail(m.user ? new UserError(msg) : new Error(`the PyTorch worker failed: ${msg}`));
    } else if (m.event === 'phase' || m.event === 'progress') {
      this.listen(m);
    } else if (this.waiting) {
      const w = this.waiting;
      this.waiting = undefined;
      w.resolve(m);
    } else {
      this.queue.push(m);
    }
  }

  private receive(chunk: Buffer): void {
    let pos = 0;
    while (pos < chunk.length) {
      if (this.payload) {
        const p = this.payload;
        const n = Math.min(p.bytes.length - p.got, chunk.length - pos);
        p.bytes.set(chunk.subarray(pos, pos + n), p.got);
        p.got += n;
        pos += n;
        if (p.got === p.bytes.length) {
          this.payload = undefined;
          this.deliver({ ...p.header, data: new Float32Array(p.bytes.buffer) });
        }
        continue;
      }
      const nl = chunk.indexOf(10, pos);
      if (nl < 0) {
        this.lineParts.push(chunk.subarray(pos));
        return;
      }
      const line = Buffer.concat([...this.lineParts, chunk.subarray(pos, nl)]).toString();
      this.lineParts = [];
      pos = nl + 1;
      let m: WorkerMessage;
      try {
        m = JSON.parse(line) as WorkerMessage;
      } catch {
        this.fail(new Error(`internal: the PyTorch worker wrote a line that is not JSON: ${line.slice(0, 200)}`));
        this.child.kill('SIGKILL');
        return;
      }
      if (typeof m.bytes === 'number' && m.bytes > 0) this.payload = { header: m, bytes: new Uint8Array(m.bytes), got: 0 };
      else this.deliver(m);
    }
  }
}
