//! What the page tells a person after a device failure. The core says which kind of failure it
//! was ([`DeviceFault`]); what to do about it depends on the page (WebGPU or the CPU device, the
//! wasm memory limit, the `?device=` switch), so the words live here and not in the core.

use recalign_core::error::DeviceFault;

use crate::protocol::DeviceKind;

/// Advice after a device failure of kind `fault` on `device` (`None` when no device is chosen
/// yet); `None` where there is nothing better to say than the error itself.
pub fn after(fault: DeviceFault, device: Option<DeviceKind>) -> Option<&'static str> {
    match (fault, device) {
        (DeviceFault::OutOfMemory, Some(DeviceKind::WebGpu)) => Some(
            "The GPU ran out of memory: try a smaller batch (1, with more accumulation), fewer \
             training prompts, LoRA on q, v only, or the CPU (?device=cpu). Your adapters and \
             runs are kept.",
        ),
        (DeviceFault::OutOfMemory, _) => Some(
            "The page ran out of memory (a wasm page has at most 4 GiB): try batch 1 with more \
             accumulation, fewer training prompts, or LoRA on q, v only. Your adapters and runs \
             are kept.",
        ),
        (DeviceFault::Lost, _) => Some(
            "The browser reset the GPU (device lost), often after a long step or a driver \
             problem: reload the page (the model, adapters and the run's last checkpoint are \
             kept in this browser) or use the CPU (?device=cpu).",
        ),
        (DeviceFault::Other, _) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_gets_advice_for_its_device() {
        let gpu = after(DeviceFault::OutOfMemory, Some(DeviceKind::WebGpu)).unwrap();
        assert!(
            gpu.contains("smaller batch") && gpu.contains("?device=cpu"),
            "{gpu}"
        );
        let cpu = after(DeviceFault::OutOfMemory, Some(DeviceKind::Cpu)).unwrap();
        assert!(cpu.contains("4 GiB"), "{cpu}");
        let lost = after(DeviceFault::Lost, None).unwrap();
        assert!(lost.contains("reload the page"), "{lost}");
        assert_eq!(after(DeviceFault::Other, Some(DeviceKind::WebGpu)), None);
    }
}
