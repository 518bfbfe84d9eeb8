// The model worker, in one of two builds of the same Rust code (`./x build`):
// - recalign-worker.js (wasm-bindgen --target no-modules): one thread, WebGPU or the CPU;
// - recalign-worker-mt.js (--target web, wasm threads): the CPU device with its matrix and
//   reduction work spread over a rayon pool of Web Workers (wasm-bindgen-rayon). Shared memory
//   needs a cross-origin isolated page (COOP/COEP, which `recalign serve` sends), and this build
//   has no WebGPU, so it is used only when the model will run on the CPU.
// The page passes ?device= (auto, cpu, webgpu) and ?threads= (the pool's size; 1 keeps the
// single-thread build). Any failure of the threaded start falls back to the single-thread build.
// A static file rather than gloo-worker's blob: URL, so the CSP can stay at worker-src 'self'.
const params = new URLSearchParams(self.location.search);
const threads = Math.max(1, Number(params.get('threads')) || 1);

function singleThread() {
  importScripts('./recalign-worker.js');
  wasm_bindgen('./recalign-worker_bg.wasm');
}

// The same choice as crates/recalign-app/src/worker/device.rs: the CPU when it was asked for,
// when there is no WebGPU adapter, or when the only one is a software renderer.
async function cpuWillRun(device) {
  if (device === 'cpu') return true;
  if (device === 'webgpu') return false;
  const adapter = await self.navigator.gpu?.requestAdapter().catch(() => null);
  if (!adapter) return true;
  const info = adapter.info ?? {};
  return Boolean(info.isFallbackAdapter ?? adapter.isFallbackAdapter)
    || /swiftshader/i.test(info.architecture ?? '');
}

async function multiThread() {
  const mt = await import('./recalign-worker-mt.js');
  await mt.default({ module_or_path: './recalign-worker-mt_bg.wasm' });
  await mt.initThreadPool(threads);
  mt.startWorker();
}

(async () => {
  if (threads > 1 && self.crossOriginIsolated && await cpuWillRun(params.get('device'))) {
    try {
      await multiThread();
      return;
    } catch (e) {
      console.warn(`recalign: the multi-threaded build did not start (${e}); using one thread`);
    }
  }
  singleThread();
})();
