//! The device: WebGPU when the browser has a real adapter, Burn's CPU device (Flex) otherwise,
//! chosen once per worker by the first model request and reported to the page with the reason.
//! The multi-threaded build (wasm atomics) has only the CPU device, on its rayon pool: its
//! loader (`web/worker_loader.js`) starts it only when the CPU would be chosen here.

use burn::tensor::Device;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use super::session::Shared;
use crate::protocol::{DeviceInUse, DeviceKind, DevicePreference, Response};

/// Picks the device as `preference` says and tells the page which one, on how many threads, and
/// why.
pub async fn ensure_device(
    shared: &Shared,
    preference: DevicePreference,
    reply: &dyn Fn(Response),
) {
    if shared.borrow().device.is_some() {
        return;
    }
    let software = "this browser's only WebGPU adapter is a software renderer, which is much \
                    slower than the CPU here; using the CPU (?device=webgpu forces WebGPU)";
    let (device, kind, note) = match preference {
        DevicePreference::Cpu => cpu("the CPU was requested (?device=cpu)".into()),
        DevicePreference::Auto if software_adapter().await == Some(true) => cpu(software.into()),
        DevicePreference::Auto | DevicePreference::WebGpu => webgpu().await,
    };
    {
        let mut s = shared.borrow_mut();
        s.device = Some(device);
        s.device_kind = Some(kind);
    }
    reply(Response::Device(DeviceInUse {
        kind,
        threads: match kind {
            DeviceKind::Cpu => cpu_threads(),
            DeviceKind::WebGpu => 1,
        },
        note,
    }));
}

fn cpu(note: String) -> (Device, DeviceKind, Option<String>) {
    (Device::flex(), DeviceKind::Cpu, Some(note))
}

#[cfg(not(target_feature = "atomics"))]
async fn webgpu() -> (Device, DeviceKind, Option<String>) {
    match Device::wgpu_options().init_async().await {
        Ok(d) => (d, DeviceKind::WebGpu, None),
        Err(e) => cpu(format!(
            "WebGPU is not available in this browser ({e}); using the CPU, which is slower"
        )),
    }
}

/// This build has no WebGPU: its loader starts it only when no usable adapter was found.
#[cfg(target_feature = "atomics")]
async fn webgpu() -> (Device, DeviceKind, Option<String>) {
    cpu("WebGPU is not available in this browser; using the CPU, which is slower".into())
}

/// The threads the CPU device computes on: the rayon pool's size in the multi-threaded build.
fn cpu_threads() -> usize {
    #[cfg(target_feature = "atomics")]
    return rayon::current_num_threads();
    #[cfg(not(target_feature = "atomics"))]
    1
}

/// Whether the default WebGPU adapter is a software fallback (SwiftShader), `None` when there is
/// no adapter or the browser does not say. Burn does not expose the adapter, so this asks
/// `navigator.gpu` directly.
async fn software_adapter() -> Option<bool> {
    use js_sys::{Function, Promise, Reflect};
    let get = |v: &JsValue, k: &str| {
        Reflect::get(v, &JsValue::from_str(k))
            .ok()
            .filter(|x| !x.is_undefined() && !x.is_null())
    };
    let gpu = get(&get(&js_sys::global(), "navigator")?, "gpu")?;
    let request: Function = get(&gpu, "requestAdapter")?.dyn_into().ok()?;
    let promise: Promise = request.call0(&gpu).ok()?.dyn_into().ok()?;
    let adapter = JsFuture::from(promise)
        .await
        .ok()
        .filter(|a| !a.is_null())?;
    let info = get(&adapter, "info");
    let flag = info
        .as_ref()
        .and_then(|i| get(i, "isFallbackAdapter"))
        .or_else(|| get(&adapter, "isFallbackAdapter"))
        .and_then(|f| f.as_bool());
    let named_software = info
        .as_ref()
        .and_then(|i| get(i, "architecture"))
        .and_then(|a| a.as_string())
        .is_some_and(|a| a.to_lowercase().contains("swiftshader"));
    Some(flag.unwrap_or(false) || named_software)
}
