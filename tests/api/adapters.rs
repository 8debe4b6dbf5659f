//! Which adapters `Context::all` opens, decided on `AdapterInfo` values
//! alone (no GPU needed): one per physical device, CPU adapters only where
//! no hardware adapter is there or when asked for.

use wgpu::{AdapterInfo, Backend, DeviceType};
use wgpu_loss::{AdapterFilter, SkipReason};

fn info(name: &str, backend: Backend, device_type: DeviceType, ids: (u32, u32)) -> AdapterInfo {
    AdapterInfo {
        name: name.into(),
        vendor: ids.0,
        device: ids.1,
        ..AdapterInfo::new(device_type, backend)
    }
}

fn bus(mut info: AdapterInfo, id: &str) -> AdapterInfo {
    info.device_pci_bus_id = id.into();
    info
}

const MESA: u32 = 0x10005;
const NVIDIA: u32 = 0x10de;
const INTEL: u32 = 0x8086;
const AMD: u32 = 0x1002;

fn lavapipe() -> AdapterInfo {
    info(
        "llvmpipe (LLVM 15.0.6, 256 bits)",
        Backend::Vulkan,
        DeviceType::Cpu,
        (MESA, 0),
    )
}

fn llvmpipe_gl() -> AdapterInfo {
    info(
        "llvmpipe (LLVM 15.0.6, 256 bits)",
        Backend::Gl,
        DeviceType::Cpu,
        (MESA, 0),
    )
}

fn rtx(bus_id: &str) -> AdapterInfo {
    bus(
        info(
            "NVIDIA GeForce RTX 3080",
            Backend::Vulkan,
            DeviceType::DiscreteGpu,
            (NVIDIA, 0x2206),
        ),
        bus_id,
    )
}

fn rtx_gl() -> AdapterInfo {
    info(
        "NVIDIA GeForce RTX 3080/PCIe/SSE2",
        Backend::Gl,
        DeviceType::Other,
        (NVIDIA, 0),
    )
}

fn kept(picks: &[Option<SkipReason>]) -> Vec<usize> {
    (0..picks.len()).filter(|&i| picks[i].is_none()).collect()
}

#[test]
fn two_backends_of_one_device_keep_one() {
    // Mesa's CPU rasteriser through Vulkan (lavapipe) and GL (llvmpipe), in
    // either order: the Vulkan one is kept, and both stay in since no
    // hardware adapter is there.
    let picks = AdapterFilter::default().pick(&[lavapipe(), llvmpipe_gl()]);
    assert_eq!(picks[0], None);
    assert_eq!(
        picks[1],
        Some(SkipReason::SameDevice {
            kept: "llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan)".into()
        })
    );
    let picks = AdapterFilter::default().pick(&[llvmpipe_gl(), lavapipe()]);
    assert_eq!(kept(&picks), [1], "{picks:?}");

    // A GPU through Vulkan and GL, whose names differ by what each backend adds.
    let pairs = [
        (rtx("0000:01:00.0"), rtx_gl()),
        (
            info(
                "Intel(R) UHD Graphics 620 (KBL GT2)",
                Backend::Vulkan,
                DeviceType::IntegratedGpu,
                (INTEL, 0x5917),
            ),
            info(
                "Mesa Intel(R) UHD Graphics 620 (KBL GT2)",
                Backend::Gl,
                DeviceType::IntegratedGpu,
                (INTEL, 0),
            ),
        ),
        (
            info(
                "AMD Radeon RX 6800 (RADV NAVI21)",
                Backend::Vulkan,
                DeviceType::DiscreteGpu,
                (AMD, 0x73bf),
            ),
            info(
                "AMD Radeon RX 6800 (navi21, LLVM 15.0.6, DRM 3.49, 6.1.0)",
                Backend::Gl,
                DeviceType::Other,
                (AMD, 0),
            ),
        ),
    ];
    for (vulkan, gl) in pairs {
        let picks = AdapterFilter::default().pick(&[vulkan.clone(), gl.clone()]);
        assert_eq!(kept(&picks), [0], "{}: {picks:?}", vulkan.name);
        assert!(
            matches!(&picks[1], Some(SkipReason::SameDevice { kept }) if kept.contains("(Vulkan)")),
            "{picks:?}"
        );
        // Asked for, both backends stay.
        let every = AdapterFilter {
            every_backend: true,
            ..Default::default()
        };
        assert_eq!(kept(&every.pick(&[vulkan, gl])), [0, 1]);
    }
}

