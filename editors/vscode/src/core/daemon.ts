// Where the daemon's socket is and which `octostored` to start: the same rules as
// octostored/paths.py, and the search order of the extension's settings. Pure: the environment,
// the uid and the file checks are passed in, so the unit tests run without an editor.
import * as path from 'path';

export interface SocketEnv {
  env: Record<string, string | undefined>;
  uid: number;
  isDir: (p: string) => boolean;
  /** The `octostore.socketPath` setting, empty when unset. */
  setting?: string;
}

/** $OCTOSTORE_SOCKET, else $XDG_RUNTIME_DIR/octostore/octostored.sock, else /tmp/octostore-$UID/… */
export function socketPath(o: SocketEnv): string {
  if (o.setting) return path.resolve(o.setting);
  const env = o.env.OCTOSTORE_SOCKET;
  if (env) return path.resolve(env);
  const xdg = o.env.XDG_RUNTIME_DIR;
  if (xdg && o.isDir(xdg)) return path.join(xdg, 'octostore', 'octostored.sock');
  return path.join('/tmp', `octostore-${o.uid}`, 'octostored.sock');
}

export interface DaemonSearch {
  /** The `octostore.daemonPath` setting. */
  configured?: string;
  /** $PATH. */
  pathEnv?: string;
  /** The interpreter of the Python environment selected in the Python extension, if any. */
  selectedPython?: string;
  /** The workspace folders (their .venv / venv are searched last). */
  folders: string[];
  isExecutable: (p: string) => boolean;
  platform?: string;
}

export interface DaemonFound {
  command: string;
  /** Where it was found, for messages: "octostore.daemonPath", "PATH", "the selected Python environment", ".venv". */
  origin: string;
}

export interface DaemonNotFound {
  command?: undefined;
  /** Every place looked at, for the "not found" message. */
  searched: string[];
  /** A configured path that is not executable. */
  badSetting?: string;
}

function exe(name: string, platform: string): string {
  return platform === 'win32' ? `${name}.exe` : name;
}

function binDir(platform: string): string {
  return platform === 'win32' ? 'Scripts' : 'bin';
}

/** The `octostored` to start: the setting, PATH, the selected Python environment, a workspace venv. */
export function findDaemon(o: DaemonSearch): DaemonFound | DaemonNotFound {
  const platform = o.platform ?? process.platform;
  const name = exe('octostored', platform);
  const searched: string[] = [];
  if (o.configured) {
    if (o.isExecutable(o.configured)) return { command: o.configured, origin: 'octostore.daemonPath' };
    return { searched: [o.configured], badSetting: o.configured };
  }
  const sep = platform === 'win32' ? ';' : ':';
  for (const dir of (o.pathEnv ?? '').split(sep).filter(Boolean)) {
    const p = path.join(dir, name);
    if (o.isExecutable(p)) return { command: p, origin: 'PATH' };
  }
  searched.push('PATH');
  if (o.selectedPython) {
    const p = path.join(path.dirname(o.selectedPython), name);
    searched.push(p);
    if (o.isExecutable(p)) return { command: p, origin: 'the selected Python environment' };
  }
  for (const folder of o.folders) {
    for (const venv of ['.venv', 'venv', 'env']) {
      const p = path.join(folder, venv, binDir(platform), name);
      searched.push(p);
      if (o.isExecutable(p)) return { command: p, origin: path.join(path.basename(folder), venv) };
    }
  }
  return { searched };
}

/** `octostore-tui` beside the daemon that was found, else the bare name (from PATH). */
export function dashboardCommand(daemon: string | undefined, isExecutable: (p: string) => boolean,
                                 platform: string = process.platform): string {
  const name = exe('octostore-tui', platform);
  if (daemon) {
    const p = path.join(path.dirname(daemon), name);
    if (isExecutable(p)) return p;
  }
  return name;
}

export const INSTALL_HELP =
  'Octostore needs its daemon, octostored, from the Python package "octostore". Install it into ' +
  'the Python environment of your project (pip install octostore, or uv add octostore), select ' +
  'that environment in the Python extension, or set "octostore.daemonPath" to the octostored ' +
  'executable. Then run "Octostore: Restart Daemon".';
