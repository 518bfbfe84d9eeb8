//! Advice for the errors a device raises when it runs out of memory or is lost, so the page
//! says what to do instead of only what broke.

use crate::protocol::DeviceKind;

const OUT_OF_MEMORY: [&str; 5] = [
    "out of memory",
    "outofmemory",
    "allocation failed",
    "memory access out of bounds",
    "could not allocate",
];
const DEVICE_LOST: [&str; 4] = [
    "device lost",
    "devicelost",
    "device was lost",
    "device is lost",
];

/// `message` with what to do appended when it is an out-of-memory or device-lost error; other
/// messages are returned unchanged. The worker, the model and everything trained stay usable.
pub fn with_advice(message: String, device: Option<DeviceKind>) -> String {
    let lower = message.to_lowercase();
    let out_of_memory = OUT_OF_MEMORY.iter().any(|m| lower.contains(m));
    let lost = DEVICE_LOST.iter().any(|m| lower.contains(m));
    let advice = match (out_of_memory, lost, device) {
        (true, _, Some(DeviceKind::WebGpu)) => {
            "The GPU ran out of memory: try a smaller batch (1, with more accumulation), fewer \
             training prompts, LoRA on q, v only, or the CPU (?device=cpu). Your adapters and \
             runs are kept."
        }
        (true, _, _) => {
            "The page ran out of memory (a wasm page has at most 4 GiB): try batch 1 with more \
             accumulation, fewer training prompts, or LoRA on q, v only. Your adapters and runs \
             are kept."
        }
        (false, true, _) => {
            "The browser reset the GPU (device lost), often after a long step or a driver \
             problem: reload the page (the model, adapters and the run's last checkpoint are \
             kept in this browser) or use the CPU (?device=cpu)."
        }
        _ => return message,
    };
    format!("{message}. {advice}")
}
