//! Logging shim: forwards to `defmt` when that feature is on, and compiles to nothing otherwise.
#![allow(unused_macros)]

macro_rules! debug {
    ($($arg:tt)*) => {{
        #[cfg(feature = "defmt")]
        ::defmt::debug!($($arg)*);
    }};
}

#[allow(unused_imports)]
pub(crate) use debug;
