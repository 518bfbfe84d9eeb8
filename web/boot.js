// Loads the page's wasm (built by `./x build` with wasm-bindgen --target web). CSP forbids inline
// scripts, hence this file. The model runs in a worker started from worker_loader.js.
import init from './recalign-app.js';

init().then(() => {
  document.getElementById('boot')?.remove();
}).catch((e) => {
  const boot = document.getElementById('boot');
  if (boot) boot.textContent = `recalign could not start: ${e}. This page needs WebAssembly.`;
});
