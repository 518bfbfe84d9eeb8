// Starts `recalign serve` on a random local port and waits until it answers.
import { spawn } from 'node:child_process';

export async function startServer(recalign, dist, basePort) {
  const port = basePort + Math.floor(Math.random() * 1000);
  const origin = `http://127.0.0.1:${port}`;
  const server = spawn(recalign, ['serve', '--dir', dist, '--port', String(port)], { stdio: 'inherit' });
  for (let i = 0; ; i++) {
    try { if ((await fetch(origin + '/')).ok) break; } catch { /* not up yet */ }
    if (i > 100) throw new Error('recalign serve did not start');
    await new Promise((r) => setTimeout(r, 100));
  }
  return { origin, stop: () => server.kill() };
}

// Chromium flags for a machine with a closed network (and WebGPU on its software adapter).
export const chromiumArgs = ['--no-sandbox', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
