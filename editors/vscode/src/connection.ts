// The connection to octostored: one vscode-languageclient over the daemon's Unix socket, which
// carries both the LSP features (code lenses, hovers, inlay hints served by the daemon) and the
// octostore/* methods the views call. Starts the daemon when none answers, reconnects when it
// restarts, and tells the status bar where it stands.
import * as cp from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as vscode from 'vscode';
import {
  CloseAction, ErrorAction, LanguageClient, LanguageClientOptions, ResponseError,
  RevealOutputChannelOn, StreamInfo,
} from 'vscode-languageclient/node';

import { INSTALL_HELP, findDaemon, socketPath } from './core/daemon';
import { emit } from './core/events';
import { RestartPolicy, backoff } from './core/restart';
import { ErrorCodes, Methods, PROTOCOL_VERSION, StatusReply } from './protocol';

export type ConnState = 'starting' | 'connected' | 'notFound' | 'failed' | 'stopped';

/** An error reply of the daemon (or a missing connection), with the daemon's own sentence. */
export class DaemonError extends Error {
  constructor(message: string, readonly code: number | string, readonly method: string, readonly data?: unknown) {
    super(message);
  }

  get methodNotFound(): boolean {
    return this.code === ErrorCodes.MethodNotFound;
  }
}

const CONNECT_TIMEOUT_MS = 20_000;
const STABLE_AFTER_MS = 60_000;

