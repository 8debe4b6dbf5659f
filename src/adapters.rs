//! Which adapters [`crate::Context::all_with`] opens.
//!
//! wgpu lists one adapter per backend per device: a machine with one GPU
//! offers it through Vulkan and GL (and often a CPU adapter beside it). A
//! split over all of them would give the same GPU two shares and a slow CPU
//! adapter an even one, so by default one adapter is kept per physical
//! device (Vulkan, Metal or DX12 over GL) and CPU adapters are left out when
//! a hardware adapter is there.

use std::fmt;

/// What [`crate::Context::all_with`] keeps beyond one hardware adapter per physical
/// device. The default keeps neither.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdapterFilter {
    /// Keep CPU adapters (lavapipe, llvmpipe, WARP) even beside a hardware
    /// adapter. Where every adapter is a CPU one they are kept anyway.
    pub cpu: bool,
    /// Keep every backend of a device (Vulkan and GL of one GPU), not only
    /// the best.
    pub every_backend: bool,
}

impl AdapterFilter {
    /// Every adapter wgpu lists, as [`crate::Context::adapters`] gives them: for
    /// tests that want the GL backend beside Vulkan.
    pub const EVERY: AdapterFilter = AdapterFilter {
        cpu: true,
        every_backend: true,
    };

    /// For each of `infos` (best first, as [`crate::Context::adapters`] lists
    /// them), `None` if it is kept or why it is left out. The kept ones
    /// stay in their order.
    pub fn pick(&self, infos: &[wgpu::AdapterInfo]) -> Vec<Option<SkipReason>> {
        let mut out: Vec<Option<SkipReason>> = vec![None; infos.len()];
        if !self.every_backend {
            // Within each device, the best backend and then the best rank.
            let mut order: Vec<usize> = (0..infos.len()).collect();
            order.sort_by_key(|&i| (backend_rank(&infos[i]), i));
            let mut kept: Vec<usize> = Vec::new();
            for i in order {
                match kept.iter().find(|&&k| same_device(&infos[k], &infos[i])) {
                    Some(&k) => {
                        out[i] = Some(SkipReason::SameDevice {
                            kept: label(&infos[k]),
                        })
                    }
                    None => kept.push(i),
                }
            }
        }
        if !self.cpu {
            let hardware = (0..infos.len())
                .find(|&i| out[i].is_none() && infos[i].device_type != wgpu::DeviceType::Cpu);
            if let Some(h) = hardware {
                for (i, info) in infos.iter().enumerate() {
                    if out[i].is_none() && info.device_type == wgpu::DeviceType::Cpu {
                        out[i] = Some(SkipReason::Cpu {
                            hardware: label(&infos[h]),
                        });
                    }
                }
            }
        }
        out
    }
}

/// Why [`crate::Context::all_with`] left an adapter out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// Another backend of the same physical device is used: `kept`, as
    /// "name (backend)".
    SameDevice { kept: String },
    /// A CPU adapter, left out beside the hardware adapter `hardware`.
    Cpu { hardware: String },
    /// Its device would not open.
    Failed(String),
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::SameDevice { kept } => {
                write!(f, "same device as {kept}, which is used instead")
            }
            SkipReason::Cpu { hardware } => write!(
                f,
                "a CPU adapter, left out beside the hardware adapter {hardware} (AdapterFilter {{ cpu: true, .. }} keeps it)"
            ),
            SkipReason::Failed(why) => write!(f, "its device would not open: {why}"),
        }
    }
}

/// "name (backend)", as [`crate::Context::adapter_name`] gives it.
fn label(info: &wgpu::AdapterInfo) -> String {
    format!("{} ({:?})", info.name, info.backend)
}

fn backend_rank(info: &wgpu::AdapterInfo) -> u8 {
    match info.backend {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        _ => 1,
    }
}

/// Whether two adapters are one physical device seen through two backends.
/// One backend lists a device once, so two adapters of one backend are two
/// devices (two identical GPUs stay two). Across backends, PCI bus ids decide
/// where both have one (Vulkan and DX12 give them, GL does not); otherwise
/// known vendor and device ids must not differ, and the names must agree
/// once what backends append to them is removed.
fn same_device(a: &wgpu::AdapterInfo, b: &wgpu::AdapterInfo) -> bool {
    if a.backend == b.backend {
        return false;
    }
    if !a.device_pci_bus_id.is_empty() && !b.device_pci_bus_id.is_empty() {
        return a.device_pci_bus_id == b.device_pci_bus_id;
    }
    let differ = |x: u32, y: u32| x != 0 && y != 0 && x != y;
    if differ(a.vendor, b.vendor) || differ(a.device, b.device) {
        return false;
    }
    let (x, y) = (base_name(&a.name), base_name(&b.name));
    !x.is_empty() && x == y
}

/// The device's name without what backends add to it: GL's "/PCIe/SSE2"
/// suffix (NVIDIA), Mesa's "Mesa " prefix (Intel), everything in
/// parentheses (driver details such as "(RADV NAVI21)" on Vulkan and
/// "(navi21, LLVM 15.0.6, ...)" on GL, and "(R)"), lowercased, one space
/// between words.
fn base_name(name: &str) -> String {
    let name = name.split('/').next().unwrap_or("").to_lowercase();
    let mut plain = String::new();
    let mut depth = 0usize;
    for c in name.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 => plain.push(c),
            _ => {}
        }
    }
    let words: Vec<&str> = plain.split_whitespace().collect();
    let words = match words.first() {
        Some(&"mesa") => &words[1..],
        _ => &words[..],
    };
    words.join(" ")
}