#[test]
fn different_devices_are_all_kept() {
    // Two identical GPUs on one backend are two devices, bus ids or not;
    // GL shows one GPU, a duplicate of both.
    let twins = [rtx("0000:01:00.0"), rtx("0000:02:00.0"), rtx_gl()];
    assert_eq!(kept(&AdapterFilter::default().pick(&twins)), [0, 1]);
    let twins = [rtx(""), rtx(""), rtx_gl()];
    assert_eq!(kept(&AdapterFilter::default().pick(&twins)), [0, 1]);
    // Vulkan and DX12 both give bus ids: those decide.
    let mut dx12 = rtx("0000:02:00.0");
    dx12.backend = Backend::Dx12;
    let picks = AdapterFilter::default().pick(&[rtx("0000:01:00.0"), dx12.clone()]);
    assert_eq!(kept(&picks), [0, 1]);
    dx12.device_pci_bus_id = "0000:01:00.0".into();
    let picks = AdapterFilter::default().pick(&[rtx("0000:01:00.0"), dx12]);
    assert_eq!(kept(&picks), [0]);
    // Different vendors, or different names, through different backends.
    let intel_gl = info(
        "Mesa Intel(R) UHD Graphics 620 (KBL GT2)",
        Backend::Gl,
        DeviceType::IntegratedGpu,
        (INTEL, 0),
    );
    assert_eq!(
        kept(&AdapterFilter::default().pick(&[rtx(""), intel_gl])),
        [0, 1]
    );
    let other_gl = info(
        "NVIDIA GeForce GTX 1080/PCIe/SSE2",
        Backend::Gl,
        DeviceType::Other,
        (NVIDIA, 0),
    );
    assert_eq!(
        kept(&AdapterFilter::default().pick(&[rtx(""), other_gl])),
        [0, 1]
    );
}

#[test]
fn cpu_adapters_are_left_out_beside_hardware_unless_asked_for() {
    let infos = [rtx("0000:01:00.0"), rtx_gl(), lavapipe(), llvmpipe_gl()];
    let picks = AdapterFilter::default().pick(&infos);
    assert_eq!(kept(&picks), [0], "{picks:?}");
    let cpu = Some(SkipReason::Cpu {
        hardware: "NVIDIA GeForce RTX 3080 (Vulkan)".into(),
    });
    assert_eq!(picks[2], cpu);
    // llvmpipe is lavapipe's device: that is the reason given first.
    assert!(
        matches!(&picks[3], Some(SkipReason::SameDevice { .. })),
        "{picks:?}"
    );
    let text = picks[2].as_ref().unwrap().to_string();
    assert!(text.contains("CPU") && text.contains("cpu: true"), "{text}");

    // Asked for: the CPU adapter stays, still one per device.
    let with_cpu = AdapterFilter {
        cpu: true,
        ..Default::default()
    };
    assert_eq!(kept(&with_cpu.pick(&infos)), [0, 2]);
    assert_eq!(kept(&AdapterFilter::EVERY.pick(&infos)), [0, 1, 2, 3]);

    // A GPU that GL alone shows (device type Other) counts as hardware.
    let picks = AdapterFilter::default().pick(&[rtx_gl(), lavapipe()]);
    assert_eq!(kept(&picks), [0], "{picks:?}");
    assert!(matches!(&picks[1], Some(SkipReason::Cpu { .. })));

    // Nothing listed: nothing picked.
    assert!(AdapterFilter::default().pick(&[]).is_empty());
}
