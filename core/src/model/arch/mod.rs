//! The architectures this build runs, one file each, registered here: [`ARCHS`], found by
//! `general.architecture`, and the values of their keys collected while the metadata streams
//! past. The seam they plug into ([`Arch`], [`Block`]) is in `seam`. Nothing outside this
//! folder names an architecture.

pub mod gemma3;
pub mod llama;
mod seam;

use crate::gguf::Value;
pub use seam::{Arch, Block, Buf, RopeLayout, Stops, Values, MAX_KEYS, MAX_ROLES};

/// Every architecture of this build: a new one is its file (declared above) and one entry here.
const ALL: [&Arch; 2] = [&llama::LLAMA, &gemma3::GEMMA3];

/// Every architecture of this build.
pub static ARCHS: [&Arch; ALL.len()] = ALL;

/// Their names, for messages.
pub static NAMES: [&str; ALL.len()] = {
    let mut names = [""; ALL.len()];
    let mut i = 0;
    while i < ALL.len() {
        names[i] = ALL[i].name;
        i += 1;
    }
    names
};

// Every architecture fits the tables sized for all of them.
const _: () = {
    let mut i = 0;
    while i < ALL.len() {
        assert!(ALL[i].keys.len() <= MAX_KEYS, "an architecture reads more keys than arch::MAX_KEYS");
        assert!(ALL[i].roles.len() <= MAX_ROLES, "an architecture has more roles than arch::MAX_ROLES");
        i += 1;
    }
};

/// The architecture named `name`.
pub fn find(name: &[u8]) -> Option<&'static Arch> {
    ARCHS.iter().copied().find(|a| a.name.as_bytes() == name)
}

/// Collects the values of every architecture's keys while the metadata streams past (the
/// architecture's name may come after its keys).
pub struct Collected {
    values: [Values; ARCHS.len()],
}

impl Default for Collected {
    fn default() -> Self {
        Self { values: [[None; MAX_KEYS]; ARCHS.len()] }
    }
}

impl Collected {
    /// Keeps `value` if `key` belongs to an architecture.
    pub fn visit(&mut self, key: &[u8], value: Value) {
        for (arch, values) in ARCHS.iter().zip(self.values.iter_mut()) {
            if let Some(i) = arch.keys.iter().position(|k| k.as_bytes() == key) {
                if let Some(v) = values.get_mut(i) {
                    *v = Some(value);
                }
            }
        }
    }

    /// The values collected for `arch`.
    pub fn of(&self, arch: &Arch) -> &Values {
        let i = ARCHS.iter().position(|a| core::ptr::eq(*a, arch)).unwrap_or(0);
        &self.values[i]
    }
}
