//! Logging shim: forwards to `defmt` when that feature is on, and compiles to nothing otherwise.
//! Knows nothing of the rest of the core.

macro_rules! debug {
    ($($arg:tt)*) => {{
        #[cfg(feature = "defmt")]
        ::defmt::debug!($($arg)*);
    }};
}

pub(crate) use debug;
