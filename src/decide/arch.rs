//! Architecture names as systemd spells them (`src/basic/architecture.c`): the architecture
//! extmerge was built for (vpick and DDI partitions prefer it) and the mapping from a kernel
//! machine string (what `ARCHITECTURE=` is compared with; read by `kernel::features`).

/// The architecture this binary runs as, in systemd's naming (`native_architecture()`).
pub fn native() -> &'static str {
    let little = cfg!(target_endian = "little");
    match std::env::consts::ARCH {
        "x86_64" => "x86-64",
        "x86" => "x86",
        "aarch64" if little => "arm64",
        "aarch64" => "arm64-be",
        "arm" if little => "arm",
        "arm" => "arm-be",
        "powerpc64" if little => "ppc64-le",
        "powerpc64" => "ppc64",
        "powerpc" => "ppc",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "riscv32" => "riscv32",
        "loongarch64" => "loongarch64",
        "mips64" | "mips64r6" if little => "mips64-le",
        "mips64" | "mips64r6" => "mips64",
        "mips" | "mips32r6" if little => "mips-le",
        "mips" | "mips32r6" => "mips",
        "sparc64" => "sparc64",
        "sparc" => "sparc",
        "m68k" => "m68k",
        other => other,
    }
}

/// systemd's `ARCHITECTURE_SECONDARY` for a native architecture (src/basic/architecture.h).
pub fn secondary(native: &str) -> Option<&'static str> {
    match native {
        "x86-64" => Some("x86"),
        "arm64" => Some("arm"),
        "ppc64" => Some("ppc"),
        "ppc64-le" => Some("ppc-le"),
        "s390x" => Some("s390"),
        _ => None,
    }
}

/// systemd's `uname_architecture()` map, all per-CPU sections of architecture.c merged.
#[rustfmt::skip]
const ARCH_MAP: &[(&str, &str)] = &[
    ("aarch64", "arm64"), ("aarch64_be", "arm64-be"),
    ("armv8l", "arm"), ("armv7ml", "arm"), ("armv7l", "arm"), ("armv6l", "arm"), ("armv5tl", "arm"),
    ("armv5tel", "arm"), ("armv5tejl", "arm"), ("armv4tl", "arm"), ("armv4l", "arm"),
    ("armv8b", "arm-be"), ("armv7mb", "arm-be"), ("armv7b", "arm-be"), ("armv6b", "arm-be"),
    ("armv5tejb", "arm-be"), ("armv5teb", "arm-be"), ("armv5tb", "arm-be"), ("armv4tb", "arm-be"), ("armv4b", "arm-be"),
    ("alpha", "alpha"), ("arc", "arc"), ("arceb", "arc-be"), ("crisv32", "cris"),
    ("x86_64", "x86-64"), ("i686", "x86"), ("i586", "x86"), ("i486", "x86"), ("i386", "x86"),
    ("ia64", "ia64"), ("parisc64", "parisc64"), ("parisc", "parisc"), ("loongarch64", "loongarch64"),
    ("m68k", "m68k"), ("mips64", "mips64"), ("mips", "mips"), ("nios2", "nios2"),
    ("ppc64le", "ppc64-le"), ("ppc64", "ppc64"), ("ppcle", "ppc-le"), ("ppc", "ppc"),
    ("riscv64", "riscv64"), ("riscv32", "riscv32"),
    // systemd maps the bare name by the pointer size it was built for.
    ("riscv", if cfg!(target_pointer_width = "32") { "riscv32" } else { "riscv64" }),
    ("s390x", "s390x"), ("s390", "s390"),
    ("sh5", "sh64"), ("sh4a", "sh"), ("sh4", "sh"), ("sh3", "sh"), ("sh2a", "sh"), ("sh2", "sh"),
    ("sparc64", "sparc64"), ("sparc", "sparc"), ("tilegx", "tilegx"),
];

/// systemd architecture name for a uname machine string (`x86_64` is `x86-64`); None if unknown.
pub fn from_machine(machine: &str) -> Option<&'static str> {
    ARCH_MAP
        .iter()
        .find(|(m, _)| *m == machine)
        .map(|(_, a)| *a)
}