function connectOnce(sock: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ path: sock });
    const fail = (err: Error) => {
      s.destroy();
      reject(err);
    };
    s.once('error', fail);
    s.once('connect', () => {
      s.off('error', fail);
      resolve(s);
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class Connection implements vscode.Disposable {
  private client: LanguageClient | undefined;
  private _state: ConnState = 'stopped';
  private readonly stateEmitter = new vscode.EventEmitter<ConnState>();
  readonly onDidChangeState = this.stateEmitter.event;
  private readonly connectEmitter = new vscode.EventEmitter<StatusReply>();
  /** Fired after every (re)connection, once the protocol version is checked. */
  readonly onDidConnect = this.connectEmitter.event;
  private readonly handlers = new Map<string, Set<(params: any) => void>>();
  private readonly policy = new RestartPolicy();
  private connecting: Promise<void> | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private stableTimer: NodeJS.Timeout | undefined;
  private stopping = false;
  private disposed = false;
  /** The daemon's status at the last connection. */
  status: StatusReply | undefined;
  /** The `octostored` used (or last found). */
  daemonCommand: string | undefined;
  /** Why the last attempt failed, for the status bar and messages. */
  lastError: string | undefined;
  socket = '';

  constructor(private readonly out: vscode.LogOutputChannel) {}

  get state(): ConnState {
    return this._state;
  }

  private setState(s: ConnState, why?: string): void {
    if (why !== undefined) this.lastError = why;
    if (s === this._state) return;
    this._state = s;
    this.out.info(`connection: ${s}${why ? ` (${why})` : ''}`);
    void vscode.commands.executeCommand('setContext', 'octostore.state', s);
    emit('state', { state: s, why });
    this.stateEmitter.fire(s);
  }

  /** Handle a daemon notification (octostore/changed, octostore/job) on this and later connections. */
  onNotification(method: string, handler: (params: any) => void): vscode.Disposable {
    let set = this.handlers.get(method);
    if (!set) {
      set = new Set();
      this.handlers.set(method, set);
      this.client?.onNotification(method, (p) => this.dispatch(method, p));
    }
    set.add(handler);
    return new vscode.Disposable(() => set!.delete(handler));
  }

  private dispatch(method: string, params: unknown): void {
    for (const h of this.handlers.get(method) ?? []) {
      try {
        h(params);
      } catch (e) {
        this.out.error(`handler of ${method} failed: ${e}`);
      }
    }
  }

  /** Call an octostore/* method; errors become DaemonError with the daemon's message. */
  async request<T>(method: string, params: object = {}, token?: vscode.CancellationToken): Promise<T> {
    const c = this.client;
    if (!c || this._state !== 'connected') {
      throw new DaemonError(`not connected to the octostore daemon (${this._state})`, 'not-connected', method);
    }
    try {
      // Never pass an undefined token: vscode-jsonrpc would send [params, null] as positional params.
      return await (token ? c.sendRequest<T>(method, params, token) : c.sendRequest<T>(method, params));
    } catch (e) {
      if (e instanceof ResponseError) throw new DaemonError(e.message, e.code, method, e.data);
      throw new DaemonError(e instanceof Error ? e.message : String(e), 'failed', method);
    }
  }

  supports(method: string): boolean {
    return !!this.status?.capabilities.includes(`cmd-${method}`);
  }

  // -- connecting ------------------------------------------------------------------------------
  start(): Promise<void> {
    if (!this.connecting) {
      this.connecting = this.connectLoop().finally(() => {
        this.connecting = undefined;
      });
    }
    return this.connecting;
  }

  private config() {
    return vscode.workspace.getConfiguration('octostore');
  }

  private async connectLoop(): Promise<void> {
    if (this.disposed) return;
    clearTimeout(this.reconnectTimer);
    this.setState('starting');
    const setting = this.config().get<string>('socketPath') || '';
    const sock = socketPath({
      env: process.env, uid: process.getuid?.() ?? 0, setting,
      isDir: (p) => { try { return fs.statSync(p).isDirectory(); } catch { return false; } },
    });
    this.socket = sock;
    let socket = await connectOnce(sock).catch(() => undefined);
    if (!socket) {
      if (!this.config().get<boolean>('autoStart', true)) {
        socket = await this.waitForSocket(sock, CONNECT_TIMEOUT_MS);
        if (!socket) {
          this.setState('failed', `no daemon answers at ${sock} and octostore.autoStart is off`);
          return;
        }
      } else {
        const found = await this.locateDaemon();
        if (!found) return;
        socket = await this.startDaemon(found, sock, setting ? sock : undefined);
        if (!socket) return;
      }
    }
    await this.startClient(socket, sock);
  }

  private async waitForSocket(sock: string, ms: number): Promise<net.Socket | undefined> {
    const deadline = Date.now() + ms;
    for (let i = 0; Date.now() < deadline && !this.disposed; i++) {
      const s = await connectOnce(sock).catch(() => undefined);
      if (s) return s;
      await sleep(backoff(i, 500));
    }
    return undefined;
  }

  private async selectedPython(): Promise<string | undefined> {
    try {
      const ext = vscode.extensions.getExtension('ms-python.python');
      if (!ext) return undefined;
      const api: any = ext.isActive ? ext.exports : await ext.activate();
      const folder = vscode.workspace.workspaceFolders?.[0]?.uri;
      const env = api?.environments?.getActiveEnvironmentPath?.(folder);
      return typeof env?.path === 'string' ? env.path : undefined;
    } catch {
      return undefined;
    }
  }

  private async locateDaemon(): Promise<string | undefined> {
    const found = findDaemon({
      configured: this.config().get<string>('daemonPath') || undefined,
      pathEnv: process.env.PATH,
      selectedPython: await this.selectedPython(),
      folders: (vscode.workspace.workspaceFolders ?? []).map((f) => f.uri.fsPath),
      isExecutable: (p) => { try { fs.accessSync(p, fs.constants.X_OK); return fs.statSync(p).isFile(); } catch { return false; } },
    });
    if ('origin' in found) {
      this.daemonCommand = found.command;
      this.out.info(`using ${found.command} (from ${found.origin})`);
      return found.command;
    }
    const why = found.badSetting
      ? `octostore.daemonPath is set to ${found.badSetting}, which is not an executable file`
      : `octostored was not found (looked in ${found.searched.join(', ')})`;
    this.out.warn(why);
    this.setState('notFound', why);
    return undefined;
  }

  /** `octostored --detach` (it returns once the daemon answers), then connect. */
  private async startDaemon(command: string, sock: string, explicitSocket?: string): Promise<net.Socket | undefined> {
    const args = ['--detach', ...(explicitSocket ? ['--socket', explicitSocket] : [])];
    let lastErr = '';
    for (let attempt = 0; attempt < 3 && !this.disposed; attempt++) {
      this.out.info(`starting the daemon: ${command} ${args.join(' ')}`);
      emit('daemon-start', { command, attempt });
      const res = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
        let stderr = '';
        const p = cp.spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: process.env });
        p.stdout?.on('data', (d) => this.out.info(String(d).trimEnd()));
        p.stderr?.on('data', (d) => { stderr += String(d); });
        p.on('error', (e) => resolve({ code: -1, stderr: e.message }));
        p.on('close', (code) => resolve({ code, stderr }));
      });
      if (res.stderr.trim()) this.out.warn(res.stderr.trimEnd());
      lastErr = res.stderr.trim().split('\n').pop() || (res.code ? `octostored exited with ${res.code}` : '');
      // Even a failed start may mean another one won the race: connect either way.
      const s = await this.waitForSocket(sock, res.code === 0 ? CONNECT_TIMEOUT_MS : 1500);
      if (s) return s;
      await sleep(500 * (attempt + 1));
    }
    this.setState('failed', lastErr || `the daemon did not answer at ${sock}`);
    void this.offerHelp(`Octostore: could not start the daemon: ${this.lastError}`);
    return undefined;
  }

  private async startClient(socket: net.Socket, sock: string): Promise<void> {
    let first: net.Socket | undefined = socket;
    const serverOptions = async (): Promise<StreamInfo> => {
      const s = first ?? (await connectOnce(sock));
      first = undefined;
      return { reader: s, writer: s };
    };
    const clientOptions: LanguageClientOptions = {
      documentSelector: [{ scheme: 'file', language: 'python' }],
      outputChannel: this.out,
      revealOutputChannelOn: RevealOutputChannelOn.Never,
      initializationOptions: { keyMetric: this.config().get<string>('keyMetric') || '' },
      synchronize: { configurationSection: 'octostore' },
      errorHandler: {
        error: () => ({ action: ErrorAction.Continue, handled: true }),
        closed: () => {
          this.onClosed(client);
          return { action: CloseAction.DoNotRestart, handled: true, message: 'the connection to octostored closed' };
        },
      },
      middleware: {
        provideInlayHints: (document, range, token, next) =>
          this.config().get<boolean>('inlayHints', false) ? next(document, range, token) : [],
      },
    };
    const client = new LanguageClient('octostore', 'Octostore', serverOptions, clientOptions);
    for (const method of this.handlers.keys()) {
      client.onNotification(method, (p) => this.dispatch(method, p));
    }
    this.client = client;
    try {
      await client.start();
      const status = await client.sendRequest<StatusReply>(Methods.status, {});
      if (status.protocol_version !== PROTOCOL_VERSION) {
        const why = `the daemon speaks protocol ${status.protocol_version} and this extension ${PROTOCOL_VERSION}`;
        this.stopping = true;
        await client.stop().catch(() => undefined);
        this.stopping = false;
        this.client = undefined;
        this.setState('failed', why);
        void vscode.window.showErrorMessage(`Octostore: ${why}. Update the one that is older, then run "Octostore: Restart Daemon".`);
        return;
      }
      this.status = status;
      this.setState('connected', '');
      clearTimeout(this.stableTimer);
      this.stableTimer = setTimeout(() => this.policy.stable(), STABLE_AFTER_MS);
      emit('connected', { version: status.version, pid: status.pid, socket: sock });
      this.connectEmitter.fire(status);
    } catch (e) {
      this.out.error(`the language client did not start: ${e}`);
      if (this.client === client) this.onClosed(client);
    }
  }

  private onClosed(client: LanguageClient | undefined): void {
    if (client !== this.client || this.disposed) return;
    this.client = undefined;
    clearTimeout(this.stableTimer);
    if (this.stopping) return;
    this.out.warn('the connection to the daemon closed');
    if (!this.policy.dropped()) {
      this.setState('failed', `the connection dropped ${this.policy.recent} times in 3 minutes`);
      void this.offerHelp('Octostore: the daemon keeps going away; it is not restarted any more.');
      return;
    }
    this.setState('starting', 'reconnecting');
    // The old client cleans itself up (CloseAction.DoNotRestart); a new one connects.
    this.reconnectTimer = setTimeout(() => void this.start(), backoff(this.policy.recent, 1000));
  }

  private async offerHelp(message: string): Promise<void> {
    const pick = await vscode.window.showErrorMessage(message, 'Show Logs', 'Restart Daemon');
    if (pick === 'Show Logs') this.out.show();
    if (pick === 'Restart Daemon') await vscode.commands.executeCommand('octostore.restartDaemon');
  }

  /** Stop the daemon (octostore/shutdown), wait for it to go, start a fresh one and reconnect. */
  async restartDaemon(): Promise<void> {
    clearTimeout(this.reconnectTimer);
    if (this.connecting) await this.connecting.catch(() => undefined);
    const sock = this.socket;
    this.stopping = true;
    try {
      if (this.client && this._state === 'connected') {
        await this.client.sendRequest(Methods.shutdown, {}).catch(() => undefined);
      }
      const c = this.client;
      this.client = undefined;
      if (c) await c.dispose(2000).catch(() => undefined);
      this.setState('starting', 'restarting the daemon');
      // The daemon removes its socket as it exits, after its snapshot is written.
      const deadline = Date.now() + 15_000;
      while (sock && fs.existsSync(sock) && Date.now() < deadline) await sleep(100);
    } finally {
      this.stopping = false;
    }
    this.policy.reset();
    emit('daemon-restart');
    await this.start();
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.stableTimer);
    const c = this.client;
    this.client = undefined;
    this.stopping = true;
    if (c) await c.dispose(2000).catch(() => undefined);
    this.stateEmitter.dispose();
    this.connectEmitter.dispose();
  }
}

export { INSTALL_HELP };
