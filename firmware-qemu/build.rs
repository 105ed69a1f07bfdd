//! Puts the board's memory map (memory-mps2-an386.x, memory-netduinoplus2.x with that
//! feature, memory-riscv32-virt.x on riscv32) where the linker finds it, as memory.x. No file
//! in the crate root is called memory.x: the linker would find that one first, whatever the
//! board.
use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    let map = if env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("riscv32") {
        "memory-riscv32-virt.x"
    } else if env::var_os("CARGO_FEATURE_NETDUINOPLUS2").is_some() {
        "memory-netduinoplus2.x"
    } else {
        "memory-mps2-an386.x"
    };
    fs::copy(map, out.join("memory.x")).unwrap();
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory-mps2-an386.x");
    println!("cargo:rerun-if-changed=memory-netduinoplus2.x");
    println!("cargo:rerun-if-changed=memory-riscv32-virt.x");
    println!("cargo:rerun-if-changed=build.rs");
}
